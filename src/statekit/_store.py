"""``Store``: a path-addressed JSON document with precise listeners and history.

Each scope's copy of a store is one frozen document held in a signal. Every
change builds a new document by copy-on-write (only the containers along the
changed path are new; everything else is shared), so "did the value at this
path change?" is an identity test, which is what makes listeners and tracked
reads precise: a listener on ``todo/1`` ignores a change to ``todo/0/done``.

Every change, whichever method made it, is recorded as RFC 6902 operations as
it happens (never by diffing) and handed to ``on_patch`` listeners with the
new version: the stream the sync server and the backends are built on.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from . import _engine, _patch, _paths
from ._computed import Computed
from ._definition import Definition
from ._engine import ComputedNode, Node, SignalNode
from ._frozen import freeze, thaw
from ._scope import Scope
from ._subscribe import subscribe_node
from .exceptions import InvalidDefinition, PathError, StatekitError, ValidationError

__all__ = ["Store", "StoreAtom"]

T = TypeVar("T")
Op = Mapping[str, Any]
PatchListener = Callable[[list[dict[str, Any]], int], Any]

_MISSING: Any = object()  # the value at a path that does not exist
_BATCH = _engine.Batch()


class _Commit:
    """One committed change: the ops applied and the ops that undo them."""

    __slots__ = ("inverse", "ops")

    def __init__(self, ops: list[dict[str, Any]], inverse: list[dict[str, Any]]) -> None:
        self.ops = ops
        self.inverse = inverse


class _StoreState(Node):
    """One scope's copy of a store."""

    __slots__ = (
        "_tx_depth",
        "_tx_doc",
        "_tx_inverse",
        "_tx_ops",
        "delivering",
        "lock",
        "outbox",
        "patch_listeners",
        "redo",
        "root",
        "undo",
        "version",
        "views",
    )

    def __init__(self, store: Store, scope: Scope) -> None:
        super().__init__(0, store.name, scope)
        self.root = SignalNode(store._initial, f"{store.name}:/", scope, _identical)
        self.version = 0
        self.views: dict[tuple[str, ...], ComputedNode] = {}
        self.patch_listeners: list[PatchListener] = []
        # Commits waiting for their patch listeners, delivered in version order
        # by one thread at a time, outside the lock.
        self.outbox: deque[tuple[list[dict[str, Any]], int]] = deque()
        self.delivering = False
        self.undo: deque[_Commit] = deque(maxlen=store._history)
        self.redo: list[_Commit] = []
        self.lock = threading.RLock()
        self._tx_depth = 0
        self._tx_doc: Any = None
        self._tx_ops: list[dict[str, Any]] = []
        self._tx_inverse: list[dict[str, Any]] = []


def _identical(old: Any, new: Any) -> bool:
    # Copy-on-write documents: an unchanged subtree is the same object.
    return old is new


