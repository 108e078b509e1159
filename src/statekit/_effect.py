"""``effect``: a function that runs now and again whenever what it read changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _engine
from ._engine import DISPOSED_FLAG, WatcherNode
from ._scope import current_scope
from ._subscribe import start_effect, stop_effect

__all__ = ["Effect", "batch", "effect", "untracked"]


class Effect:
    """A running effect; call it (or ``stop()``) to dispose it.

    Example:
        >>> import statekit as sk
        >>> n = sk.atom(1)
        >>> stop = sk.effect(lambda: print("n is", n.value))
        n is 1
        >>> n.value = 2
        n is 2
        >>> stop()
        >>> n.value = 3
    """

    __slots__ = ("__weakref__", "_watcher")

    def __init__(self, watcher: WatcherNode) -> None:
        self._watcher = watcher

    @property
    def name(self) -> str:
        """The effect's name (used in error reports)."""
        return self._watcher.name

    @property
    def active(self) -> bool:
        """Whether the effect still runs on changes."""
        return not self._watcher.flags & DISPOSED_FLAG

    def stop(self) -> None:
        """Dispose the effect and run its cleanup; idempotent."""
        stop_effect(self._watcher)

    dispose = stop

    def __call__(self) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return f"<Effect {self.name!r} {state}>"


def effect(fn: Callable[[], Any], *, name: str | None = None) -> Effect:
    """Run ``fn`` now and again after every change of what it read.

    ``fn`` may return a cleanup function, called before the next run and when
    the effect stops. The effect belongs to the current scope and stops when
    that scope is disposed. Errors go to the error hook (see
    :func:`set_error_hook`); they never stop other effects.

    Example:
        >>> import statekit as sk
        >>> a = sk.atom(1)
        >>> b = sk.atom(2)
        >>> stop = sk.effect(lambda: print(a.value + b.value))
        3
        >>> with sk.batch():
        ...     a.value = 10
        ...     b.value = 20
        30
        >>> stop()
    """
    label = name if name is not None else getattr(fn, "__name__", "effect")
    return Effect(start_effect(fn, label, current_scope()))


def batch() -> _engine.Batch:
    """Group writes: effects and listeners run once, after the outermost batch.

    Example:
        >>> import statekit as sk
        >>> x = sk.atom(0)
        >>> stop = sk.effect(lambda: print("x =", x.value))
        x = 0
        >>> with sk.batch():
        ...     x.value = 1
        ...     x.value = 2
        x = 2
        >>> stop()
    """
    return _BATCH


_BATCH = _engine.Batch()


def untracked(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` without recording what it reads as dependencies.

    Example:
        >>> import statekit as sk
        >>> a, b = sk.atom(1), sk.atom(10)
        >>> total = sk.computed(lambda: a.value + sk.untracked(lambda: b.value))
        >>> total.value
        11
        >>> b.value = 20  # not a dependency
        >>> total.value
        11
    """
    return _engine.untracked_call(fn)
