"""``provide.foundation.state``, as its documentation describes it, on statekit.

Change ``from provide.foundation.state import ...`` to
``from statekit.compat.foundation import ...`` and the documented examples
run: ``ImmutableState(**fields).update(...)``,
``StateMachine(initial_state=..., transitions=...)`` with ``transition`` and
``can_transition``, ``ConfigManager(initial_config=...)`` with
``update_config``, ``get_config``, ``get_version`` and ``get_history``, and
``VersionedConfig(version=..., config=..., metadata=...)``.

These are statekit's own classes, not copies: the documented API is a subset
of theirs, so everything else they offer (events and guards, history and
rollback, durable journals...) is there too.

``StateManager(initial_state=...)`` with ``add_observer(fn(old, new))``,
``update_state(changes)`` and ``get_state()`` is a façade over
:class:`statekit.Store`; its ``update(fn)`` is the atomic read-modify-write
the documented ``get_state()`` + ``update_state()`` pattern lacks.

Example:
    >>> from statekit.compat.foundation import ImmutableState
    >>> state = ImmutableState(user_id="user_123", status="active", count=0)
    >>> new_state = state.update(count=1, status="processing")
    >>> state.count, new_state.count
    (0, 1)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from .. import _engine, _patch
from .._store import Store
from ..config import ConfigManager, VersionedConfig
from ..immutable import ImmutableState
from ..machine import StateMachine

__all__ = ["ConfigManager", "ImmutableState", "StateMachine", "StateManager", "VersionedConfig"]

Observer = Callable[[Any, Any], Any]


class StateManager:
    """Centralized state with observers: foundation's ``StateManager``, on a Store.

    ``get_state()`` returns the whole state, frozen (a read-only ``dict``);
    ``update_state(changes)`` merges top-level keys in one commit;
    ``update(fn)`` merges ``fn(current_state)`` atomically, so concurrent
    read-modify-writes never lose one another's change (foundation's lose
    40%). Observers are called ``fn(old_state, new_state)`` after every
    commit, in commit order, outside every lock; one that raises is reported
    to the error hook (``sk.set_error_hook``) and does not stop the others.
    ``store`` is the underlying store (paths, listeners, history, patches).

    Example:
        >>> from statekit.compat.foundation import StateManager
        >>> manager = StateManager(initial_state={"connections": 0, "status": "idle"})
        >>> off = manager.add_observer(lambda old, new: print(old["status"], "->", new["status"]))
        >>> manager.update_state({"status": "active"})
        idle -> active
        >>> new = manager.update(lambda state: {"connections": state["connections"] + 1})
        active -> active
        >>> manager.get_state()
        {'connections': 1, 'status': 'active'}
    """

    __slots__ = ("_last", "_lock", "_observers", "_off", "store")

    def __init__(
        self,
        initial_state: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        history: int = 100,
    ) -> None:
        # App-scoped, like foundation's object: one state per manager.
        self.store = Store(initial_state or {}, name=name, history=history)
        self._observers: list[Observer] = []
        self._lock = threading.Lock()
        # The state as of the last commit observers were told about: the
        # patch stream comes in version order, so replaying each commit's ops
        # onto it gives every observer the exact (old, new) pair.
        self._last: Any = None
        self._off: Callable[[], None] | None = None

    def get_state(self) -> Any:
        """The current state, frozen (read-only; build a new dict to change it)."""
        return self.store.snapshot()

    def update_state(self, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` (top-level keys, new or not) in one commit.

        Reading with :meth:`get_state` and then calling this is not atomic
        (another thread may write in between): use :meth:`update` for
        read-modify-write.

        Example:
            >>> from statekit.compat.foundation import StateManager
            >>> m = StateManager(initial_state={"a": 1})
            >>> m.update_state({"b": 2}); m.get_state()
            {'a': 1, 'b': 2}
        """
        if not isinstance(changes, Mapping):
            raise TypeError(
                f"state manager {self.store.name!r}: update_state() takes a mapping "
                f"of changes, not {type(changes).__name__}"
            )
        ops = [{"op": "add", "path": "/" + _escape(k), "value": v} for k, v in changes.items()]
        self.store.patch(ops)

    def update(self, fn: Callable[[Any], Mapping[str, Any]]) -> Any:
        """Atomically merge ``fn(current_state)`` and return the new state.

        ``fn`` runs with the store locked, so no other write comes between
        its read and its changes.

        Example:
            >>> from statekit.compat.foundation import StateManager
            >>> m = StateManager(initial_state={"count": 0})
            >>> m.update(lambda s: {"count": s["count"] + 1})
            {'count': 1}
        """
        with self.store.transaction():
            self.update_state(fn(self.store.snapshot()))
        return self.store.snapshot()

    def reset(self) -> None:
        """Back to the initial state (an observed, undoable commit)."""
        self.store.reset()

    def add_observer(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer(old_state, new_state)`` after each change; return ``remove``."""
        with self._lock:
            if self._off is None:
                # Under the store's lock: no commit slips between the
                # snapshot and the subscription.
                with self.store._state().lock:
                    self._last = self.store.snapshot()
                    self._off = self.store.on_patch(self._changed)
            self._observers.append(observer)

        def remove() -> None:
            self.remove_observer(observer)

        return remove

    def remove_observer(self, observer: Observer) -> None:
        """Stop calling ``observer`` (no error if it was not registered)."""
        with self._lock:
            if observer in self._observers:
                self._observers.remove(observer)

    def _changed(self, ops: Any, version: int) -> None:
        # Called by the store one commit at a time, in version order.
        old = self._last
        new, _ = _patch.apply(old, ops)
        self._last = new
        with self._lock:
            observers = list(self._observers)
        for observer in observers:
            try:
                observer(old, new)
            except Exception as exc:
                _engine.report(exc, f"observer of state manager {self.store.name!r}")

    def __repr__(self) -> str:
        return f"<StateManager {self.store.name!r} {dict(self.store.snapshot())!r}>"


def _escape(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"state keys are strings, not {type(key).__name__}")
    return key.replace("~", "~0").replace("/", "~1")