class Store(Definition):
    """A path-addressed document of JSON-like values, with one copy per scope.

    Paths are RFC 6901 JSON Pointers; the leading ``/`` may be left out. A
    path that does not exist raises :class:`~statekit.PathError` and changes
    nothing: keys are never created silently (``add`` and ``atom`` create
    them on purpose). Values handed out are frozen (read-only ``list`` and
    ``dict`` subclasses), so state only changes through the store's methods.

    Example:
        >>> import statekit as sk
        >>> todos = sk.Store({"todo": [], "filter": "all"}, name="todos")
        >>> milk = {"title": "milk", "done": False}
        >>> todos.patch([{"op": "add", "path": "/todo/-", "value": milk}])
        >>> todos.set("todo/0/done", True)
        >>> todos.get("todo/0")
        {'title': 'milk', 'done': True}
        >>> _ = todos.undo(); todos.get("todo/0/done")
        False
        >>> todos.get("todo/5")
        Traceback (most recent call last):
        ...
        statekit.exceptions.PathError: path '/todo/5': part '5': index 5 out of range (length 1)
    """

    __slots__ = ("_history", "_initial", "_schema", "_selectors", "writable")

    def __init__(
        self,
        initial: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        scope: str = "app",
        schema: Any = None,
        history: int = 100,
        writable: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, scope, "store")
        document = freeze(dict(initial or {}))
        self._schema = schema
        if schema is not None:
            document = self._validated(document)
        self._initial = document
        self._history = history
        self._selectors: dict[str, Computed[Any]] = {}
        #: Paths clients of the sync server may write (server-side code may write anything).
        self.writable: tuple[str, ...] = tuple(
            _paths.format(_paths.parse(path)) for path in writable or ()
        )

    # ------------------------------------------------------------ plumbing

    def _make_node(self, scope: Scope) -> _StoreState:
        return _StoreState(self, scope)

    def _state(self) -> _StoreState:
        return self._node()  # type: ignore[no-any-return]

    def _validated(self, document: Any) -> Any:
        schema = self._schema
        if schema is None:
            return document
        try:
            model = schema.model_validate(thaw(document))
        except Exception as exc:  # pydantic.ValidationError, kept lazy
            raise ValidationError(f"store {self.name!r}: {exc}") from exc
        return freeze(model.model_dump(mode="json"))

    def _view(self, state: _StoreState, parts: tuple[str, ...]) -> ComputedNode:
        """The tracked node of one path: changes only when that subtree does."""
        node = state.views.get(parts)
        if node is None:
            root = state.root

            def select() -> Any:
                try:
                    return _paths.get(_engine.read_signal(root), parts)
                except PathError:
                    return _MISSING

            node = ComputedNode(
                select, f"{self.name}:{_paths.format(parts)}", state.owner, _identical
            )
            state.views[parts] = node
        return node

    # ------------------------------------------------------------ reading

    def get(self, path: str | Sequence[str] = "") -> Any:
        """The (frozen) value at ``path``; tracked inside computeds and effects.

        ``store.get("remaining")`` also reads a selector declared with
        :meth:`selector`.
        """
        state = self._state()
        parts = _paths.parse(path)
        if len(parts) == 1 and parts[0] in self._selectors:
            return self._selectors[parts[0]].value
        if state._tx_depth and state.lock._is_owned():  # type: ignore[attr-defined]
            return _paths.get(state._tx_doc, parts)  # our own transaction's changes
        if _engine.active_node() is None:
            return _paths.get(state.root.value, parts)
        value = _engine.read_computed(self._view(state, parts))
        if value is _MISSING:
            return _paths.get(state.root.value, parts)  # raises the precise PathError
        return value

    def has(self, path: str | Sequence[str]) -> bool:
        """Whether ``path`` exists (untracked)."""
        state = self._state()
        doc = state._tx_doc if state._tx_depth and state.lock._is_owned() else state.root.value  # type: ignore[attr-defined]
        try:
            _paths.get(doc, _paths.parse(path))
        except PathError:
            return False
        return True

    def snapshot(self) -> Any:
        """The whole document, frozen: cheap, and safe to keep.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"n": 1})
            >>> snap = s.snapshot(); s.set("n", 2); s.restore(snap); s.get("n")
            1
        """
        return self._state().root.value

    @property
    def version(self) -> int:
        """How many changes this scope's copy has committed."""
        return self._state().version

    # ------------------------------------------------------------ writing

    def patch(self, ops: Sequence[Op]) -> None:
        """Apply RFC 6902 operations atomically: all of them, or none.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"a": 1})
            >>> s.patch([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/a"}])
            >>> s.snapshot()
            {'b': 2}
        """
        self._commit(lambda doc: _patch.apply(doc, ops))

    def set(self, path: str | Sequence[str], value: Any) -> None:
        """Replace the value at an existing ``path`` (or add a new key to an existing object)."""
        parts = _paths.parse(path)
        self._commit(lambda doc: _patch.apply(doc, [_set_op(doc, parts, value)]))

    def add(self, path: str | Sequence[str], value: Any) -> None:
        """RFC 6902 ``add``: insert into an array (``-`` appends) or set an object key."""
        ops = [{"op": "add", "path": _paths.format(_paths.parse(path)), "value": value}]
        self._commit(lambda doc: _patch.apply(doc, ops))

    def delete(self, path: str | Sequence[str]) -> None:
        """Remove the value at ``path`` (which must exist)."""
        ops = [{"op": "remove", "path": _paths.format(_paths.parse(path))}]
        self._commit(lambda doc: _patch.apply(doc, ops))

    def update(self, path: str | Sequence[str], fn: Callable[[Any], Any]) -> Any:
        """Atomically replace the value at ``path`` by ``fn(old)``; return the new value.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"count": 0})
            >>> s.update("count", lambda n: n + 1)
            1
        """
        parts = _paths.parse(path)
        result: list[Any] = []

        def change(doc: Any) -> tuple[Any, list[dict[str, Any]]]:
            new = freeze(fn(_paths.get(doc, parts)))
            result.append(new)
            return _patch.apply(doc, [_set_op(doc, parts, new)])

        self._commit(change)
        return result[0]

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the whole document (one ``replace`` of the root)."""
        ops = [{"op": "replace", "path": "", "value": snapshot}]
        self._commit(lambda doc: _patch.apply(doc, ops))

    def reset(self) -> None:
        """Back to the initial document (recorded, undoable)."""
        self.restore(self._initial)

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Group changes into one commit: one patch, one notification, one undo step.

        If the block raises, every change made in it is rolled back.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"a": 0, "b": 0})
            >>> with s.transaction():
            ...     s.set("a", 1)
            ...     s.set("b", 2)
            >>> s.version
            1
        """
        state = self._state()
        with _BATCH, state.lock:
            state._tx_depth += 1
            if state._tx_depth == 1:
                state._tx_doc = state.root.value
                state._tx_ops = []
                state._tx_inverse = []
            try:
                yield self
            except BaseException:
                if state._tx_depth == 1:
                    state._tx_ops, state._tx_inverse, state._tx_doc = [], [], None
                raise
            finally:
                state._tx_depth -= 1
            if state._tx_depth == 0:
                ops, inverse, doc = state._tx_ops, state._tx_inverse, state._tx_doc
                state._tx_ops, state._tx_inverse, state._tx_doc = [], [], None
                if ops:
                    self._publish(state, doc, ops, inverse[::-1], record=True)
        self._deliver(state)

    def _commit(
        self,
        change: Callable[[Any], tuple[Any, list[dict[str, Any]]]],
        record: bool = True,
    ) -> None:
        state = self._state()
        # The batch ends after the lock is released: effects and listeners
        # never run under the store's lock.
        with _BATCH, state.lock:
            base = state._tx_doc if state._tx_depth else state.root.value
            doc, ops = change(base)
            if not ops:
                return
            if self._schema is not None:
                doc = self._validated(doc)
            inverse = _inverse_of(base, ops)
            if state._tx_depth:
                state._tx_doc = doc
                state._tx_ops.extend(ops)
                state._tx_inverse.extend(inverse[::-1])
                return
            self._publish(state, doc, ops, inverse, record=record)
        self._deliver(state)

    def _publish(
        self,
        state: _StoreState,
        doc: Any,
        ops: list[dict[str, Any]],
        inverse: list[dict[str, Any]],
        *,
        record: bool,
    ) -> None:
        """Make ``doc`` current and record history (state.lock held)."""
        if record:
            state.undo.append(_Commit(ops, inverse))
            state.redo.clear()
        state.version += 1
        _engine.write_signal(state.root, doc)
        if state.patch_listeners:
            state.outbox.append((ops, state.version))

    def _deliver(self, state: _StoreState) -> None:
        """Hand queued commits to patch listeners, in order, outside the lock."""
        while True:
            with state.lock:
                if state.delivering or not state.outbox:
                    return
                state.delivering = True
                pending = list(state.outbox)
                state.outbox.clear()
                listeners = list(state.patch_listeners)
            try:
                for ops, version in pending:
                    for listener in listeners:
                        try:
                            listener(ops, version)
                        except Exception as exc:
                            _engine.report(exc, f"patch listener of store {self.name!r}")
            finally:
                with state.lock:
                    state.delivering = False

    # ------------------------------------------------------------ history

    def undo(self) -> bool:
        """Undo the last change (bounded by ``history=``); return whether there was one."""
        state = self._state()
        with _BATCH, state.lock:
            if state._tx_depth:
                raise StatekitError(f"store {self.name!r}: undo() inside a transaction")
            if not state.undo:
                return False
            commit = state.undo.pop()
            doc, ops = _patch.apply(state.root.value, commit.inverse)
            state.redo.append(commit)
            self._publish(state, doc, ops, commit.ops, record=False)
        self._deliver(state)
        return True

    def redo(self) -> bool:
        """Redo the last undone change; return whether there was one."""
        state = self._state()
        with _BATCH, state.lock:
            if not state.redo:
                return False
            commit = state.redo.pop()
            doc, ops = _patch.apply(state.root.value, commit.ops)
            state.undo.append(commit)
            self._publish(state, doc, ops, commit.inverse, record=False)
        self._deliver(state)
        return True

    # ------------------------------------------------------------ listening

    def listen(
        self, path: str | Sequence[str], callback: Callable[[Any], Any]
    ) -> Callable[[], None]:
        """Call ``callback(value)`` when the value at ``path`` changes; return ``off``.

        Fires for changes at, under or above ``path`` (anything that changes
        what ``get(path)`` returns) and not for unrelated ones. A path that
        stops existing is reported as ``None``.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"todo": [{"done": False}, {"done": False}]})
            >>> seen = []
            >>> off = s.listen("todo/1", seen.append)
            >>> s.set("todo/0/done", True)  # unrelated: no call
            >>> s.set("todo/1/done", True)
            >>> seen
            [{'done': True}]
        """
        state = self._state()
        node = self._view(state, _paths.parse(path))

        def deliver(value: Any) -> None:
            callback(None if value is _MISSING else value)

        return subscribe_node(node, _engine.read_computed, deliver)

    def on_patch(self, callback: PatchListener) -> Callable[[], None]:
        """Call ``callback(ops, version)`` after every commit; return ``off``.

        ``ops`` are the RFC 6902 operations of the change, whichever method
        made it (set, update, patch, undo, restore...), in order.
        """
        state = self._state()
        with state.lock:
            state.patch_listeners.append(callback)

        def off() -> None:
            with state.lock:
                if callback in state.patch_listeners:
                    state.patch_listeners.remove(callback)

        return off

    # ------------------------------------------------------------ derived

    def atom(self, key: str, default: Any = None) -> StoreAtom[Any]:
        """Declare ``key`` (added with ``default`` if missing) and return an atom-like handle.

        Example:
            >>> import statekit as sk
            >>> form = sk.Store({})
            >>> email = form.atom("email", "")
            >>> email.value = "a@b.c"
            >>> form.get("email")
            'a@b.c'
        """
        parts = _paths.parse(key)
        if not self.has(parts):
            self.add(parts, default)
        return StoreAtom(self, parts, default)

    def selector(self, key: str) -> Callable[[Callable[[Callable[[str], Any]], T]], Computed[T]]:
        """Declare a derived value ``key`` computed from ``get(path)`` reads.

        Dependencies are tracked on every run, so a selector that reads ``a``
        or ``b`` depending on a flag follows the flag.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"todo": [{"done": True}, {"done": False}]})
            >>> @s.selector("remaining")
            ... def remaining(get):
            ...     return sum(not t["done"] for t in get("todo"))
            >>> remaining.value, s.get("remaining")
            (1, 1)
        """

        def register(fn: Callable[[Callable[[str], Any]], T]) -> Computed[T]:
            if key in self._selectors:
                raise InvalidDefinition(f"store {self.name!r} already has a selector {key!r}")
            if self.has(key):
                raise InvalidDefinition(f"store {self.name!r}: selector {key!r} shadows a key")
            derived: Computed[T] = Computed(
                lambda: fn(self.get), name=f"{self.name}.{key}", scope=self.scope
            )
            self._selectors[key] = derived
            return derived

        return register

    # ------------------------------------------------------------ HTML helpers

    def react(self, path: str | Sequence[str] = "", *, tag: str = "span", **attrs: Any) -> str:
        """HTML showing the value at ``path``, kept live by the JS client (``data-sk-text``).

        Outside a scope that has this store (a user store with no user) the
        element starts empty and the client fills it in.

        Example:
            >>> import statekit as sk
            >>> sk.Store({"n": 1}, name="counter").react("n")
            '<span data-sk-text="counter:/n">1</span>'
        """
        from .exceptions import ScopeError
        from .server._html import react

        parts = _paths.parse(path)
        try:
            value = self.get(parts)
        except ScopeError:
            value = None
        return react(self.name, _paths.format(parts), value, tag=tag, **attrs)

    @property
    def do(self) -> Any:
        """``onclick`` code of writes through the client: ``do.update(path, delta)``, ``do.set``.

        Example:
            >>> import statekit as sk
            >>> sk.Store({"n": 1}, name="counter").do.update("n", 1)
            "statekit.update('counter','/n',1)"
        """
        from .server._html import Do

        return Do(self.name)

    def __repr__(self) -> str:
        return f"<Store {self.name!r} scope={self.scope!r}>"


