"""Propagation, evaluation, batching and the effect queue.

Push-pull: a write marks downstream nodes (``_graph.propagate``) and queues the
watchers it reaches; a read pulls, recomputing only nodes that are DIRTY or
turn out to be (``check_dirty``), and stops early when a recomputed value is
equal to the old one.

Threads: one re-entrant lock guards the graph. Computeds evaluate under it
(they must be pure); effects and listeners run *outside* it, so user code that
waits on another thread cannot deadlock the graph. Which node is being
tracked, the batch depth and the effect queue are per thread.

Depth: evaluating a computed that reads a never-computed computed nests Python
calls. Past ``MAX_NESTING`` nested evaluations the engine unwinds with
``_TooDeep`` and evaluates the deepest node first, so a chain of any length
works at the default recursion limit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Final

from ..exceptions import CycleError, StatekitError
from ._graph import detach, end_tracking, link, propagate, shallow_propagate
from ._hooks import report
from ._local import ThreadLocal
from ._nodes import (
    DIRTY,
    DISPOSED,
    HAS_ERROR,
    PENDING,
    QUEUED,
    RUNNING,
    STALE,
    WATCHER,
    ComputedNode,
    DefinitionBase,
    Failure,
    Link,
    Node,
    SignalNode,
    WatcherNode,
)

# Nested evaluations before unwinding. Each level costs ~5 Python frames (the
# user function, the definition read, the engine), so 150 levels fit under the
# default recursion limit of 1000 from ordinary call sites; if a deep call site
# or frame-hungry computeds hit RecursionError first, the engine unwinds the
# same way instead of caching the error.
MAX_NESTING: Final = 150
MAX_RERUNS: Final = 100  # an effect re-triggered by its own run more often than this is a cycle

# Flag masks of the hot paths, computed once.
_NOT_DIRTY_OR_PENDING: Final = ~(DIRTY | PENDING)
_NOT_RUNNING: Final = ~RUNNING
_NOT_RUNNING_OR_ERROR: Final = ~(RUNNING | HAS_ERROR)
_NOT_QUEUED: Final = ~QUEUED
_NOT_PENDING: Final = ~PENDING
_SKIP_RUN: Final = DISPOSED | RUNNING
_DIRTY_OR_RUNNING: Final = DIRTY | RUNNING
_NOT_RUNNING_OR_PENDING: Final = ~(RUNNING | PENDING)
_NO_LINK: Link | None = None  # not a literal None: mypy would narrow ``deps_tail`` to None

lock: Final = threading.RLock()


class _State:
    """One thread's engine state, reached through one thread-local lookup."""

    __slots__ = ("active", "batch", "flushing", "queue")

    def __init__(self) -> None:
        self.active: Node | None = None  # the watcher whose run is being tracked
        self.batch = 0
        self.flushing = False
        self.queue: deque[Node] = deque()


tls: Final[ThreadLocal[_State]] = ThreadLocal(_State)


def _no_probe() -> Any:
    return None


def _same(value: Any) -> Any:
    return value


OwnerCheck = Callable[[Node, Node], None]


class _Evaluation:
    """The computed being evaluated, the nesting depth, and the scope layer's hooks.

    One object with fixed fields rather than module globals: compiled, a
    module global costs a dict lookup to read and a dict store to write, a
    field of this object a C load or store (docs/engine.md, "Compiled mode").
    The hooks are installed by ``set_context_probe``, ``set_value_filter``
    and ``set_owner_check``.
    """

    __slots__ = ("active", "nesting", "owner_check", "probe", "value_filter")

    def __init__(self) -> None:
        self.active: Node | None = None  # the computed being evaluated
        self.nesting = 0  # nested computed evaluations right now
        self.probe: Callable[[], Any] = _no_probe
        self.value_filter: Callable[[Any], Any] = _same
        self.owner_check: OwnerCheck | None = None


# Computed evaluation happens under ``lock``, so the computed being tracked is
# shared state rather than a thread-local (a thread-local lookup costs about
# three times more on the hottest path). Only the thread holding the lock
# evaluates, so "``_ev.active`` is set and I hold the lock" means "I am
# evaluating ``_ev.active``": a reader in another thread takes the slow path.
# (``_is_owned`` allocates nothing; ``get_ident() == owner`` makes an int.)
_ev: Final = _Evaluation()
# Computeds whose run is in an untracked read (``_ev.active`` is None meanwhile),
# innermost last: how ``_evaluating`` follows the chain of runs past them.
_suspended: Final[list[Node]] = []
_held: Final = lock._is_owned  # type: ignore[attr-defined]
_acquire: Final = lock.acquire
_release: Final = lock.release


