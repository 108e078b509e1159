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

import logging
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..exceptions import CycleError, StatekitError
from ._graph import detach, end_tracking, link, propagate, shallow_propagate
from ._nodes import (
    DIRTY,
    DISPOSED,
    HAS_ERROR,
    PENDING,
    QUEUED,
    RUNNING,
    WATCHER,
    ComputedNode,
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
MAX_NESTING = 150
MAX_RERUNS = 100  # an effect re-triggered by its own run more often than this is a cycle

lock = threading.RLock()
_logger = logging.getLogger("statekit")

ErrorHook = Callable[[BaseException, str], None]


def _log_error(exc: BaseException, where: str) -> None:
    _logger.error("statekit: %s raised", where, exc_info=(type(exc), exc, exc.__traceback__))


_error_hook: ErrorHook = _log_error


def set_error_hook(hook: ErrorHook | None) -> ErrorHook:
    """Install ``hook(exc, where)`` for errors in effects and listeners; return the old one.

    The default hook logs to the ``statekit`` logger. ``None`` restores it.
    An error in one effect or listener never stops the others nor undoes the
    write that triggered it.

    Example:
        >>> import statekit as sk
        >>> errors = []
        >>> old = sk.set_error_hook(lambda exc, where: errors.append((where, repr(exc))))
        >>> n = sk.atom(0, name="n")
        >>> off = n.subscribe(lambda v: 1 / v)
        >>> n.value = 0 or 2; n.value = 0
        >>> errors
        [("effect 'listener of n'", "ZeroDivisionError('division by zero')")]
        >>> _ = sk.set_error_hook(old); off()
    """
    global _error_hook
    old = _error_hook
    _error_hook = hook if hook is not None else _log_error
    return old


def report(exc: BaseException, where: str) -> None:
    """Hand an error from user code to the error hook; never raise from here."""
    try:
        _error_hook(exc, where)
    except Exception:  # a broken hook must not break propagation
        _log_error(exc, where)


class _ThreadState(threading.local):
    """Per-thread engine state (class attributes are the per-thread defaults)."""

    active: Node | None = None  # the watcher whose run is being tracked (outside the lock)
    batch: int = 0
    flushing: bool = False

    def __init__(self) -> None:
        self.queue: deque[Node] = deque()


tls = _ThreadState()

# Computed evaluation happens under ``lock``, so the computed being tracked is
# a plain global rather than a thread-local (a thread-local costs ~3x more on
# the hottest path). ``_owner`` says which thread it belongs to: a reader in
# another thread sees ``_owner`` differ and takes the slow path (the lock).
_nesting = 0  # nested computed evaluations right now
_active: Node | None = None  # the computed being evaluated
_owner = 0  # ident of the thread evaluating it
_ident = threading.get_ident


def tracker() -> Node | None:
    """The node recording dependencies on this thread: a computed or a watcher."""
    active = _active
    if active is not None and _owner == _ident():
        return active
    return tls.active


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
    """Re-run ``node``; return whether its value (or error) changed."""
    global _nesting, _active, _owner
    if _nesting >= MAX_NESTING:
        raise _TooDeep(node)
    if not _nesting:
        _owner = _ident()
    _nesting += 1
    prev = _active
    node.caller = prev
    _active = node
    node.deps_tail = None
    node.flags = (node.flags & ~(DIRTY | PENDING)) | RUNNING
    try:
        if node.owner is _probe():
            new = node.fn()
        else:
            context = node.context
            new = node.fn() if context is None else context(node.fn)
    except BaseException as exc:
        _active = prev
        _nesting -= 1
        node.caller = None
        if isinstance(exc, RecursionError) and _nesting:
            # Out of stack while nested: unwind and evaluate this node first.
            node.flags = (node.flags & ~RUNNING) | DIRTY
            raise _TooDeep(node) from None
        if isinstance(exc, Exception):
            node.flags &= ~RUNNING
            end_tracking(node)
            # A cycle is not a property of the dependencies recorded (the
            # read that closed it was refused), so stay dirty: the next read
            # tries again and succeeds once the cycle is broken.
            node.flags |= HAS_ERROR | (DIRTY if isinstance(exc, CycleError) else 0)
            node.value = (exc, exc.__traceback__)
            node.version += 1
            return True
        # _TooDeep, KeyboardInterrupt...: leave the node to be recomputed.
        node.flags = (node.flags & ~RUNNING) | DIRTY
        raise
    _active = prev
    _nesting -= 1
    node.caller = None
    if new.__class__ not in _PLAIN:
        new = _value_filter(new)
    flags = node.flags & ~RUNNING
    tail = node.deps_tail
    if (node.deps if tail is None else tail.next_dep) is not None:
        end_tracking(node)
    if flags & HAS_ERROR:
        node.flags = flags & ~HAS_ERROR
    else:
        node.flags = flags
        if node.version:
            equals = node.equals
            old = node.value
            if equals is None:
                try:
                    if old is new or old == new:
                        return False
                except Exception:
                    pass  # e.g. arrays whose == is elementwise: a change
            elif _equal(equals, old, new):
                return False
    node.value = new
    node.version += 1
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


def _cycle(node: Node) -> CycleError:
    names = [node.name]
    walk = tracker()
    while walk is not None and walk is not node:
        names.append(walk.name)
        walk = walk.caller if isinstance(walk, ComputedNode) else None
    names.append(node.name)
    if len(names) > 2:
        names[1:-1] = reversed(names[1:-1])
    return CycleError(names)


def _drive(action: Callable[[Any], Any], node: Any) -> Any:
    """Run ``action(node)`` at the top level, unwinding and resuming deep chains."""
    if _nesting:
        return action(node)  # nested: the outermost driver handles ``_TooDeep``
    try:
        return action(node)
    except _TooDeep as too_deep:
        todo = [too_deep.node]
    while todo:
        try:
            _refresh(todo[-1])
        except _TooDeep as deeper:
            todo.append(deeper.node)
        else:
            todo.pop()
    return action(node)


def _result(node: ComputedNode) -> Any:
    if node.flags & HAS_ERROR:
        exc, tb = node.value
        raise exc.with_traceback(tb)
    return node.value


def read_computed(node: ComputedNode) -> Any:
    """Read a computed's up-to-date value, tracking it for the current run."""
    active = _active
    if active is not None and _owner == _ident():
        # Inside another computed's evaluation: this thread holds the lock.
        if node.flags & (DIRTY | PENDING | RUNNING):
            _refresh(node)
        if node.owner is not active.owner and _owner_check is not None:
            _owner_check(node, active)
        # Inline fast path of link(): same dependency as last run.
        tail = active.deps_tail
        if tail is None or tail.dep is not node:
            following = active.deps if tail is None else tail.next_dep
            if following is not None and following.dep is node:
                active.deps_tail = following
            else:
                link(node, active)
        if node.flags & HAS_ERROR:
            exc, tb = node.value
            raise exc.with_traceback(tb)
        return node.value
    watcher = tls.active
    with lock:
        if node.flags & (DIRTY | PENDING | RUNNING):
            _drive(_refresh, node)
        if watcher is not None and not watcher.flags & DISPOSED:
            link(node, watcher)
        return _result(node)


def peek_computed(node: ComputedNode) -> Any:
    """Read a computed's up-to-date value without tracking it."""
    global _active
    prev = _active
    if prev is not None and _owner == _ident():
        _active = None
        try:
            if node.flags & (DIRTY | PENDING | RUNNING):
                _refresh(node)
            return _result(node)
        finally:
            _active = prev
    with lock:
        if node.flags & (DIRTY | PENDING | RUNNING):
            _drive(_refresh, node)
        return _result(node)


_PLAIN: frozenset[type] = frozenset({int, float, str, bool, type(None)})
_value_filter: Callable[[Any], Any] = lambda value: value  # noqa: E731


def set_value_filter(fn: Callable[[Any], Any]) -> None:
    """Install ``fn`` applied to every computed result that is not a plain scalar.

    statekit installs its ``freeze``: a computed's cached list can't be
    changed by one reader behind the others' backs.
    """
    global _value_filter
    _value_filter = fn


def _no_probe() -> Any:
    return None


_probe: Callable[[], Any] = _no_probe


def set_context_probe(probe: Callable[[], Any]) -> None:
    """Install ``probe()`` giving the owner whose context is current.

    A computed whose owner is already current runs without entering its
    context: the common case costs one C-level call instead of a wrapper.
    """
    global _probe
    _probe = probe


OwnerCheck = Callable[[Node, Node], None]
_owner_check: OwnerCheck | None = None


def set_owner_check(check: OwnerCheck | None) -> None:
    """Install ``check(dep, sub)``, called when a computed reads a node of another owner.

    The scope layer uses it to refuse (or relocate) an app-level computed that
    reads a session's value. It may raise; the error is the computed's result.
    """
    global _owner_check
    _owner_check = check


def read_signal(node: SignalNode) -> Any:
    """Read a signal, tracking it for the current run."""
    active = _active
    if active is not None and _owner == _ident():
        if node.owner is not active.owner and _owner_check is not None:
            _owner_check(node, active)
        tail = active.deps_tail
        if tail is None or tail.dep is not node:
            following = active.deps if tail is None else tail.next_dep
            if following is not None and following.dep is node:
                active.deps_tail = following
            else:
                link(node, active)
        return node.value
    watcher = tls.active
    if watcher is None:
        return node.value
    with lock:
        if not watcher.flags & DISPOSED:
            link(node, watcher)
        return node.value


# --------------------------------------------------------------------------
# writing


def _check_writable(node: SignalNode) -> None:
    active = _active
    if active is not None and _owner == _ident():
        raise StatekitError(
            f"computed {active.name!r} tried to write {node.name!r}: "
            "computed values must not have side effects (use an effect or an action)"
        )


def write_signal(node: SignalNode, value: Any) -> bool:
    """Set a signal; return whether it changed. Effects run unless batched."""
    _check_writable(node)
    state = tls
    with lock:
        if _equal(node.equals, node.value, value):
            return False
        node.value = value
        node.version += 1
        if node.subs is not None:
            propagate(node.subs, state.queue)
    if state.queue and not state.batch:
        flush()
    return True


def modify_signal(node: SignalNode, fn: Callable[[Any], Any]) -> Any:
    """Atomically replace a signal's value by ``fn(old)``; return the new value."""
    _check_writable(node)
    state = tls
    with lock:
        old = node.value
        value = fn(old)
        if not _equal(node.equals, old, value):
            node.value = value
            node.version += 1
            if node.subs is not None:
                propagate(node.subs, state.queue)
    if state.queue and not state.batch:
        flush()
    return value


# --------------------------------------------------------------------------
# batching and effects


class Batch:
    """Context manager: effects run once, after the outermost batch ends."""

    __slots__ = ()

    def __enter__(self) -> None:
        tls.batch += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = tls
        state.batch -= 1
        if not state.batch and state.queue:
            flush()


def flush() -> None:
    """Run the queued watchers of this thread, in the order they were reached."""
    state = tls
    if state.flushing:
        return  # a write inside an effect: the outer loop picks its effects up
    state.flushing = True
    queue = state.queue
    try:
        while queue:
            run_watcher(queue.popleft())  # type: ignore[arg-type]
    finally:
        state.flushing = False


def _watcher_dirty(watcher: WatcherNode) -> bool:
    return check_dirty(watcher.deps, watcher)  # type: ignore[arg-type]


def _needs_run(watcher: WatcherNode) -> bool:
    flags = watcher.flags
    if flags & DIRTY:
        return True
    if flags & PENDING:
        if _drive(_watcher_dirty, watcher):
            return True
        watcher.flags &= ~PENDING
    return False


def run_watcher(watcher: WatcherNode) -> None:
    """Run ``watcher`` if one of its dependencies really changed."""
    with lock:
        watcher.flags &= ~QUEUED
        if watcher.flags & (DISPOSED | RUNNING):
            return  # a running watcher re-checks itself when its run ends
        if not _needs_run(watcher):
            return
        watcher.flags = (watcher.flags & ~(DIRTY | PENDING)) | RUNNING
        watcher.deps_tail = None
    execute(watcher)


def execute(watcher: WatcherNode) -> None:
    """Run a watcher now (its RUNNING flag set, tracking reset), re-running while dirty."""
    state = tls
    reruns = 0
    while True:
        cleanup = watcher.cleanup
        if cleanup is not None:
            watcher.cleanup = None
            _call_safely(cleanup, watcher)
        prev = state.active
        state.active = watcher
        try:
            context = watcher.context
            if context is None or watcher.owner is _probe():
                result = watcher.fn()
            else:
                result = context(watcher.fn)
            if callable(result):
                watcher.cleanup = result
        except Exception as exc:
            report(exc, f"effect {watcher.name!r}")
        finally:
            state.active = prev
        with lock:
            flags = watcher.flags
            if flags & DISPOSED:
                watcher.flags = flags & ~RUNNING
                detach(watcher)
                break
            end_tracking(watcher)
            if not _needs_run(watcher):
                watcher.flags &= ~(RUNNING | PENDING)
                break
            reruns += 1
            if reruns > MAX_RERUNS:
                watcher.flags &= ~(RUNNING | PENDING | DIRTY)
                report(
                    CycleError([watcher.name, watcher.name]),
                    f"effect {watcher.name!r} (re-triggered itself {MAX_RERUNS} times)",
                )
                break
            watcher.flags = (watcher.flags & ~(DIRTY | PENDING)) | RUNNING
            watcher.deps_tail = None
    if watcher.flags & DISPOSED:
        _final_cleanup(watcher)


def start_watcher(watcher: WatcherNode) -> None:
    """First run of a new watcher (runs now, even inside a batch)."""
    with lock:
        watcher.flags = (watcher.flags & ~(DIRTY | PENDING)) | RUNNING
    execute(watcher)


def dispose_watcher(watcher: WatcherNode) -> None:
    """Stop a watcher for good and run its cleanup (now, or when its run ends)."""
    with lock:
        flags = watcher.flags
        if flags & DISPOSED:
            return
        watcher.flags = flags | DISPOSED
        if flags & RUNNING:
            return  # ``execute`` finishes the disposal after the current run
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
    state = tls
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
    if not state.batch and not (_active is not None and _owner == _ident()):
        flush()


def _call_safely(fn: Callable[[], Any], watcher: WatcherNode) -> None:
    state = tls
    prev = state.active
    state.active = None  # cleanups are not tracked
    try:
        fn()
    except Exception as exc:
        report(exc, f"cleanup of effect {watcher.name!r}")
    finally:
        state.active = prev


def _noop() -> None:
    return None


def untracked_call(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` with no node tracking its reads."""
    global _active
    state = tls
    prev_watcher = state.active
    prev = _active
    mine = prev is not None and _owner == _ident()
    if prev_watcher is None and not mine:
        return fn()
    state.active = None
    if mine:
        _active = None
    try:
        return fn()
    finally:
        state.active = prev_watcher
        if mine:
            _active = prev


def active_node() -> Node | None:
    """The node whose run is being tracked on this thread, if any."""
    return tracker()


def in_batch() -> bool:
    """Whether this thread is inside ``batch()``."""
    return tls.batch > 0
