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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from . import _engine, _patch, _paths
from ._computed import Computed
from ._definition import Definition
from ._engine import ComputedNode
from ._engine import _core as _engine_core
from ._frozen import FrozenDict, FrozenList, thaw
from ._paths import PARSED as _PARSED
from ._scope import Scope, _current
from ._store_hot import MISSING as _MISSING
from ._store_hot import CopyState, dispatch, identical
from ._store_hot import store_set as _store_set
from ._store_listen import add_listener, notify
from ._store_select import listen_selector
from .exceptions import (
    InvalidDefinition,
    PatchError,
    PathError,
    StatekitError,
    ValidationError,
    VersionConflict,
)

__all__ = ["Store", "StoreAtom"]

T = TypeVar("T")
Op = Mapping[str, Any]
PatchListener = Callable[[list[dict[str, Any]], int], Any]


class StoreLink(Protocol):
    """What a store copy bound to a backend (``statekit.backends``) calls.

    ``push`` runs under the copy's lock with the ops of a local commit and
    the copy's version before it; it returns the backend's new version, or
    ``None`` when the backend had moved on (the link has then brought the
    copy up to date with :meth:`Store._receive`, and the change is retried
    on the fresh document). ``close`` runs when the copy is released.
    """

    def push(self, ops: list[dict[str, Any]], version: int) -> int | None: ...

    def close(self) -> None: ...


class Binder(Protocol):
    """What an app scope's ``backend`` attribute offers: bind a new copy."""

    def bind_store(self, store: Store, scope: Scope, state: _StoreState) -> None: ...


# What a change computes from the document: (new document, ops, undo ops), or
# (new document, None, a _patch.replace_lazy record) whose ops are built only
# if something needs them.
_Change = tuple[Any, list[dict[str, Any]] | None, Any]

_BATCH = _engine.Batch()
_ident = threading.get_ident

# Views (one tracked node per path read in a tracked context) that nobody
# watches any more are pruned when the dict reaches this size, and then at
# twice the number left: amortized O(1) per new view, and the dict never
# holds more than about twice the paths being watched.
_MIN_PRUNE = 256
# A write to a store bound to a backend retries when another process
# committed first; this many lost races in a row means something is wrong.
_MAX_RETRIES = 1000


# One committed change in the undo history: the ops applied and the ops that
# undo them, packed (``_packed``), or (a 3-tuple, made on every ``set``) a
# replace_lazy record ``(parts, value, old)`` whose ops are built only if it
# is undone.
_Commit = tuple[Any, ...]


def _packed(ops: Sequence[Mapping[str, Any]], inverse: Sequence[Mapping[str, Any]]) -> _Commit:
    """A history record of a commit: its ops and undo ops, flat (``_flat``).

    Why not the op dicts themselves: a tuple of strings and numbers is no
    work for Python's cycle collector (it stops tracking it), a dict always
    is. Records live for ``history=`` commits, long enough to reach the oldest
    generation; with a store copy per session they would add up to most of a
    server's heap, and each full collection would scan them all. The
    collector untracks one level of nested tuples per pass, and an object
    goes through two passes (generations 0 and 1) before the oldest: two
    levels are untracked by then, the record and its two flat tuples.
    """
    return _flat(ops), _flat(inverse)


def _flat(ops: Sequence[Mapping[str, Any]]) -> tuple[Any, ...]:
    """``(name, path, value or from or None, name, path, ...)``: three items per op."""
    flat: list[Any] = []
    for op in ops:
        name = op["op"]
        flat += (name, op["path"], op["from"] if name in _FROM_OPS else op.get("value"))
    return tuple(flat)


def _unflat(flat: tuple[Any, ...]) -> list[Any]:
    """The ops of :func:`_flat`, as the frozen dicts :mod:`._patch` makes."""
    ops: list[Any] = []
    for i in range(0, len(flat), 3):
        name, path, extra = flat[i : i + 3]
        if name == "remove":
            ops.append(FrozenDict(op=name, path=path))
        elif name in _FROM_OPS:
            ops.append(FrozenDict({"op": name, "from": extra, "path": path}))
        else:
            ops.append(FrozenDict(op=name, path=path, value=extra))
    return ops