def tracker() -> Node | None:
    """The node recording dependencies on this thread: a computed or a watcher."""
    active = _ev.active
    if active is not None and _held():
        return active
    return tls.state.active


class _TooDeep(BaseException):
    """Unwinds a too-deep evaluation; ``node`` is evaluated first, then retried.

    A BaseException so that user code's ``except Exception`` does not eat it.
    """

    def __init__(self, node: ComputedNode) -> None:
        super().__init__(node.name)
        self.node = node


# --------------------------------------------------------------------------
# evaluation


def _equal(equals: Callable[[Any, Any], bool] | None, old: Any, new: Any) -> bool:
    try:
        if equals is not None:
            return bool(equals(old, new))  # a custom equals has the last word
        return old is new or bool(old == new)
    except Exception:
        return False  # e.g. arrays whose == is elementwise: treat as changed


def update_computed(node: ComputedNode) -> bool:
    """Re-run ``node``; return whether its value (or error) changed.

    The new value is stored *before* RUNNING is cleared: a lock-free reader
    (which only trusts a node without DIRTY, PENDING or RUNNING) never sees
    a half-finished run.
    """
    prev = _ev.active
    _ev.active = node
    node.caller = prev
    node.deps_tail = _NO_LINK
    node.flags = node.flags & _NOT_DIRTY_OR_PENDING | RUNNING
    try:
        if node.owner is _ev.probe():
            new = node.fn()
        else:
            context = node.context
            new = node.fn() if context is None else context(node.fn)
    except BaseException as exc:
        _ev.active = prev
        node.caller = None  # only a running node's caller is read: drop the reference
        if isinstance(exc, RecursionError) and _ev.nesting:
            # Out of stack while nested: unwind and evaluate this node first.
            node.flags = (node.flags & ~RUNNING) | DIRTY
            raise _TooDeep(node) from None
        if isinstance(exc, Exception):
            end_tracking(node)
            node.value = Failure(exc)
            # A cycle is not a property of the dependencies recorded (the
            # read that closed it was refused), so stay dirty: the next read
            # tries again and succeeds once the cycle is broken.
            node.flags = (
                (node.flags & ~RUNNING) | HAS_ERROR | (DIRTY if isinstance(exc, CycleError) else 0)
            )
            return True
        # _TooDeep, KeyboardInterrupt...: leave the node to be recomputed.
        node.flags = (node.flags & ~RUNNING) | DIRTY
        raise
    _ev.active = prev
    node.caller = None
    if new.__class__ not in _PLAIN:
        new = _ev.value_filter(new)
    tail = node.deps_tail
    if (node.deps if tail is None else tail.next_dep) is not None:
        end_tracking(node)
    old = node.value
    if old.__class__ is not Failure:  # neither an error nor the first run
        equals = node.equals
        if equals is None:
            try:
                if old is new or old == new:
                    node.flags &= _NOT_RUNNING
                    return False
            except Exception:
                pass  # e.g. arrays whose == is elementwise: a change
        elif _equal(equals, old, new):
            node.flags &= _NOT_RUNNING
            return False
    node.value = new
    node.flags &= _NOT_RUNNING_OR_ERROR
    return True


def check_dirty(lnk: Link, sub: Node) -> bool:
    """Whether any dependency of ``sub`` really changed (pulling PENDING ones)."""
    stack: list[Link] = []
    current = lnk
    while True:
        dep = current.dep
        dep_flags = dep.flags
        dirty = False
        if sub.flags & DIRTY:
            dirty = True
        elif dep_flags & DIRTY:
            if update_computed(dep):  # type: ignore[arg-type]
                subs = dep.subs
                if subs is not None and subs.next_sub is not None:
                    shallow_propagate(subs)
                dirty = True
        elif dep_flags & PENDING:
            stack.append(current)
            current = dep.deps  # type: ignore[assignment]
            sub = dep
            continue
        if not dirty and current.next_dep is not None:
            current = current.next_dep
            continue
        while stack:
            parent = stack.pop()
            if dirty:
                if update_computed(sub):  # type: ignore[arg-type]
                    subs = sub.subs
                    if subs is not None and subs.next_sub is not None:
                        shallow_propagate(subs)
                    sub = parent.sub
                    continue
                dirty = False
            else:
                sub.flags &= ~PENDING
            sub = parent.sub
            if parent.next_dep is not None:
                current = parent.next_dep
                break
        else:
            return dirty


