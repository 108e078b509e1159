"""Listeners on store selectors, run by the store's own listener loop.

``store.listen("double", cb)`` on a selector used to subscribe an engine
watcher to the selector's computed, so every write went propagate -> flush
-> watcher -> computed -> view -> root: five nodes and some sixty Python
calls for ``double = get("n") * 2``. A selector reads the store through the
``get`` it is handed, and a store commit already tells which paths changed
(by identity: copy-on-write), so the listener here lives in the store copy's
listener loop (``_store_listen.dispatch``) like a path listener, and:

- records the paths the selector's last run read through ``get``, with the
  values it saw there; a commit that leaves all of them the same object is
  no change, without running the selector (the precision the views gave);
- otherwise runs the selector again, as a computed: through a private engine
  node (``update_computed``, under the engine lock), so a write from inside
  it is refused, its result is frozen like any computed's, an error is kept
  and reported, and any tracked read it makes that is not this store's
  ``get`` (an atom, another store, another selector...) is seen as a
  dependency of that node;
- compares the result with the value it last delivered (the equality
  subscribe_node uses) and calls the listener outside every lock.

Dependencies are recorded on every run, so a selector that reads ``a`` or
``b`` depending on a flag follows the flag; nothing runs while nobody
listens (the selector's own computed stays lazy for ``.value`` readers).

A selector whose run reads anything tracked besides its ``get`` cannot be
told changed by the store alone: that listener moves, for good, to an
engine watcher on the selector's computed (the old path), which delivers
only values different from the last one delivered here, so the switch
neither repeats nor drops a value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _engine
from ._engine import ComputedNode, WatcherNode
from ._engine import _core as _engine_core
from ._engine._nodes import DISPOSED, HAS_ERROR, STALE, Failure
from ._frozen import FrozenDict
from ._paths import PARSED as _PARSED
from ._paths import get as _get
from ._store_listen import MISSING, Listener, register, value_at
from ._subscribe import start_effect, stop_effect
from .exceptions import PathError

if TYPE_CHECKING:
    from ._computed import Computed
    from ._store import Store, _StoreState

__all__ = ["SelectorRun", "listen_selector"]

_dict_get = dict.get
_lock_acquire = _engine_core.lock.acquire
_lock_release = _engine_core.lock.release
_update_computed = _engine_core.update_computed
_TooDeep = _engine_core._TooDeep
_NOT_CLEAN = STALE | HAS_ERROR | DISPOSED


class SelectorRun:
    """The selector side of one listener: how to run it, what its last run read."""

    __slots__ = ("computed", "deps", "doc", "fn", "node", "reads", "store", "watcher")

    def __init__(
        self,
        store: Store,
        computed: Computed[Any],
        fn: Callable[[Callable[..., Any]], Any],
        state: _StoreState,
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
            parts = _PARSED[path] if path.__class__ is str else store._parse(path)
        except KeyError:  # not parsed yet
            parts = store._parse(path)
        if len(parts) == 1:
            key = parts[0]
            if key in store._selectors:  # a tracked read of another selector's computed
                return store._selectors[key].value
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
                    _update_computed(node)
                except _TooDeep:  # a chain too deep for the stack, read by the selector
                    _engine_core._drive(_update_computed, node)
            finally:
                self.doc = None
            # The list itself (no tuple copy): the next run appends to a new one.
            self.deps = reads
            return node.value
        finally:
            _lock_release()

    def seed(self, state: _StoreState) -> tuple[Any] | None:
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
        with _engine.lock:
            if node.flags & _NOT_CLEAN or node.deps is None:
                return None
            where = {id(view): parts for parts, view in state.views.items()}
            deps = []
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
            plain = doc.__class__ is FrozenDict
            for parts, seen in deps:
                if plain and len(parts) == 1:
                    value = _dict_get(doc, parts[0], MISSING)
                else:
                    value = value_at(doc, parts)
                if value is not seen:
                    break
            else:
                return
        value = self.evaluate(doc)
        if self.node.deps is not None:  # it read something tracked as well
            self.to_engine(listener)
            return
        if value.__class__ is Failure:
            _engine.report(value.exc, listener.where)
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
            _engine.report(exc, listener.where)

    def to_engine(self, listener: Listener) -> None:
        """From now on, an engine watcher on the selector's computed delivers."""
        with _engine.lock:
            if self.watcher is not None:
                return  # moved already (by the loop, or by listen)
            # A placeholder first, so the loop skips this listener from now on.
            self.watcher = _PLACEHOLDER
        scope = self.node.owner
        _engine.dispose_node(self.node)  # unlinked from what its run read
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
                _engine.untracked_call(lambda: callback(value))

        watcher = start_effect(watch, f"listener of {computed.name}", scope)
        self.watcher = watcher
        if listener.callback is None:  # unsubscribed meanwhile
            stop_effect(watcher)


_PLACEHOLDER = WatcherNode(lambda: None, "selector listener moving to the engine", None, None)


def listen_selector(
    store: Store, state: _StoreState, key: str, callback: Callable[[Any], Any]
) -> Callable[[], None]:
    """``store.listen(key, callback)`` for the selector ``key``; return ``off``."""
    computed = store._selectors[key]
    run = SelectorRun(store, computed, store._selector_fns[key], state)
    listener = Listener((key,), callback, f"effect {'listener of ' + computed.name!r}", run)
    del callback

    def baseline(doc: Any) -> Any:
        # The value listening starts from (no call); an error is the caller's.
        seeded = run.seed(state)
        if seeded is not None:
            return seeded[0]
        value = run.evaluate(doc)
        if value.__class__ is Failure:
            value.throw()
        return value

    off_listener = register(state, listener, baseline, computed.name)
    if run.node.deps is not None:  # its first run read more than the store
        run.to_engine(listener)

    def off() -> None:
        off_listener()
        watcher = run.watcher
        if watcher is not None and watcher is not _PLACEHOLDER:
            stop_effect(watcher)

    return off
