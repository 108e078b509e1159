"""Graph nodes and the links between them.

A node is a signal (a settable value), a computed (a cached derivation) or a
watcher (an effect or a listener). Dependencies and subscribers are doubly
linked lists of :class:`Link` objects; each link sits in both lists at once,
so unlinking is O(1) and a stable graph re-tracks without allocating (the
alien-signals layout).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .._mypyc import mypyc_attr

# Node flags. Plain ints and bit tests keep the hot path free of enum overhead.
COMPUTED: Final = 1  # a derivation with a cached value
WATCHER: Final = 2  # an effect or listener: the end of a propagation
DIRTY: Final = 4  # a direct dependency changed: must re-run
PENDING: Final = 8  # a transitive dependency may have changed: check before re-running
RUNNING: Final = 16  # currently evaluating (cycle detection, effect re-entry)
DISPOSED: Final = 32  # removed from the graph for good
HAS_ERROR: Final = 64  # a computed's last run raised; ``value`` holds a Failure
QUEUED: Final = 128  # a watcher sits in an effect queue

NEW_COMPUTED_FLAGS: Final = COMPUTED | DIRTY  # a computed that never ran

# Flags that send a read to the slow path: the cached value may be stale.
STALE: Final = DIRTY | PENDING | RUNNING

Equals = Callable[[Any, Any], bool]


class Failure:
    """A computed's cached exception, held in its ``value``.

    Keeping the error *in* the value (not in a flag next to it) makes a
    lock-free read of a clean node a single attribute load: it can never pair
    one run's flags with another run's value.
    """

    __slots__ = ("exc", "tb")

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.tb = exc.__traceback__

    def throw(self) -> Any:
        raise self.exc.with_traceback(self.tb)


# A computed's value before its first run. A Failure, so that "the old value
# was an error or there was none: any result is a change" is one class test.
UNSET: Any = Failure(RuntimeError("statekit: a computed was read before its first run"))


class Link:
    """An edge ``dep -> sub``, threaded through both nodes' lists."""

    __slots__ = ("dep", "next_dep", "next_sub", "prev_dep", "prev_sub", "sub")

    def __init__(
        self,
        dep: Node,
        sub: Node,
        prev_dep: Link | None,
        next_dep: Link | None,
        prev_sub: Link | None,
    ) -> None:
        self.dep = dep
        self.sub = sub
        self.prev_dep = prev_dep
        self.next_dep = next_dep
        self.prev_sub = prev_sub
        self.next_sub: Link | None = None


@mypyc_attr(allow_interpreted_subclasses=True)
class Node:
    """Base of every graph node.

    ``owner`` is whatever the node belongs to (a scope); the engine never looks
    at it beyond handing it back to hooks. ``name`` is used in error messages.

    Nodes have no ``__weakref__`` slot: a class compiled with mypyc cannot be
    weakly referenced (its deallocator never clears weak references), so the
    engine never relies on one. A subclass whose instances are kept in weak
    maps (the store's per-scope state, an action's cell) declares
    ``__weakref__`` in its own ``__slots__``, which works in both modes.
    """

    __slots__ = (
        "deps",
        "deps_tail",
        "flags",
        "name",
        "owner",
        "subs",
        "subs_tail",
    )

    def __init__(self, flags: int, name: str, owner: Any) -> None:
        self.flags = flags
        self.name = name
        self.owner = owner
        self.deps: Link | None = None
        self.deps_tail: Link | None = None
        self.subs: Link | None = None
        self.subs_tail: Link | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} flags={self.flags:#x}>"


class SignalNode(Node):
    """A settable value."""

    __slots__ = ("equals", "value", "version")

    def __init__(self, value: Any, name: str, owner: Any, equals: Equals | None) -> None:
        # Fields set here rather than through Node.__init__: creating nodes is
        # a measured hot path (one Python call less per node).
        self.flags = 0
        self.name = name
        self.owner = owner
        self.deps = self.deps_tail = self.subs = self.subs_tail = None
        self.value = value
        self.equals = equals
        self.version = 0


class ComputedNode(Node):
    """A cached derivation; ``value`` is the result, a :class:`Failure`, or ``UNSET``."""

    __slots__ = ("caller", "context", "definition", "equals", "fn", "value")

    # The computed whose run started this node's current run (set on each run).
    caller: Node | None

    def __init__(
        self,
        fn: Callable[[], Any],
        name: str,
        owner: Any,
        equals: Equals | None,
        context: Callable[[Callable[[], Any]], Any] | None = None,
        *,
        definition: Any = None,
    ) -> None:
        self.flags = NEW_COMPUTED_FLAGS
        self.name = name
        self.owner = owner
        self.deps = self.deps_tail = self.subs = self.subs_tail = None
        self.fn = fn
        # Entered around each run so that the computed reads its own scope,
        # whoever pulls it (see WatcherNode.context).
        self.context = context
        self.value: Any = UNSET
        self.equals = equals
        # The definition (a Computed) whose value this is, for the scope
        # layer's checks; None for the engine's other users (the store).
        self.definition = definition


class WatcherNode(Node):
    """An effect: ``fn`` runs now and again after its dependencies change.

    ``fn`` may return a cleanup callable, run before the next run and on
    disposal. ``context`` is entered around each run (the owning scope), so an
    effect triggered by a write in another session still sees its own.
    """

    __slots__ = ("cleanup", "context", "fn", "queue", "reruns")

    def __init__(
        self,
        fn: Callable[[], Any],
        name: str,
        owner: Any,
        context: Callable[[Callable[[], Any]], Any] | None,
    ) -> None:
        self.flags = WATCHER | DIRTY
        self.name = name
        self.owner = owner
        self.deps = self.deps_tail = self.subs = self.subs_tail = None
        self.fn = fn
        self.cleanup: Callable[[], Any] | None = None
        self.context = context
        self.reruns = 0
        # The effect queue (one per thread) this watcher was last put in.
        self.queue: Any = None


@mypyc_attr(allow_interpreted_subclasses=True)
class DefinitionBase:
    """The part of a definition (an atom, a computed) that the ``.value`` getters read.

    ``definition_getters`` builds the getters as engine functions; with the
    engine compiled, reading ``_depth`` and ``_cache`` from this native base
    is a C field load rather than a Python attribute lookup. The scope layer's
    ``Definition`` subclasses it and fills in the two methods below.
    """

    __slots__ = ("_cache", "_depth")

    # The last (scope, node) pair found, as one tuple: threads racing on it
    # always see a consistent pair.
    _cache: tuple[Any, Any]
    # The index of this definition's level in a scope's ``chain``.
    _depth: int

    def _lookup(self, owner: Any) -> Any:
        """The node of this definition in scope ``owner`` (None: no such scope is current)."""
        raise NotImplementedError(f"{type(self).__name__} must define _lookup")

    def _misplaced(self, exc: Any, node: Any, reader: Any) -> Any:
        """A computed read a deeper scope's value: move it there and read again."""
        raise NotImplementedError(f"{type(self).__name__} must define _misplaced")