def _refresh(node: ComputedNode) -> None:
    """Bring ``node`` up to date (lock held)."""
    flags = node.flags
    if flags & RUNNING:
        raise _cycle(node)
    if flags & DIRTY or (flags & PENDING and check_dirty(node.deps, node)):  # type: ignore[arg-type]
        if update_computed(node):
            subs = node.subs
            if subs is not None:
                shallow_propagate(subs)
    elif flags & PENDING:
        node.flags = flags & ~PENDING


def _refresh_nested(node: ComputedNode) -> None:
    """``_refresh`` from inside a computed's run: one level deeper.

    Only these reads nest Python calls (a top-level pull is iterative), so the
    depth is counted here and not in every ``update_computed``.
    """
    nesting = _ev.nesting
    if nesting >= MAX_NESTING:
        raise _TooDeep(node)
    _ev.nesting = nesting + 1
    try:
        _refresh(node)
    finally:
        _ev.nesting = nesting


def _cycle(node: Node) -> CycleError:
    names = [node.name]
    for walk in _evaluating():
        if walk is node:
            break
        names.append(walk.name)
    names.append(node.name)
    if len(names) > 2:
        names[1:-1] = reversed(names[1:-1])
    return CycleError(names)


def _evaluating() -> Iterator[Node]:
    """The computeds being evaluated on this thread, innermost first.

    Each run records the run it nests in (``caller``, ``update_computed``);
    a run started inside an untracked read has none, and the chain goes on
    at the computed that made that read (``_suspended``). Only a CycleError
    needs this, so the hot path pays one attribute store per run for it, and
    it works when the engine is compiled (no Python frames to read).
    """
    walk = _ev.active
    outer = len(_suspended)
    while True:
        while walk is not None:
            yield walk
            walk = walk.caller  # type: ignore[attr-defined]
        if not outer:
            return
        outer -= 1
        walk = _suspended[outer]


def _drive(action: Callable[[Any], Any], node: Any) -> Any:
    """Run ``action(node)`` at the top level, unwinding and resuming deep chains."""
    if _ev.nesting:
        return action(node)  # nested: the outermost driver handles ``_TooDeep``
    while True:
        try:
            return action(node)
        except _TooDeep as too_deep:
            _unwind(too_deep.node)


def _unwind(node: ComputedNode) -> None:
    """Evaluate a too-deep ``node`` first, and whatever it needs before it."""
    todo = [node]
    while todo:
        try:
            _refresh(todo[-1])
        except _TooDeep as deeper:
            todo.append(deeper.node)
        else:
            todo.pop()


def _deps_changed(watcher: WatcherNode) -> bool:
    """Whether a PENDING watcher's dependencies really changed (lock held, top level)."""
    while True:
        try:
            return check_dirty(watcher.deps, watcher)  # type: ignore[arg-type]
        except _TooDeep as too_deep:
            _unwind(too_deep.node)


def _result(node: ComputedNode) -> Any:
    value = node.value
    if value.__class__ is Failure:
        value.throw()
    return value


# --------------------------------------------------------------------------
# reading
#
# The tracked-read fast path appears inline in the readers below and in the
# definition getters: the dependency read last (a, a, a), the next link of
# last run at the cursor (same dependencies as last time), or the dependency
# read just before the last one (a, b, a, b) need no ``link`` call. Each is
# a read of ``.value`` on every derivation, and a shared helper would cost a
# Python call per read.


def _link_new(node: Node, active: Node) -> None:
    """Track a read that does not reuse a link of the last run (lock held).

    The owner check runs here, not on every read: whether ``active`` may read
    ``node`` depends only on their scopes, which never change, so a link that
    exists has passed it already.
    """
    if node.owner is not active.owner and _ev.owner_check is not None:
        _ev.owner_check(node, active)
    link(node, active)


