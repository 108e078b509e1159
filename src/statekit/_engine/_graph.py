"""Linking, unlinking and marking: the structural half of the engine.

Everything here runs with the engine lock held and is iterative: a chain of
any length is walked with an explicit stack, never with recursion.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from ._nodes import DIRTY, DISPOSED, PENDING, QUEUED, RUNNING, WATCHER, Link, Node

# The dependency of a dead link: see ``detach``. Never read, never written to.
DEAD: Final = Node(DISPOSED, "<disposed dependency>", None)
_RUNNING_WATCHER: Final = WATCHER | RUNNING
_MARKED: Final = DIRTY | PENDING


def link(dep: Node, sub: Node) -> None:
    """Record that ``sub`` read ``dep`` during its current run.

    Links from the previous run are reused in order (``deps_tail`` is the
    cursor), so re-running a node with the same dependencies allocates nothing.
    """
    prev_dep = sub.deps_tail
    if prev_dep is not None and prev_dep.dep is dep:
        return  # the same dependency read twice in a row
    next_dep = sub.deps if prev_dep is None else prev_dep.next_dep
    if next_dep is not None and next_dep.dep is dep:
        sub.deps_tail = next_dep  # same dependency as last run, same position
        return
    prev_sub = dep.subs_tail
    if prev_sub is not None and prev_sub.sub is sub and prev_dep is not None:
        # Possibly read earlier in this run (not in a row): is ``prev_sub``
        # among the links tracked so far? (walk inlined: unstable graphs
        # come here on most reads)
        walk = sub.deps
        while walk is not None:
            if walk is prev_sub:
                return
            if walk is prev_dep:
                break
            walk = walk.next_dep
    new = Link(dep, sub, prev_dep, next_dep, prev_sub)
    sub.deps_tail = new
    dep.subs_tail = new
    if next_dep is not None:
        next_dep.prev_dep = new
    if prev_dep is not None:
        prev_dep.next_dep = new
    else:
        sub.deps = new
    if prev_sub is not None:
        prev_sub.next_sub = new
    else:
        dep.subs = new


def unlink(lnk: Link, sub: Node) -> Link | None:
    """Remove ``lnk`` from both lists; return the next dependency link."""
    dep = lnk.dep
    prev_dep = lnk.prev_dep
    next_dep = lnk.next_dep
    prev_sub = lnk.prev_sub
    next_sub = lnk.next_sub
    if next_dep is not None:
        next_dep.prev_dep = prev_dep
    else:
        sub.deps_tail = prev_dep
    if prev_dep is not None:
        prev_dep.next_dep = next_dep
    else:
        sub.deps = next_dep
    if next_sub is not None:
        next_sub.prev_sub = prev_sub
    else:
        dep.subs_tail = prev_sub
    if prev_sub is not None:
        prev_sub.next_sub = next_sub
    else:
        dep.subs = next_sub
    return next_dep


def end_tracking(sub: Node) -> None:
    """Drop the dependencies the last run of ``sub`` did not read again."""
    tail = sub.deps_tail
    stale = sub.deps if tail is None else tail.next_dep
    while stale is not None:
        stale = unlink(stale, sub)


def detach(node: Node) -> None:
    """Unlink ``node`` from all its dependencies and all its subscribers.

    A watcher whose run is in progress reads and advances its dependency list
    without the lock (``_core``'s lock-free reads), so its list is not touched
    from here: its link is only taken out of ``node``'s subscribers and made
    dead (its ``dep`` becomes ``DEAD``); the watcher drops it itself once a
    later run does not read it.
    """
    lnk = node.deps
    while lnk is not None:
        lnk = unlink(lnk, node)
    sub_link = node.subs
    node.subs = node.subs_tail = None  # every subscriber goes: no sub-side unlinking
    while sub_link is not None:
        following = sub_link.next_sub
        sub_link.prev_sub = sub_link.next_sub = None
        sub = sub_link.sub
        if sub.flags & _RUNNING_WATCHER == _RUNNING_WATCHER:
            sub_link.dep = DEAD
        else:
            prev_dep = sub_link.prev_dep
            next_dep = sub_link.next_dep
            if next_dep is not None:
                next_dep.prev_dep = prev_dep
            else:
                sub.deps_tail = prev_dep
            if prev_dep is not None:
                prev_dep.next_dep = next_dep
            else:
                sub.deps = next_dep
        sub_link = following


def propagate(lnk: Link, queue: deque[Node]) -> None:
    """Mark everything downstream of a changed node.

    Direct subscribers become DIRTY, transitive ones PENDING; watchers are
    queued. A node already marked is not walked again (the "already notified"
    guard that keeps diamonds and cellx linear). The direct subscribers are
    the outer loop and everything below them an inner walk whose stack holds
    bare links: below the first level the mark is always PENDING.
    """
    # The flag constants as locals: this loop runs once per node reached,
    # and a local load is cheaper than a module-global one.
    dirty, pending, watcher, queued, marked = DIRTY, PENDING, WATCHER, QUEUED, _MARKED
    append = queue.append
    stack: list[Link] = []
    while True:
        sub = lnk.sub
        flags = sub.flags
        if not flags & marked:
            if flags & watcher:
                if not flags & queued or sub.queue is not queue:  # type: ignore[attr-defined]
                    sub.flags = flags | dirty | queued
                    sub.queue = queue  # type: ignore[attr-defined]
                    append(sub)
                else:
                    sub.flags = flags | dirty
            else:
                sub.flags = flags | dirty
                current = sub.subs
                while current is not None:
                    sub = current.sub
                    flags = sub.flags
                    if not flags & marked:
                        if flags & watcher:
                            if not flags & queued or sub.queue is not queue:  # type: ignore[attr-defined]
                                sub.flags = flags | pending | queued
                                sub.queue = queue  # type: ignore[attr-defined]
                                append(sub)
                            else:
                                sub.flags = flags | pending
                        else:
                            sub.flags = flags | pending
                            subs = sub.subs
                            if subs is not None:
                                following = current.next_sub
                                if following is not None:
                                    stack.append(following)
                                current = subs
                                continue
                    elif flags & watcher and sub.queue is not queue:  # type: ignore[attr-defined]
                        _requeue(sub, queue)
                    current = current.next_sub
                    if current is None and stack:
                        current = stack.pop()
        else:
            if not flags & dirty:
                # Already reached through a longer path: upgrade, no second walk.
                sub.flags = flags | dirty
            if flags & watcher and sub.queue is not queue:  # type: ignore[attr-defined]
                _requeue(sub, queue)
        following = lnk.next_sub
        if following is None:
            return
        lnk = following


def _requeue(watcher: Node, queue: deque[Node]) -> None:
    """Queue a watcher marked by a thread whose batch holds it back.

    This thread, which is not waiting for that batch, queues it too.
    """
    watcher.flags |= QUEUED
    watcher.queue = queue  # type: ignore[attr-defined]
    queue.append(watcher)


def shallow_propagate(lnk: Link | None) -> None:
    """A node's value did change: its PENDING subscribers are now DIRTY."""
    while lnk is not None:
        sub = lnk.sub
        flags = sub.flags
        if flags & (PENDING | DIRTY) == PENDING:
            sub.flags = flags | DIRTY
        lnk = lnk.next_sub
