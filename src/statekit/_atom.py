"""``atom``: a settable value that lives in a scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _engine
from ._definition import _DEPTHS, _NOWHERE, Definition, _counter, signal_value
from ._engine import SignalNode
from ._frozen import freeze
from ._scope import Scope, _current, level_index
from ._subscribe import subscribe_node

__all__ = ["Atom", "atom"]

T = TypeVar("T")
_write_signal = _engine.write_signal
_PLAIN = frozenset({int, float, str, bool, type(None)})  # freeze() returns these as they are


class Atom(Definition, Generic[T]):
    """A settable reactive value; its value lives in a scope.

    Values are frozen on write (lists, dicts and sets become read-only), so a
    change can only happen through ``set``/``update`` and always notifies.

    Example:
        >>> import statekit as sk
        >>> count = sk.atom(0, name="count")
        >>> seen = []
        >>> off = count.subscribe(seen.append)
        >>> count.value = 1
        >>> count.update(lambda n: n + 1)
        2
        >>> count.set(2)  # unchanged: no notification
        >>> off()
        >>> seen
        [1, 2]
    """

    __slots__ = ("_equals", "_initial")

    def __init__(
        self,
        initial: T,
        *,
        name: str | None = None,
        scope: str = "app",
        equals: Callable[[T, T], bool] | None = None,
    ) -> None:
        # Definition.__init__'s fields set here: creation is a measured hot
        # path (one Python call less per definition).
        self.name = name if name is not None else f"atom#{next(_counter)}"
        depth = _DEPTHS.get(scope)  # the common, valid case without a call
        self._depth = depth if depth is not None else level_index(scope)
        self._cache = _NOWHERE
        self._initial = initial if initial.__class__ in _PLAIN else freeze(initial)
        self._equals = equals

    def _make_node(self, scope: Scope) -> SignalNode:
        return SignalNode(self._initial, self.name, scope, self._equals)

    if TYPE_CHECKING:

        @property
        def value(self) -> T:
            """The current value (tracked inside computeds and effects)."""

        @value.setter
        def value(self, new: T) -> None: ...

    else:

        def _set_value(self, new: T) -> None:
            self.set(new)

        # The getter is the engine's inlined resolve-and-track read.
        value = property(
            signal_value,
            _set_value,
            doc="The current value (tracked inside computeds and effects).",
        )

    def get(self) -> T:
        """The current value (tracked), like ``.value``."""
        return _engine.read_signal(self._node())  # type: ignore[no-any-return]

    def set(self, new: T) -> None:
        """Replace the value; subscribers run if it changed."""
        owner = _current.get().chain[self._depth]
        cached, node = self._cache  # one tuple: the pair stays consistent across threads
        if cached is not owner:
            node = self._lookup(owner)
        _write_signal(node, new if new.__class__ in _PLAIN else freeze(new))

    def update(self, fn: Callable[[T], T]) -> T:
        """Atomically replace the value by ``fn(old)`` and return the new value.

        ``fn`` runs under the engine lock, so concurrent updates never lose a
        write; it should be quick and must not wait on other threads.
        """
        return _engine.modify_signal(self._node(), lambda old: freeze(fn(old)))  # type: ignore[no-any-return]

    def peek(self) -> T:
        """The current value, without tracking it."""
        return self._node().value  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Set the value back to the initial one."""
        _engine.write_signal(self._node(), self._initial)

    def subscribe(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Call ``callback(value)`` after each change; return a function that stops it.

        The callback is not called now, runs outside the engine lock, and once
        per batch with the final value. Its errors go to the error hook.
        """
        return subscribe_node(self._node(), _engine.read_signal, callback)


def atom(
    initial: T,
    *,
    name: str | None = None,
    scope: str = "app",
    equals: Callable[[T, T], bool] | None = None,
) -> Atom[T]:
    """Define a settable reactive value.

    ``scope`` is the level its values live at (``"app"``, ``"user"``,
    ``"session"`` or ``"request"``); ``equals`` decides whether a new value
    is a change (default ``==``).

    Example:
        >>> import statekit as sk
        >>> n = sk.atom(1, name="n")
        >>> n.value += 1
        >>> n.get()
        2
    """
    return Atom(initial, name=name, scope=scope, equals=equals)