def read_computed(node: ComputedNode) -> Any:
    """Read a computed's up-to-date value, tracking it for the current run."""
    active = _ev.active
    if active is not None and _held():
        # Inside another computed's evaluation: this thread holds the lock.
        if node.flags & STALE:
            _refresh_nested(node)
        tail = active.deps_tail
        if tail is None or tail.dep is not node:
            following = active.deps if tail is None else tail.next_dep
            if following is not None and following.dep is node:
                active.deps_tail = following
            elif tail is None or tail.prev_dep is None or tail.prev_dep.dep is not node:
                _link_new(node, active)
        value = node.value
        if value.__class__ is Failure:
            value.throw()
        return value
    return _read_computed_outside(node)


def _read_computed_outside(node: ComputedNode) -> Any:
    """A read from an effect, a listener or plain code (not from a computed).

    Lock-free when the node is up to date and the watcher (if any) read it at
    the same position last run: the link already exists, so a concurrent
    write reaches the watcher (RUNNING) and makes it run again. The value is
    one attribute load, never a mix of two runs (see ``update_computed``).
    """
    watcher = tls.state.active
    if not node.flags & STALE:
        if watcher is None:
            value = node.value
            if value.__class__ is Failure:
                value.throw()
            return value
        tail = watcher.deps_tail
        if tail is None:
            following = watcher.deps
        elif tail.dep is node:
            following = tail  # read twice in a row
        else:
            following = tail.next_dep
        if following is not None and following.dep is node:
            watcher.deps_tail = following
            value = node.value
            if value.__class__ is Failure:
                value.throw()
            return value
    with lock:
        if node.flags & STALE:
            try:  # _drive, inlined: a first read comes here
                _refresh(node)
            except _TooDeep as too_deep:
                if _ev.nesting:
                    raise  # nested: the outermost driver handles it
                _unwind(too_deep.node)
                _drive(_refresh, node)
        if watcher is not None and not watcher.flags & DISPOSED:
            link(node, watcher)
        value = node.value
        if value.__class__ is Failure:
            value.throw()
        return value


def peek_computed(node: ComputedNode) -> Any:
    """Read a computed's up-to-date value without tracking it."""
    prev = _ev.active
    if prev is not None and _held():
        _ev.active = None
        _suspended.append(prev)
        try:
            if node.flags & STALE:
                _refresh_nested(node)
            return _result(node)
        finally:
            _ev.active = prev
            _suspended.pop()
    with lock:
        if node.flags & STALE:
            _drive(_refresh, node)
        return _result(node)


def read_signal(node: SignalNode) -> Any:
    """Read a signal, tracking it for the current run."""
    active = _ev.active
    if active is not None and _held():
        tail = active.deps_tail
        if tail is None or tail.dep is not node:
            following = active.deps if tail is None else tail.next_dep
            if following is not None and following.dep is node:
                active.deps_tail = following
            elif tail is None or tail.prev_dep is None or tail.prev_dep.dep is not node:
                _link_new(node, active)
        return node.value
    return _read_signal_outside(node)


def _read_signal_outside(node: SignalNode) -> Any:
    """A signal read outside computeds; lock-free unless a new link is needed."""
    watcher = tls.state.active
    if watcher is None:
        return node.value
    tail = watcher.deps_tail
    if tail is None:
        following = watcher.deps
    elif tail.dep is node:
        return node.value  # read twice in a row
    else:
        following = tail.next_dep
    if following is not None and following.dep is node:
        watcher.deps_tail = following
        return node.value
    with lock:
        if not watcher.flags & DISPOSED:
            link(node, watcher)
        return node.value


