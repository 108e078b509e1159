"""The store's write hot path, in the subset of Python that mypyc compiles.

``Store.set``, the listener loop (``dispatch``) and a selector listener's run
(``SelectorRun``) are most of what a write costs, and in pure Python most of
that is the interpreter itself (issue 3: ``set`` + 1 listener spent half its
instructions in the eval loop). So they live here, and ``make compile``
compiles this module with the engine (``_engine/_sources.py``,
``COMPILABLE``); the public classes and their docstrings stay in ``_store``,
``_store_listen`` and ``_store_select``, which re-export what they use from
here (mypyc drops docstrings, and the doctests are part of the suite).

What compiling needs here, besides the engine's rules (docs/engine.md):

- The fields the hot path reads live on native classes (:class:`CopyState`,
  :class:`Listener`, :class:`SelectorRun`): compiled code reads a native
  field from the object's struct, but an interpreted class's slot through a
  full attribute lookup. ``_store._StoreState`` subclasses ``CopyState`` only
  to add ``__weakref__`` (the server keeps copies in a weak map), which a
  compiled class cannot honour.
- ``head`` and the tuples are annotated as variable-length tuples: a
  fixed-length tuple field would be unboxed by mypyc and re-boxed (a new
  object) on every read from Python.
- Constants are ``Final`` (a C static compiled; a module dict lookup otherwise).

Run pure, this is ordinary Python with the same behaviour, tested in both
modes (CI).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from ._engine import _core, _graph
from ._engine._core import _State, _TooDeep, dispose_node, untracked_call, update_computed
from ._engine._hooks import report
from ._engine._nodes import (
    DISPOSED,
    HAS_ERROR,
    STALE,
    ComputedNode,
    DefinitionBase,
    Failure,
    Node,
    SignalNode,
    WatcherNode,
)
from ._frozen import FrozenDict
from ._mypyc import mypyc_attr
from ._patch import freeze_json, json_equal, missing_key, replace_lazy
from ._paths import PARSED
from ._paths import get as _get
from ._scope import _current
from ._subscribe import start_effect, stop_effect
from .exceptions import CycleError, PatchError, PathError

if TYPE_CHECKING:
    from ._computed import Computed
    from ._store import Store, StoreLink

__all__ = [
    "MAX_RERUNS",
    "MISSING",
    "SCALARS",
    "CopyState",
    "Listener",
    "SelectorRun",
    "dispatch",
    "identical",
    "same_value",
    "store_set",
    "value_at",
]

MISSING: Final[Any] = object()  # the value at a path that does not exist
MAX_RERUNS: Final = 100  # passes of one loop re-triggered by its own listeners: a cycle
# Compared by value by listeners (``same_value``).
SCALARS: Final[frozenset[type]] = frozenset({int, str, float, bool, type(None)})
# Compared by value by ``set`` (``_patch._SCALAR``): a write of an equal one is no change.
_SET_SCALAR: Final[frozenset[type]] = frozenset({str, int, float, bool})
# A string, int, bool or None is its own frozen form (a float is checked: NaN, inf).
_PLAIN: Final[frozenset[type]] = frozenset({int, str, bool, type(None)})
_NOT_CLEAN: Final = STALE | HAS_ERROR | DISPOSED

_DISPLAY_COPY_MAX: Final = 32  # top-level keys up to which ``set`` copies through a display

# Imported names a compiled module would look up in its globals dict on
# every use; a Final alias is a C static.
_PARSED: Final = PARSED
_FrozenDict: Final = FrozenDict
_current_scope: Final = _current.get
_dict_get: Final = dict.get
_tls: Final = _core.tls
_evaluation: Final = _core._ev  # the computed being evaluated is ``_evaluation.active``
_lock: Final = _core.lock
_lock_acquire: Final = _core.lock.acquire
_lock_release: Final = _core.lock.release


def identical(old: Any, new: Any) -> bool:
    # Copy-on-write documents: an unchanged subtree is the same object.
    return old is new


@mypyc_attr(allow_interpreted_subclasses=True)
class CopyState(Node):
    """The fields of one scope's copy of a store (``_store._StoreState`` adds ``__weakref__``)."""

    __slots__ = (
        "claim",
        "delivering",
        "dispatch_fn",
        "dispatcher",
        "head",
        "link",
        "listeners",
        "lock",
        "notify",
        "outbox",
        "patch_listeners",
        "prune_at",
        "redo",
        "root",
        "tx_depth",
        "tx_doc",
        "tx_inverse",
        "tx_ops",
        "tx_thread",
        "undo",
        "version",
        "views",
    )

    def __init__(self, store: Any, scope: Any, min_prune: int) -> None:
        super().__init__(0, store.name, scope)
        initial = store._initial
        self.root = SignalNode(initial, f"{store.name}:/", scope, identical)
        self.version = 0
        self.views: dict[tuple[str, ...], ComputedNode] = {}
        self.prune_at = min_prune
        self.patch_listeners: list[Callable[[list[dict[str, Any]], int], Any]] = []
        # Commits waiting for their patch listeners, delivered in version order
        # by one thread at a time, outside the lock.
        self.outbox: deque[tuple[list[dict[str, Any]], int]] = deque()
        self.delivering = False
        self.undo: deque[tuple[Any, ...]] = deque(maxlen=store._history)
        self.redo: list[tuple[Any, ...]] = []
        self.lock = threading.RLock()
        # The open transaction (held by one thread, under ``lock``): its
        # working document, its ops and the undo ops of each change.
        self.tx_depth = 0
        self.tx_thread = 0
        self.tx_doc: Any = None
        self.tx_ops: list[dict[str, Any]] = []
        self.tx_inverse: list[list[dict[str, Any]]] = []
        # The backend this copy commits through (statekit.backends), or None.
        self.link: StoreLink | None = None
        # Listeners (see _store_listen): the committed document with its
        # version, the listeners, and the loop that calls them.
        self.head: tuple[Any, ...] = (initial, 0)
        self.listeners: tuple[Listener, ...] = ()
        self.notify = False
        self.dispatcher: WatcherNode | None = None
        self.claim: list[bool] | None = None  # dispatch's token
        self.dispatch_fn: Callable[[], None] = partial(dispatch, self)

    def current(self) -> Any:
        """The document as this thread sees it: its own open transaction's, or the committed one."""
        if self.tx_depth and self.tx_thread == threading.get_ident():
            return self.tx_doc
        return self.root.value


