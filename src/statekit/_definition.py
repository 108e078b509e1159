"""What atoms, computeds and stores share: a name, a level, and a way to find
their value node in the current scope chain."""

from __future__ import annotations

import itertools
from typing import Any

from ._engine import DefinitionBase, Node, active_node, definition_getters
from ._scope import LEVELS, Scope, _current, level_index, scope_error
from .exceptions import ScopeError

__all__ = ["Definition", "Misplaced", "computed_value", "signal_value"]

_counter = itertools.count(1)
_NOWHERE: tuple[Any, Any] = (object(), None)
_DEPTHS = {level: depth for depth, level in enumerate(LEVELS)}


class Misplaced(ScopeError):
    """A computed whose level was not given read a deeper scope's value.

    Caught by that computed's own read, which moves the computed to the deeper
    level and reads again; anyone else sees a plain ScopeError.
    """

    def __init__(self, definition: Any, depth: int, message: str) -> None:
        super().__init__(message)
        self.definition = definition
        self.depth = depth


# The ``.value`` getters of Atom and Computed (built by the engine, which
# inlines the node resolution below into the tracked read).
signal_value, computed_value = definition_getters(Misplaced)


class Definition(DefinitionBase):
    """Base of every definition: resolves its node in the current scope chain.

    The last (scope, node) pair found is cached as one tuple, so the common
    case, many reads in the same scope, costs one ContextVar read, one tuple
    index and one identity test. A single tuple (not two attributes) keeps the
    pair consistent when threads race on it.
    """

    __slots__ = ("__weakref__", "name")

    def __init__(self, name: str | None, scope: str, kind: str) -> None:
        self.name = name if name is not None else f"{kind}#{next(_counter)}"
        depth = _DEPTHS.get(scope)  # the common, valid case without a call
        self._depth = depth if depth is not None else level_index(scope)
        self._cache: tuple[Any, Any] = _NOWHERE

    @property
    def scope(self) -> str:
        """The level this definition's values live at."""
        return LEVELS[self._depth]

    def _node(self) -> Any:
        owner = _current.get().chain[self._depth]
        cache = self._cache
        if cache[0] is owner:
            return cache[1]
        return self._lookup(owner)

    def _lookup(self, owner: Scope | None) -> Any:
        if owner is None:
            reader = getattr(active_node(), "definition", None)
            if reader is not None and reader._auto and reader._depth < self._depth:
                # A computed placed too shallow read this: move it deeper.
                raise Misplaced(reader, self._depth, scope_error(self.name, self._depth).args[0])
            raise scope_error(self.name, self._depth)
        node = owner.node(self)
        self._cache = (owner, node)
        return node

    def _make_node(self, scope: Scope) -> Node:
        raise NotImplementedError

    def _release(self, scope: Scope, node: Node) -> None:
        """The scope is being disposed: release this definition's node there."""
        from ._engine import dispose_node

        dispose_node(node)
        self._forget(scope)

    def _forget(self, scope: Scope) -> None:
        if self._cache[0] is scope:
            self._cache = _NOWHERE

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} scope={self.scope!r}>"