def definition_getters(
    misplaced: type[Exception],
) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """The ``.value`` getters of atoms and computeds, with every step inlined.

    A definition resolves its node in the current scope chain (``_depth``
    into the chain, a one-entry ``_cache``, ``_lookup`` on a miss) and reads
    it: this is the one Python call every derivation pays per read, so the
    resolution and the tracked read live in one function. A ``misplaced``
    error from a computed's read is handed to ``self._misplaced(exc, node,
    read_computed)`` (the computed moves to a deeper scope and reads again).
    """

    def signal_value(self: DefinitionBase) -> Any:
        owner = _ev.probe().chain[self._depth]
        cache = self._cache  # one tuple: the pair stays consistent across threads
        # Typed, so that compiled code reads the node's fields as C fields.
        node: SignalNode = cache[1] if cache[0] is owner else self._lookup(owner)
        active = _ev.active
        if active is not None and _held():
            tail = active.deps_tail
            if tail is None or tail.dep is not node:
                following = active.deps if tail is None else tail.next_dep
                if following is not None and following.dep is node:
                    active.deps_tail = following
                elif tail is None or tail.prev_dep is None or tail.prev_dep.dep is not node:
                    _link_new(node, active)
            return node.value
        watcher = tls.state.active
        if watcher is not None:  # lock-free when the link is in place
            tail = watcher.deps_tail
            following = watcher.deps if tail is None else tail.next_dep
            if following is None or following.dep is not node:
                return _read_signal_outside(node)
            watcher.deps_tail = following
        return node.value

    def computed_value(self: DefinitionBase) -> Any:
        owner = _ev.probe().chain[self._depth]
        cache = self._cache  # one tuple: the pair stays consistent across threads
        node: ComputedNode = cache[1] if cache[0] is owner else self._lookup(owner)
        active = _ev.active
        try:
            if active is not None and _held():
                flags = node.flags
                if flags & STALE:  # _refresh_nested, its common case inlined
                    nesting = _ev.nesting
                    if nesting >= MAX_NESTING:
                        raise _TooDeep(node)
                    _ev.nesting = nesting + 1
                    try:
                        if flags & _DIRTY_OR_RUNNING == DIRTY:
                            if update_computed(node):
                                subs = node.subs
                                if subs is not None and (
                                    subs.next_sub is not None or subs.sub is not active
                                ):
                                    shallow_propagate(subs)
                        else:
                            _refresh(node)
                    finally:
                        _ev.nesting = nesting
                tail = active.deps_tail
                if tail is None or tail.dep is not node:
                    following = active.deps if tail is None else tail.next_dep
                    if following is not None and following.dep is node:
                        active.deps_tail = following
                    elif tail is None or tail.prev_dep is None or tail.prev_dep.dep is not node:
                        _link_new(node, active)
            elif not node.flags & STALE:
                # From an effect or plain code, up to date: lock-free as in
                # _read_computed_outside when the link is already in place.
                watcher = tls.state.active
                if watcher is not None:
                    tail = watcher.deps_tail
                    following = watcher.deps if tail is None else tail.next_dep
                    if following is None or following.dep is not node:
                        return _read_computed_outside(node)
                    watcher.deps_tail = following
            else:
                return _read_computed_outside(node)
            value = node.value
            if value.__class__ is Failure:
                value.throw()
            return value
        except misplaced as exc:
            return self._misplaced(exc, node, read_computed)

    return signal_value, computed_value


_PLAIN: Final[frozenset[type]] = frozenset({int, float, str, bool, type(None)})


def set_value_filter(fn: Callable[[Any], Any]) -> None:
    """Install ``fn`` applied to every computed result that is not a plain scalar.

    statekit installs its ``freeze``: a computed's cached list can't be
    changed by one reader behind the others' backs.
    """
    _ev.value_filter = fn


def set_context_probe(probe: Callable[[], Any]) -> None:
    """Install ``probe()`` giving the owner whose context is current.

    A computed whose owner is already current runs without entering its
    context: the common case costs one C-level call instead of a wrapper.
    The definition getters resolve their node through it too, so it must
    return an object with a ``chain`` (a scope) once definitions are read.
    """
    _ev.probe = probe


def set_owner_check(check: OwnerCheck | None) -> None:
    """Install ``check(dep, sub)``, called when a computed reads a node of another owner.

    The scope layer uses it to refuse (or relocate) an app-level computed that
    reads a session's value. It may raise; the error is the computed's result.
    """
    _ev.owner_check = check


# --------------------------------------------------------------------------
# writing


def _side_effect(active: Node, node: SignalNode) -> StatekitError:
    return StatekitError(
        f"computed {active.name!r} tried to write {node.name!r}: "
        "computed values must not have side effects (use an effect or an action)"
    )


def write_signal(node: SignalNode, value: Any) -> bool:
    """Set a signal; return whether it changed. Effects run unless batched."""
    active = _ev.active
    if active is not None and _held():
        raise _side_effect(active, node)
    state = tls.state
    with lock:
        old = node.value
        equals = node.equals
        if equals is None:
            try:
                if old is value or old == value:
                    return False
            except Exception:
                pass  # e.g. arrays whose == is elementwise: a change
        elif _equal(equals, old, value):
            return False
        node.value = value
        node.version += 1
        if node.subs is not None:
            propagate(node.subs, state.queue)
    if state.queue and not state.batch:
        flush(state)
    return True