def _set_op(doc: Any, parts: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``replace`` for an existing path, ``add`` for a new key of an existing object."""
    path = _paths.format(parts)
    if not parts:
        return {"op": "replace", "path": path, "value": value}
    parent = _paths.get(doc, parts[:-1])
    if isinstance(parent, dict) and parts[-1] not in parent:
        return {"op": "add", "path": path, "value": value}
    return {"op": "replace", "path": path, "value": value}


def _inverse_of(doc: Any, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ops that undo ``ops`` (applied in order to ``doc``), in undo order."""
    inverse: list[dict[str, Any]] = []
    current = doc
    for op in ops:
        inverse[:0] = _patch.inverse(current, op)
        current, _ = _patch.apply(current, [op])
    return inverse


class StoreAtom(Generic[T]):
    """An atom-like handle on one key of a store (see :meth:`Store.atom`).

    Example:
        >>> import statekit as sk
        >>> s = sk.Store({"n": 1})
        >>> n = s.atom("n")
        >>> n.update(lambda v: v + 1)
        2
    """

    __slots__ = ("_default", "_parts", "_store")

    def __init__(self, store: Store, parts: tuple[str, ...], default: Any) -> None:
        self._store = store
        self._parts = parts
        self._default = freeze(default)

    @property
    def path(self) -> str:
        """The JSON Pointer of the key."""
        return _paths.format(self._parts)

    @property
    def value(self) -> T:
        """The current value (tracked)."""
        return self._store.get(self._parts)  # type: ignore[no-any-return]

    @value.setter
    def value(self, new: T) -> None:
        self._store.set(self._parts, new)

    def get(self) -> T:
        """The current value (tracked)."""
        return self.value

    def set(self, new: T) -> None:
        """Replace the value."""
        self._store.set(self._parts, new)

    def update(self, fn: Callable[[T], T]) -> T:
        """Atomically replace the value by ``fn(old)``."""
        return self._store.update(self._parts, fn)  # type: ignore[no-any-return]

    def peek(self) -> T:
        """The current value, untracked."""
        return _engine.untracked_call(lambda: self._store.get(self._parts))  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Back to the declared default."""
        self._store.set(self._parts, self._default)

    def subscribe(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Call ``callback(value)`` after each change; return ``off``."""
        return self._store.listen(self._parts, callback)