class Listener:
    """One ``listen(path, callback)``: its path, the value it last saw, and since when."""

    __slots__ = ("callback", "key", "last", "parts", "select", "version", "where")

    def __init__(
        self,
        parts: tuple[str, ...],
        callback: Callable[[Any], Any],
        where: str,
        select: SelectorRun | None = None,
    ) -> None:
        self.parts = parts
        # A listener on a selector (``_store_select``): the loop runs it instead.
        self.select = select
        # A top-level key is read with one dict lookup (the common case); a
        # selector's listener has none (the loop runs its selector instead).
        self.key: str | None = parts[0] if len(parts) == 1 and select is None else None
        self.callback: Callable[[Any], Any] | None = callback
        self.where = where
        self.last: Any = MISSING
        # The document version ``last`` was read at: a loop holding an older
        # document (read before this listener was added) skips it.
        self.version = 0


def value_at(doc: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` in ``doc``, or ``MISSING``."""
    try:
        return _get(doc, parts)
    except PathError:
        return MISSING


def same_value(old: Any, new: Any) -> bool:
    """Whether a listener would see no change (a subtree rebuilt equal is none)."""
    if old is new:
        return True
    kind = type(new)
    if kind in SCALARS:  # the common case, without a call
        return type(old) is kind and bool(old == new)
    if old is MISSING or new is MISSING:
        return False
    return json_equal(old, new)


def dispatch(state: CopyState, local: Any = None) -> None:
    """Call the listeners whose value changed since they last heard (outside every lock).

    ``local`` is this thread's engine state, if the caller has it at hand.
    """
    claim = state.claim
    assert claim is not None  # made with the dispatcher, before any listener
    engine: _State = _tls.state if local is None else local
    tracking = engine.active
    engine.active = None  # listeners run untracked
    passes = 0
    try:
        while state.notify:
            # The claim is a one-token list: popping the token is atomic
            # (one C call under the GIL) and, unlike a non-blocking
            # ``Lock.acquire(False)``, parses no arguments. No token: another
            # thread, or this very loop re-entered by a listener, delivers.
            try:
                token = claim.pop()
            except IndexError:
                return
            try:
                state.notify = False
                if state.owner.disposed:
                    return  # the scope is gone (its dispatcher with it)
                head = state.head
                doc = head[0]
                version: int = head[1]
                for listener in state.listeners:
                    if listener.version >= version:
                        continue
                    key = listener.key
                    if key is not None:
                        value = _dict_get(doc, key, MISSING)
                    elif listener.select is not None:
                        listener.select.run(listener, doc)
                        continue
                    else:
                        value = value_at(doc, listener.parts)
                    last = listener.last
                    if value is last:
                        continue
                    kind = type(value)
                    if kind in SCALARS:  # same_value's common case, without a call
                        if type(last) is kind and last == value:
                            continue
                    elif same_value(last, value):
                        continue
                    listener.last = value
                    callback = listener.callback
                    if callback is None:
                        continue  # unsubscribed while this loop ran
                    try:
                        callback(None if value is MISSING else value)
                    except Exception as exc:
                        report(exc, listener.where)
            finally:
                claim.append(token)
            passes += 1
            if passes >= MAX_RERUNS and state.notify:
                state.notify = False
                name = f"listeners of store {state.name!r}"
                report(
                    CycleError([name, name]),
                    f"{name} (re-triggered themselves {MAX_RERUNS} times)",
                )
                return
    finally:
        engine.active = tracking


def store_set(store: Store, path: Any, value: Any) -> None:
    """``Store.set`` (whose docstring says what it does)."""
    # _parse's cached string case, inlined (no call per write).
    try:
        parts = _PARSED[path] if type(path) is str else store._parse(path)
    except KeyError:  # not parsed yet
        parts = store._parse(path)
    if type(value) in _PLAIN:
        frozen = value
    else:
        try:
            frozen = freeze_json(value, parts)
        except PatchError as exc:
            raise store._named(exc) from None
    if not parts or store._schema is not None or _evaluation.active is not None:
        store._commit(replace_lazy, parts, frozen)
        return
    # The common write: _commit(replace_lazy, ...) made without its generality
    # when no transaction, backend or patch listener needs the ops as dicts
    # (or a retry loop), the scope lookup of _node included. The document is
    # copied along ``parts`` only, the undo record stays lazy (``(parts,
    # value, old)``, expanded by undo), and there is no engine batch: nothing
    # between taking the lock and releasing it runs user code, and the flush
    # and listeners run after the release, in _commit's order.
    current = _current_scope()
    # The store as the engine's DefinitionBase: compiled, its ``_depth`` and
    # ``_cache`` are C fields of that native base.
    definition: DefinitionBase = store
    owner = current.chain[definition._depth]
    cache = definition._cache
    state: CopyState = cache[1] if cache[0] is owner else definition._lookup(owner)
    local: _State = _tls.state
    lock = state.lock
    # acquire/release rather than ``with``: no bound __enter__/__exit__
    # made per write (pure Python: about a twentieth of this function's cost).
    lock.acquire()
    try:
        if state.tx_depth or state.patch_listeners or state.link is not None:
            general = True
        else:
            general = False
            root = state.root
            base = root.value
            if len(parts) == 1 and type(base) is _FrozenDict:
                # A top-level key (replace_lazy's own fast case).
                key = parts[0]
                old = _dict_get(base, key, MISSING)
                if old is MISSING:
                    raise store._named(missing_key(parts)) from None
                if old is frozen or (
                    type(old) is type(frozen) and type(frozen) in _SET_SCALAR and old == frozen
                ):
                    return  # nothing changed: no version, no notification
                # A copy with the key replaced. Compiled, a display then one
                # copy into the FrozenDict is the cheapest (about 40% below
                # ``FrozenDict(base, **{key: frozen})``) while the document
                # is small; from some tens of keys its second copy costs more.
                if len(base) <= _DISPLAY_COPY_MAX:
                    doc: Any = _FrozenDict({**base, key: frozen})
                else:
                    doc = _FrozenDict(base, **{key: frozen})
                state.undo.append((parts, frozen, old))
            else:
                try:
                    doc, _, record = replace_lazy(base, parts, frozen)
                except (PathError, PatchError) as exc:
                    raise store._named(exc) from None
                if record is None:  # None only when nothing changed
                    return
                state.undo.append(record)
            if state.redo:
                state.redo.clear()
            version = state.version + 1
            state.version = version
            state.head = (doc, version)
            # _engine.write_changed, inlined, and lock-free while no node
            # depends on the root: the engine links a reader to a signal
            # before it reads the value (read_signal), so a reader that links
            # after the test below reads ``doc`` (the GIL orders the two
            # threads' steps); one linked before it is propagated to.
            root.value = doc
            root.version += 1
            if root.subs is not None:
                with _lock:
                    subs = root.subs
                    if subs is not None:
                        _graph.propagate(subs, local.queue)
            if state.listeners:
                state.notify = True
    finally:
        lock.release()
    if general:
        store._commit(replace_lazy, parts, frozen)
        return
    if local.queue and not local.batch:
        _core.flush(local)
    if not state.notify:
        if state.outbox:
            store._deliver(state)
        return
    if local.batch or local.flushing or current is not owner or state.outbox:
        store._listeners_after(state, local, current)
        return
    dispatch(state, local)


class SelectorRun:
    """The selector side of one listener: how to run it, what its last run read."""

    __slots__ = ("computed", "deps", "doc", "fn", "node", "reads", "store", "watcher")

    def __init__(
        self,
        store: Store,
        computed: Computed[Any],
        fn: Callable[[Callable[..., Any]], Any],
        state: CopyState,
    ) -> None:
        self.store = store
        self.computed = computed
        self.fn = fn
        owner = state.owner
        # Never subscribed to and never read by another node: only its
        # evaluation (the active node, the lock, the error and the frozen
        # result) is the engine's.
        self.node = ComputedNode(partial(fn, self.get), computed.name, owner, None, owner.runner)
        self.doc: Any = None  # the document being read, during a run
        self.reads: list[tuple[tuple[str, ...], Any]] = []
        # (parts, value) read by the last run (its ``reads`` list, never
        # appended to once the run is over); None: run it on the next commit.
        self.deps: Sequence[tuple[tuple[str, ...], Any]] | None = None
        self.watcher: WatcherNode | None = None  # set once moved to the engine

    def get(self, path: Any = "") -> Any:
        """The selector's ``get``: ``store.get`` on the document of this run, recorded."""
        store = self.store
        doc = self.doc
        if doc is None:  # called after its run (kept by the selector): a plain read
            return store.get(path)
        try:
            parts = _PARSED[path] if type(path) is str else store._parse(path)
        except KeyError:  # not parsed yet
            parts = store._parse(path)
        if len(parts) == 1:
            key = parts[0]
            selectors = store._selectors
            if key in selectors:  # a tracked read of another selector's computed
                return selectors[key].value
            value = _dict_get(doc, key, MISSING)
        else:
            value = value_at(doc, parts)
        self.reads.append((parts, value))
        if value is MISSING:
            try:
                _get(doc, parts)  # the precise error
            except PathError as exc:
                raise store._named(exc) from None
        return value

    def evaluate(self, doc: Any) -> Any:
        """Run the selector on ``doc`` as a computed: its result, or a Failure.

        Records what it read through ``get`` in ``deps``. Afterwards
        ``self.node.deps is not None`` tells that the run also read
        something the engine tracks (an atom, another selector...).
        """
        node = self.node
        # acquire/release rather than ``with``: no bound __enter__/__exit__
        # made per run (one run per write that changes what it read).
        _lock_acquire()
        try:
            self.doc = doc
            reads: list[tuple[tuple[str, ...], Any]] = []
            self.reads = reads
            try:
                try:
                    # Called by its own name, not through an alias: a compiled
                    # call of a compiled function is a C call.
                    update_computed(node)
                except _TooDeep:  # a chain too deep for the stack, read by the selector
                    _core._drive(update_computed, node)
            finally:
                self.doc = None
            # The list itself (no tuple copy): the next run appends to a new one.
            self.deps = reads
            return node.value
        finally:
            _lock_release()

    def seed(self, state: CopyState) -> tuple[Any, ...] | None:
        """``(value,)`` from the selector's own computed, if it is current and read only views.

        Listening to a selector whose value is cached already (read through
        ``.value`` since the last change) starts from that value without a
        run: the paths it read are its engine dependencies, this copy's
        views, each holding the value it read (the copy's lock is held, so
        they are of the committed document). ``None``: run it instead.
        """
        node: Any = state.owner._nodes.get(self.computed)
        if node is None:
            return None
        with _lock:
            if node.flags & _NOT_CLEAN or node.deps is None:
                return None
            where = {id(view): parts for parts, view in state.views.items()}
            deps: list[tuple[tuple[str, ...], Any]] = []
            link = node.deps
            while link is not None:
                view = link.dep
                parts = where.get(id(view))
                if parts is None or view.flags & _NOT_CLEAN:
                    return None  # it read something else: an atom, another selector...
                deps.append((parts, view.value))
                link = link.next_dep
            self.deps = tuple(deps)
            return (node.value,)

    def run(self, listener: Listener, doc: Any) -> None:
        """One pass of the store's listener loop: run and deliver if needed."""
        if self.watcher is not None:
            return
        deps = self.deps
        if deps is not None:
            # Changed: a value the last run read is another object in ``doc``.
            plain = type(doc) is _FrozenDict
            changed = False
            for parts, seen in deps:
                if plain and len(parts) == 1:
                    value = _dict_get(doc, parts[0], MISSING)
                else:
                    value = value_at(doc, parts)
                if value is not seen:
                    changed = True
                    break
            if not changed:
                return
        value = self.evaluate(doc)
        if self.node.deps is not None:  # it read something tracked as well
            self.to_engine(listener)
            return
        if type(value) is Failure:
            report(value.exc, listener.where)
            return
        last = listener.last
        try:
            same = last is value or bool(last == value)
        except Exception:  # e.g. arrays whose == is elementwise: a change
            same = False
        listener.last = value
        callback = listener.callback
        if same or callback is None:
            return
        try:
            callback(value)
        except Exception as exc:
            report(exc, listener.where)

    def to_engine(self, listener: Listener) -> None:
        """From now on, an engine watcher on the selector's computed delivers."""
        with _lock:
            if self.watcher is not None:
                return  # moved already (by the loop, or by listen)
            # A placeholder first, so the loop skips this listener from now on.
            self.watcher = PLACEHOLDER
        scope = self.node.owner
        dispose_node(self.node)  # unlinked from what its run read
        self.deps = None
        computed = self.computed

        def watch() -> None:
            value = computed.value
            last = listener.last
            try:
                same = last is value or bool(last == value)
            except Exception:
                same = False
            listener.last = value
            callback = listener.callback
            if not same and callback is not None:
                untracked_call(lambda: callback(value))

        watcher = start_effect(watch, f"listener of {computed.name}", scope)
        self.watcher = watcher
        if listener.callback is None:  # unsubscribed meanwhile
            stop_effect(watcher)


PLACEHOLDER: Final = WatcherNode(lambda: None, "selector listener moving to the engine", None, None)