def write_changed(node: SignalNode, value: Any) -> None:
    """Set a signal whose new value the caller knows differs; never flushes.

    For the store, which tells a change by identity before calling and runs
    its own batch: no equality call, no flush here (the caller's batch end
    flushes). The caller has refused writes from inside a computed.
    """
    with lock:
        node.value = value
        node.version += 1
        if node.subs is not None:
            propagate(node.subs, tls.state.queue)


def schedule(watcher: WatcherNode) -> None:
    """Queue ``watcher`` to run on this thread, as if a dependency had changed.

    It runs when this thread's batch ends, or later in the flush in progress
    (a running watcher runs again when its run ends). The caller makes sure
    one of those is coming: it is inside a batch or a flush.
    """
    queue = tls.state.queue
    with lock:
        flags = watcher.flags
        if flags & DISPOSED:
            return
        if not flags & QUEUED or watcher.queue is not queue:
            watcher.flags = flags | DIRTY | QUEUED
            watcher.queue = queue
            queue.append(watcher)
        else:
            watcher.flags = flags | DIRTY


def modify_signal(node: SignalNode, fn: Callable[[Any], Any]) -> Any:
    """Atomically replace a signal's value by ``fn(old)``; return the new value."""
    active = _ev.active
    if active is not None and _held():
        raise _side_effect(active, node)
    state = tls.state
    with lock:
        old = node.value
        value = fn(old)
        if not _equal(node.equals, old, value):
            node.value = value
            node.version += 1
            if node.subs is not None:
                propagate(node.subs, state.queue)
    if state.queue and not state.batch:
        flush(state)
    return value


# --------------------------------------------------------------------------
# batching and effects


class Batch:
    """Context manager: effects run once, after the outermost batch ends."""

    __slots__ = ()

    def __enter__(self) -> None:
        tls.state.batch += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = tls.state
        state.batch -= 1
        if not state.batch and state.queue:
            flush(state)


def flush(state: _State | None = None) -> None:
    """Run the queued watchers of this thread, in the order they were reached.

    The lock is held for the whole loop except around each watcher's own
    code: the bookkeeping after one watcher's run and the check before the
    next one's share one acquisition.
    """
    if state is None:
        state = tls.state
    if state.flushing:
        return  # a write inside an effect: the outer loop picks its effects up
    state.flushing = True
    queue = state.queue
    # Locals for what the loop uses once per watcher (cheaper than globals).
    popleft = queue.popleft
    not_queued, skip_run, dirty, pending = _NOT_QUEUED, _SKIP_RUN, DIRTY, PENDING
    not_pending, to_run, running = _NOT_PENDING, _NOT_DIRTY_OR_PENDING, RUNNING
    _acquire()
    try:
        while queue:
            watcher: WatcherNode = popleft()  # type: ignore[assignment]
            flags = watcher.flags & not_queued
            if flags & skip_run:
                watcher.flags = flags
                continue  # a running watcher re-checks itself when its run ends
            if not flags & dirty:
                if not flags & pending:
                    watcher.flags = flags
                    continue
                watcher.flags = flags
                try:  # _deps_changed, inlined for the common case
                    changed = check_dirty(watcher.deps, watcher)  # type: ignore[arg-type]
                except _TooDeep:
                    changed = _deps_changed(watcher)
                if not changed:
                    watcher.flags &= not_pending
                    continue
                flags = watcher.flags
            watcher.flags = flags & to_run | running
            watcher.deps_tail = None
            _execute(watcher, state)
    finally:
        _release()
        state.flushing = False