_FROM_OPS = frozenset({"move", "copy"})


def _unpacked(record: _Commit) -> tuple[list[Any], list[Any]]:
    """The ops and undo ops of a history record (``_packed`` or replace_lazy)."""
    if len(record) == 3:
        return _patch.expand_replace(record)
    return _unflat(record[0]), _unflat(record[1])


class _StoreState(CopyState):
    """One scope's copy of a store: its fields are ``_store_hot.CopyState``'s.

    A subclass only to declare ``__weakref__`` (the sync server keeps copies
    in a weak map), which a class compiled with mypyc cannot offer; being
    interpreted, it may (docs/engine.md, "Compiled mode").
    """

    __slots__ = ("__weakref__",)


class Store(Definition):
    """A path-addressed document of JSON values, with one copy per scope.

    Paths are RFC 6901 JSON Pointers; the leading ``/`` may be left out. A
    path that does not exist raises :class:`~statekit.PathError` and changes
    nothing: keys are never created silently (``add`` and ``atom`` create
    them on purpose; ``set`` only replaces). Values handed out are frozen
    (read-only ``list`` and ``dict`` subclasses), so state only changes
    through the store's methods.

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
        statekit.exceptions.PathError: path '/todo/5': part '5': index 5 out of range...'todos'
    """

    __slots__ = ("_history", "_initial", "_schema", "_selector_fns", "_selectors", "writable")

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
        if initial is not None and not isinstance(initial, Mapping):
            raise TypeError(
                f"store {self.name!r}: the initial document is an object (a mapping), "
                f"not {type(initial).__name__}"
            )
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError(f"store {self.name!r}: history= is a number of steps >= 0")
        try:
            document = _patch.freeze_json(dict(initial or {}))
        except PatchError as exc:
            raise PatchError(f"store {self.name!r}: initial document: {exc}") from None
        self._schema = schema
        if schema is not None:
            document = self._validated(document)
        self._initial = document
        self._history = history
        self._selectors: dict[str, Computed[Any]] = {}
        # Each selector's function of ``get`` (its listeners run it: _store_select).
        self._selector_fns: dict[str, Callable[[Callable[..., Any]], Any]] = {}
        #: Paths clients of the sync server may write (server-side code may write anything).
        self.writable: tuple[str, ...] = tuple(
            _paths.format(self._parse(path)) for path in writable or ()
        )

    # ------------------------------------------------------------ plumbing

    def _make_node(self, scope: Scope) -> _StoreState:
        state = _StoreState(self, scope, _MIN_PRUNE)
        binder: Binder | None = scope.chain[0].backend if scope.chain[0] is not None else None
        if binder is not None:
            # The copy starts from the backend's document and version.
            binder.bind_store(self, scope, state)
        return state

    def _release(self, scope: Scope, node: Any) -> None:
        link = node.link
        if link is not None:
            node.link = None
            link.close()
        super()._release(scope, node)
        node.listeners = ()

    def _receive(
        self, state: _StoreState, ops: Sequence[Op], version: int, *, force: bool = False
    ) -> bool:
        """Apply a commit made elsewhere (already in the backend) to this copy.

        Used by ``statekit.backends``: the copy takes the backend's version,
        patch listeners hear it like a local commit, and nothing is pushed
        back. A commit not newer than the copy is ignored (unless ``force``:
        a reload after the backend lost data). Undo history is dropped, since
        its inverse ops describe a document that no longer exists.
        """
        with _BATCH, state.lock:
            if not force and version <= state.version:
                return False
            doc, applied = _patch.apply(state.root.value, ops)
            state.undo.clear()
            state.redo.clear()
            self._publish(state, doc, applied, [], record=False, version=version)
        self._after_commit(state)
        return True

    def _state(self) -> _StoreState:
        return self._node()  # type: ignore[no-any-return]

    def _named(self, exc: Exception) -> Exception:
        """``exc`` (raised by _paths/_patch) re-made to name this store."""
        where = f"store {self.name!r}"
        if isinstance(exc, PathError):
            return PathError(exc.path, exc.part, f"{exc.reason} in {where}")
        return type(exc)(f"{where}: {exc}")

    def _parse(self, path: str | Sequence[str]) -> tuple[str, ...]:
        if path.__class__ is str:
            try:
                return _PARSED[path]  # parsed before: the hot path
            except KeyError:
                pass
        try:
            return _paths.parse(path)
        except PathError as exc:
            raise self._named(exc) from None

    def _validated(self, document: Any) -> Any:
        schema = self._schema
        if schema is None:
            return document
        try:
            model = schema.model_validate(thaw(document))
        except Exception as exc:  # pydantic.ValidationError, kept lazy
            raise ValidationError(f"store {self.name!r}: {exc}") from exc
        return _patch.freeze_json(model.model_dump(mode="json"))

    def _read_view(self, state: _StoreState, parts: tuple[str, ...]) -> Any:
        """Read (and track) the node of one path: it changes only when that subtree does.

        The lookup and the read happen under the engine lock, so a prune on
        another thread can never drop a view between the two: once read in a
        tracked context, a view has a subscriber and is kept.
        """
        with _engine.lock:
            node = state.views.get(parts)
            if node is None:
                node = self._new_view(state, parts)
            return _engine.read_computed(node)

    def _new_view(self, state: _StoreState, parts: tuple[str, ...]) -> ComputedNode:
        views = state.views
        if len(views) >= state.prune_at:
            for key, view in list(views.items()):
                if view.subs is None:
                    del views[key]
                    _engine.dispose_node(view)  # unlinks it from the root
            state.prune_at = max(_MIN_PRUNE, 2 * len(views))
        root = state.root

        def select() -> Any:
            try:
                return _paths.get(_engine.read_signal(root), parts)
            except PathError:
                return _MISSING

        node = ComputedNode(select, f"{self.name}:{_paths.format(parts)}", state.owner, identical)
        views[parts] = node
        return node

    # ------------------------------------------------------------ reading

    def get(self, path: str | Sequence[str] = "") -> Any:
        """The (frozen) value at ``path``; tracked inside computeds and effects.

        ``store.get("remaining")`` also reads a selector declared with
        :meth:`selector`.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"a~b": {"c/d": [10, 20]}})
            >>> s.get("/a~0b/c~1d/1"), s.get(["a~b", "c/d", 0])
            (20, 10)
        """
        state = self._state()
        parts = self._parse(path)
        if len(parts) == 1 and parts[0] in self._selectors:
            return self._selectors[parts[0]].value
        if state.tx_depth and state.tx_thread == _ident():
            doc = state.tx_doc  # our own transaction's changes, untracked
        elif _engine.active_node() is None:
            doc = state.root.value
        else:
            value = self._read_view(state, parts)
            if value is not _MISSING:
                return value
            doc = state.root.value  # raises the precise PathError below
        try:
            return _paths.get(doc, parts)
        except PathError as exc:
            raise self._named(exc) from None

    def has(self, path: str | Sequence[str]) -> bool:
        """Whether ``path`` exists (untracked).

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"xs": [1]})
            >>> s.has("xs/0"), s.has("xs/1"), s.has("ys")
            (True, False, False)
        """
        return _paths.exists(self._state().current(), self._parse(path))

    def snapshot(self) -> Any:
        """The whole document, frozen: cheap, and safe to keep.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"n": 1})
            >>> snap = s.snapshot(); s.set("n", 2); s.restore(snap); s.get("n")
            1
        """
        return self._state().current()

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
        self._commit(_patch.apply_with_inverse, ops)

    def set(self, path: str | Sequence[str], value: Any) -> None:
        """Replace the value at ``path``, which must exist (use :meth:`add` to create a key).

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"user": {"name": "ann"}}, name="s")
            >>> s.set("user/name", "bob"); s.get("user")
            {'name': 'bob'}
            >>> s.set("user/nmae", "eve")
            Traceback (most recent call last):
            ...
            statekit.exceptions.PathError: path '/user/nmae': part 'nmae': no key...store 's'
        """
        # Compiled with the engine (``make compile``): see _store_hot.
        _store_set(self, path, value)

    def add(self, path: str | Sequence[str], value: Any) -> None:
        """RFC 6902 ``add``: insert into an array (``-`` appends) or set an object key.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"xs": [1, 3]})
            >>> s.add("xs/1", 2); s.add("xs/-", 4); s.add("label", "n"); s.snapshot()
            {'xs': [1, 2, 3, 4], 'label': 'n'}
        """
        ops = [{"op": "add", "path": _paths.format(self._parse(path)), "value": value}]
        self._commit(_patch.apply_with_inverse, ops)

    def delete(self, path: str | Sequence[str]) -> None:
        """Remove the value at ``path`` (which must exist).

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"a": 1, "xs": [1, 2]})
            >>> s.delete("a"); s.delete("xs/0"); s.snapshot()
            {'xs': [2]}
        """
        ops = [{"op": "remove", "path": _paths.format(self._parse(path))}]
        self._commit(_patch.apply_with_inverse, ops)

    def update(self, path: str | Sequence[str], fn: Callable[[Any], Any]) -> Any:
        """Atomically replace the value at ``path`` by ``fn(old)``; return the new value.

        ``fn`` runs under the store's lock with the current (frozen) value, so
        concurrent updates never lose one another's change; keep it short and
        free of side effects.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"count": 0})
            >>> s.update("count", lambda n: n + 1)
            1
        """
        parts = self._parse(path)
        pointer = _paths.format(parts)
        result: list[Any] = []

        def change(doc: Any) -> _Change:
            try:
                old = _paths.get(doc, parts)
            except PathError as exc:
                raise PathError(exc.path, exc.part, f"{exc.reason} (update)") from None
            new = _patch.freeze_json(fn(old), pointer)
            result.append(new)
            return _patch.replace_lazy(doc, parts, new)

        self._commit(change)
        return result[-1]

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the whole document (one ``replace`` of the root, undoable).

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"n": 1})
            >>> s.restore({"n": 5, "m": 6}); s.snapshot()
            {'n': 5, 'm': 6}
        """
        ops = [{"op": "replace", "path": "", "value": snapshot}]
        self._commit(_patch.apply_with_inverse, ops)

    def reset(self) -> None:
        """Back to the initial document (recorded, undoable).

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"n": 1})
            >>> s.set("n", 2); s.reset(); s.get("n")
            1
        """
        self.restore(self._initial)

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Group changes into one commit: one patch, one notification, one undo step.

        Inside the block, this thread reads its own uncommitted changes;
        other threads see the document as it was until the block ends (and
        wait to write). If the block raises, every change made in it is
        rolled back; a nested transaction that raises rolls back only its own
        changes. With ``schema=``, the document is validated once, at the end.

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
            if state.tx_depth == 0:
                state.tx_doc = state.root.value
                state.tx_ops = []
                state.tx_inverse = []
                state.tx_thread = _ident()
            saved = (state.tx_doc, len(state.tx_ops), len(state.tx_inverse))
            state.tx_depth += 1
            try:
                yield self
            except BaseException:
                # Roll back to where this (possibly nested) block began.
                state.tx_doc = saved[0]
                del state.tx_ops[saved[1] :]
                del state.tx_inverse[saved[2] :]
                raise
            finally:
                state.tx_depth -= 1
                if state.tx_depth == 0:
                    base, doc, ops, chunks = (
                        state.root.value,
                        state.tx_doc,
                        state.tx_ops,
                        state.tx_inverse,
                    )
                    state.tx_doc, state.tx_ops, state.tx_inverse = None, [], []
                    state.tx_thread = 0
            if state.tx_depth == 0 and doc is not base:
                inverse = [op for chunk in reversed(chunks) for op in chunk]
                if self._schema is not None:
                    doc, ops, inverse = self._schema_checked(base, doc, ops, inverse)
                version = self._pushed(state, ops)
                if version is None:
                    # A block cannot be re-run: the copy is up to date now,
                    # and the caller decides whether to try again.
                    raise VersionConflict(
                        f"store {self.name!r}: the transaction's changes were not "
                        "committed; the backend changed meanwhile (the copy is now current)"
                    )
                self._publish(state, doc, ops, inverse, record=True, version=version)
        self._after_commit(state)

    def _commit(self, change: Callable[..., _Change], *args: Any) -> None:
        """Apply ``change(doc, *args) -> (new_doc, ops, undo_ops)`` as one commit.

        (Or as part of this thread's open transaction.) The hot path of every
        write: the scope lookup of ``_node`` and the batch of ``_BATCH`` are
        inlined.
        """
        current = _current.get()
        owner = current.chain[self._depth]
        cache = self._cache
        state: _StoreState = cache[1] if cache[0] is owner else self._lookup(owner)
        if _engine_core._ev.active is not None and _engine_core._held():
            # A computed is evaluating on this thread. Refused before taking
            # the lock: a computed evaluates under the engine lock, and
            # waiting for the store's lock there could deadlock.
            raise StatekitError(
                f"a computed tried to write store {self.name!r}: computed values must "
                "not have side effects (use an effect or an action)"
            )
        # A batch that ends after the lock is released: effects and listeners
        # never run under the store's lock.
        local = _engine.tls.state
        local.batch += 1
        try:
            with state.lock:
                for _attempt in range(_MAX_RETRIES):
                    in_tx = state.tx_depth != 0
                    base = state.tx_doc if in_tx else state.root.value
                    try:
                        doc, ops, inverse = change(base, *args)
                    except (PathError, PatchError) as exc:
                        raise self._named(exc) from None
                    if doc is base:
                        return  # nothing changed: no version, no notification
                    if doc.__class__ is not FrozenDict and not isinstance(doc, dict):
                        raise PatchError(
                            f"store {self.name!r}: the document must stay an object, "
                            f"not become {_paths.type_name(doc)}"
                        )
                    if ops is None and (
                        in_tx or self._schema or state.patch_listeners or state.link
                    ):
                        ops, inverse = _patch.expand_replace(inverse)
                    if in_tx:
                        state.tx_doc = doc
                        state.tx_ops.extend(ops)  # type: ignore[arg-type]
                        state.tx_inverse.append(inverse)
                        return
                    if self._schema is not None:
                        doc, ops, inverse = self._schema_checked(base, doc, ops, inverse)  # type: ignore[arg-type]
                    if state.link is None:
                        self._publish(state, doc, ops, inverse, record=True)
                        break
                    version = self._pushed(state, ops)  # type: ignore[arg-type]
                    if version is not None:
                        self._publish(state, doc, ops, inverse, record=True, version=version)
                        break
                    # The backend had moved on: the copy is up to date now and
                    # the change runs again on the fresh document.
                else:
                    raise VersionConflict(
                        f"store {self.name!r}: gave up after {_MAX_RETRIES} attempts; "
                        "the backend kept changing under this write"
                    )
        finally:
            local.batch -= 1
            if not local.batch and local.queue:
                _engine.flush(local)
        if state.notify or state.outbox:
            self._listeners_after(state, local, current)

    def _listeners_after(self, state: CopyState, local: Any, current: Scope) -> None:
        """Listeners, then patch listeners, after a commit (lock released, batch ended).

        ``local`` is this thread's engine state and ``current`` its scope.
        """
        if state.notify:  # _store_listen.notify, inlined
            if local.batch or local.flushing:
                _engine.schedule(state.dispatcher)  # type: ignore[arg-type]
            elif current is state.owner:
                dispatch(state, local)
            else:
                state.owner.runner(state.dispatch_fn)
        if state.outbox:
            self._deliver(state)

    def _after_commit(self, state: _StoreState) -> None:
        """Listeners, then patch listeners, once a commit's batch has ended.

        Does nothing while this thread still holds the copy's lock (a commit
        received while a local one catches up with its backend): whoever
        holds it calls this again once it is released, so no listener ever
        runs under the lock. A listener that takes another copy's lock under
        this one could otherwise deadlock with a thread doing the reverse.
        """
        if state.lock._is_owned():  # type: ignore[attr-defined]
            return
        if state.notify:
            notify(state)
        if state.outbox:
            self._deliver(state)

    def _pushed(self, state: _StoreState, ops: list[dict[str, Any]]) -> int | None:
        """Commit ``ops`` through the copy's backend (lock held): the new version, or None."""
        link = state.link
        if link is None:
            return state.version + 1
        return link.push(ops, state.version)

    def _schema_checked(
        self, base: Any, doc: Any, ops: list[dict[str, Any]], inverse: list[dict[str, Any]]
    ) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
        """Validate ``doc``; if the schema coerced it, record the coercion too."""
        validated = self._validated(doc)  # raises: nothing was published
        if _patch.json_equal(validated, doc):
            return doc, ops, inverse
        # The schema changed the document (coercion, defaults): the ops as
        # sent no longer describe the result, so the commit replaces the
        # document as validated, keeping the stream replayable.
        replace = _patch.apply(doc, [{"op": "replace", "path": "", "value": validated}])[1]
        undo = _patch.apply(validated, [{"op": "replace", "path": "", "value": base}])[1]
        return validated, ops + replace, undo

    def _publish(
        self,
        state: _StoreState,
        doc: Any,
        ops: list[dict[str, Any]] | None,
        inverse: Any,
        *,
        record: bool,
        version: int | None = None,
    ) -> None:
        """Make ``doc`` current and record history (state.lock held)."""
        if record:
            state.undo.append(inverse if ops is None else _packed(ops, inverse))
            if state.redo:
                state.redo.clear()
        state.version = state.version + 1 if version is None else version
        state.head = (doc, state.version)
        _engine.write_changed(state.root, doc)
        if state.listeners:
            state.notify = True
        if state.patch_listeners:
            state.outbox.append((FrozenList(ops), state.version))  # type: ignore[arg-type]

    def _deliver(self, state: CopyState) -> None:
        """Hand queued commits to patch listeners, in order, outside the lock."""
        if state.lock._is_owned():  # type: ignore[attr-defined]
            return  # nested in a lock holder, which delivers after releasing it
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

    def _step(self, *, back: bool) -> bool:
        state = self._state()
        with _BATCH, state.lock:
            if state.tx_depth:
                name = "undo" if back else "redo"
                raise StatekitError(f"store {self.name!r}: {name}() inside a transaction")
            source, target = (state.undo, state.redo) if back else (state.redo, state.undo)
            if not source:
                return False
            commit: _Commit = source.pop()
            forward, backward = _unpacked(commit)
            if back:
                forward, backward = backward, forward
            doc, ops = _patch.apply(state.root.value, forward)
            version = self._pushed(state, ops)
            if version is None:
                raise VersionConflict(
                    f"store {self.name!r}: nothing to {'undo' if back else 'redo'} here "
                    "any more; the backend changed meanwhile (history was dropped)"
                )
            target.append(commit)
            self._publish(state, doc, ops, backward, record=False, version=version)
        self._after_commit(state)
        return True

    def undo(self) -> bool:
        """Undo the last change (bounded by ``history=``); return whether there was one.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"n": 1})
            >>> s.set("n", 2); s.undo(), s.get("n"), s.undo()
            (True, 1, False)
        """
        return self._step(back=True)

    def redo(self) -> bool:
        """Redo the last undone change; return whether there was one.

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"n": 1})
            >>> s.set("n", 2); _ = s.undo(); s.redo(), s.get("n")
            (True, 2)
        """
        return self._step(back=False)

    # ------------------------------------------------------------ listening

    def listen(
        self, path: str | Sequence[str], callback: Callable[[Any], Any]
    ) -> Callable[[], None]:
        """Call ``callback(value)`` when the value at ``path`` changes; return ``off``.

        Fires for changes at, under or above ``path`` (anything that changes
        what ``get(path)`` returns) and not for unrelated ones. A path that
        stops existing is reported as ``None``. Each call runs outside every
        lock; one that raises is reported and does not stop the others.

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
        parts = self._parse(path)
        if len(parts) == 1 and parts[0] in self._selectors:
            return listen_selector(self, state, parts[0], callback)

        return add_listener(state, parts, callback, f"{self.name}:{_paths.format(parts)}")

    def on_patch(self, callback: PatchListener) -> Callable[[], None]:
        """Call ``callback(ops, version)`` after every commit; return ``off``.

        ``ops`` are the RFC 6902 operations of the change, whichever method
        made it (set, update, patch, undo, restore...), in order, frozen.
        Commits are delivered in version order, one at a time, outside the
        store's lock (a commit made by a listener is delivered after the
        current one).

        Example:
            >>> import statekit as sk
            >>> s = sk.Store({"n": 1})
            >>> off = s.on_patch(lambda ops, version: print(version, ops))
            >>> s.update("n", lambda n: n + 1)
            1 [{'op': 'replace', 'path': '/n', 'value': 2}]
            2
        """
        state = self._state()
        with state.lock:
            state.patch_listeners.append(callback)
        # ``off`` keeps the callback only until it is called: a caller that
        # keeps ``off`` around does not keep the listener alive.
        held: list[PatchListener] = [callback]
        del callback

        def off() -> None:
            with state.lock:
                if held:
                    listener = held.pop()
                    for at, candidate in enumerate(state.patch_listeners):
                        if candidate is listener:
                            del state.patch_listeners[at]
                            break

        return off

    # ------------------------------------------------------------ derived

    def atom(self, key: str | Sequence[str], default: Any = None) -> StoreAtom[Any]:
        """Declare ``key`` (added with ``default`` if missing) and return an atom-like handle.

        Example:
            >>> import statekit as sk
            >>> form = sk.Store({})
            >>> email = form.atom("email", "")
            >>> email.value = "a@b.c"
            >>> form.get("email")
            'a@b.c'
        """
        parts = self._parse(key)
        add = [{"op": "add", "path": _paths.format(parts), "value": default}]
        # Checked and added in one commit (under the lock): two threads
        # declaring the same key never overwrite a value set in between.
        self._commit(
            lambda doc: (
                (doc, [], []) if _paths.exists(doc, parts) else _patch.apply_with_inverse(doc, add)
            )
        )
        return StoreAtom(self, parts, default)

    def selector(self, key: str) -> Callable[[Callable[[Callable[[str], Any]], T]], Computed[T]]:
        """Declare a derived value ``key`` computed from ``get(path)`` reads.

        Dependencies are tracked on every run, so a selector that reads ``a``
        or ``b`` depending on a flag follows the flag. Like every computed it
        is lazy: nobody watching it, no work on writes.

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
            self._selector_fns[key] = fn
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
        self._default = _patch.freeze_json(default, parts)

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
        """Back to the declared default (not ``None``), re-adding the key if it was deleted."""
        self._store.add(self._parts, self._default)

    def subscribe(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Call ``callback(value)`` after each change; return ``off``."""
        return self._store.listen(self._parts, callback)