def _execute(watcher: WatcherNode, state: _State) -> None:
    """Run a watcher (RUNNING set, tracking reset), re-running while it is dirty.

    Called and returns with the lock held; releases it around the watcher's
    own code, which never runs under the lock.
    """
    reruns = 0
    while True:
        _release()
        try:
            cleanup = watcher.cleanup
            if cleanup is not None:
                watcher.cleanup = None
                _call_safely(cleanup, watcher)
            prev = state.active
            state.active = watcher
            try:
                context = watcher.context
                if context is None or watcher.owner is _ev.probe():
                    result = watcher.fn()
                else:
                    result = context(watcher.fn)
                if result is not None and callable(result):
                    watcher.cleanup = result
            except Exception as exc:
                report(exc, f"effect {watcher.name!r}")
            finally:
                state.active = prev
        finally:
            _acquire()
        flags = watcher.flags
        if flags & DISPOSED:
            watcher.flags = flags & ~RUNNING
            detach(watcher)
            _release()
            try:
                _final_cleanup(watcher)
            finally:
                _acquire()
            return
        tail = watcher.deps_tail
        if (watcher.deps if tail is None else tail.next_dep) is not None:
            end_tracking(watcher)
        if not flags & DIRTY and not (flags & PENDING and _deps_changed(watcher)):
            watcher.flags &= _NOT_RUNNING_OR_PENDING
            return
        reruns += 1
        if reruns > MAX_RERUNS:
            watcher.flags &= ~(RUNNING | PENDING | DIRTY)
            report(
                CycleError([watcher.name, watcher.name]),
                f"effect {watcher.name!r} (re-triggered itself {MAX_RERUNS} times)",
            )
            return
        watcher.flags = (watcher.flags & ~(DIRTY | PENDING)) | RUNNING
        watcher.deps_tail = None


def start_watcher(watcher: WatcherNode) -> None:
    """First run of a new watcher (runs now, even inside a batch)."""
    with lock:
        watcher.flags = (watcher.flags & ~(DIRTY | PENDING)) | RUNNING
        _execute(watcher, tls.state)


def dispose_watcher(watcher: WatcherNode) -> None:
    """Stop a watcher for good and run its cleanup (now, or when its run ends)."""
    with lock:
        flags = watcher.flags
        if flags & DISPOSED:
            return
        watcher.flags = flags | DISPOSED
        if flags & RUNNING:
            return  # ``_execute`` finishes the disposal after the current run
        detach(watcher)
    _final_cleanup(watcher)


def _final_cleanup(watcher: WatcherNode) -> None:
    cleanup = watcher.cleanup
    watcher.cleanup = None
    watcher.fn = _noop
    watcher.context = None
    if cleanup is not None:
        _call_safely(cleanup, watcher)


def dispose_node(node: Node) -> None:
    """Remove a signal or computed from the graph (its scope is being disposed)."""
    with lock:
        node.flags |= DISPOSED
        detach(node)
        if isinstance(node, ComputedNode):
            node.value = None
            node.fn = _noop


def retire_node(node: Node) -> None:
    """Take ``node`` out of the graph, telling its subscribers to run again.

    Used when a definition's value moves to another scope: whoever depended
    on the old node re-runs and finds the new one. The node being evaluated
    right now (the one that found out) is about to re-read and is skipped.
    """
    state = tls.state
    current = tracker()
    with lock:
        subs: list[Node] = []
        lnk = node.subs
        while lnk is not None:
            subs.append(lnk.sub)
            lnk = lnk.next_sub
        node.flags |= DISPOSED
        detach(node)
        for sub in subs:
            flags = sub.flags
            if sub is current or flags & (DIRTY | DISPOSED):
                continue
            sub.flags = flags | DIRTY
            if flags & WATCHER:
                if not flags & QUEUED:
                    sub.flags |= QUEUED
                    state.queue.append(sub)
            elif sub.subs is not None:
                propagate(sub.subs, state.queue)
    if not state.batch and not (_ev.active is not None and _held()):
        flush(state)


def _call_safely(fn: Callable[[], Any], watcher: WatcherNode) -> None:
    local = tls.state
    prev = local.active
    local.active = None  # cleanups are not tracked
    try:
        fn()
    except Exception as exc:
        report(exc, f"cleanup of effect {watcher.name!r}")
    finally:
        local.active = prev


def _noop() -> None:
    return None


def untracked_call(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` with no node tracking its reads."""
    local = tls.state
    prev_watcher = local.active
    prev = _ev.active
    mine = prev is not None and _held()
    if prev_watcher is None and not mine:
        return fn()
    local.active = None
    if mine:
        _ev.active = None
        _suspended.append(prev)  # type: ignore[arg-type]
    try:
        return fn()
    finally:
        local.active = prev_watcher
        if mine:
            _ev.active = prev
            _suspended.pop()


def active_node() -> Node | None:
    """The node whose run is being tracked on this thread, if any."""
    return tracker()


def in_batch() -> bool:
    """Whether this thread is inside ``batch()``."""
    return tls.state.batch > 0
