"""``computed``: a cached value derived from other reactive values."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from types import FunctionType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from . import _engine
from ._definition import _DEPTHS, _NOWHERE, Definition, Misplaced, _counter, computed_value
from ._engine import ComputedNode, Node
from ._frozen import freeze
from ._scope import Scope, _tree_lock, contains, level_index
from ._subscribe import subscribe_node
from .exceptions import ScopeError

__all__ = ["Computed", "computed"]

T = TypeVar("T")


def _check_owner(dep: Node, sub: Node) -> None:
    """A computed may read values of its own scope or of its ancestors only."""
    dep_scope, sub_scope = dep.owner, sub.owner
    if not isinstance(dep_scope, Scope) or not isinstance(sub_scope, Scope):
        return
    if contains(dep_scope, sub_scope):
        return
    message = (
        f"computed {sub.name!r} lives in {sub_scope!r} but read {dep.name!r} of {dep_scope!r}; "
        f"declare it with scope={dep_scope.level!r}"
    )
    definition = getattr(sub, "definition", None)
    if isinstance(definition, Computed) and definition._auto and dep_scope.depth > sub_scope.depth:
        raise Misplaced(definition, dep_scope.depth, message)
    raise ScopeError(message)


_engine.set_owner_check(_check_owner)
_engine.set_value_filter(freeze)


class Computed(Definition, Generic[T]):
    """A cached derivation: recomputed only when something it read changed.

    Without ``scope=``, a computed lives at the deepest level it reads: one
    that reads a session's atom gets one value per session, learned on first
    use. Its errors are cached and re-raised to readers until a dependency
    changes.

    Example:
        >>> import statekit as sk
        >>> price = sk.atom(10)
        >>> qty = sk.atom(2)
        >>> total = sk.computed(lambda: price.value * qty.value, name="total")
        >>> total.value
        20
        >>> qty.value = 3
        >>> total.value
        30
    """

    __slots__ = ("_auto", "_equals", "_fn")

    def __init__(
        self,
        fn: Callable[[], T],
        *,
        name: str | None = None,
        scope: str | None = None,
        equals: Callable[[T, T], bool] | None = None,
    ) -> None:
        label = name if name is not None else getattr(fn, "__name__", None)
        if label is None or label == "<lambda>":
            label = f"computed#{next(_counter)}"
        # Definition.__init__'s fields set here: creation is a measured hot
        # path (one Python call less per definition).
        self.name = label
        depth = _DEPTHS.get(scope or "app")  # the common, valid case without a call
        self._depth = depth if depth is not None else level_index(scope)  # type: ignore[arg-type]
        self._cache = _NOWHERE
        self._fn = fn
        self._equals = equals
        self._auto = scope is None

    def _make_node(self, scope: Scope) -> ComputedNode:
        return ComputedNode(self._fn, self.name, scope, self._equals, scope.runner, definition=self)

    def _read(self, reader: Callable[[Any], Any]) -> T:
        node = self._node()
        try:
            return reader(node)  # type: ignore[no-any-return]
        except Misplaced as exc:
            return self._misplaced(exc, node, reader)

    def _misplaced(self, exc: Misplaced, node: Node, reader: Callable[[Any], Any]) -> T:
        """Our node read a deeper scope: move to that level, read again."""
        for _ in range(4):  # at most one move per level
            if exc.definition is not self:
                raise exc
            self._move(node, exc.depth)
            node = self._node()
            try:
                return reader(node)  # type: ignore[no-any-return]
            except Misplaced as again:
                exc = again
        raise exc

    def _move(self, node: Node, depth: int) -> None:
        """Relocate this computed's values to a deeper level and retire ``node``."""
        with _tree_lock:
            self._depth = max(self._depth, depth)
        scope = node.owner
        if isinstance(scope, Scope):
            if scope._nodes.get(self) is node:
                scope._drop(self)
            self._forget(scope)
        _engine.retire_node(node)

    if TYPE_CHECKING:

        @property
        def value(self) -> T:
            """The up-to-date value (tracked inside computeds and effects)."""

    else:
        # The hot path of every derivation: resolution and read in one function
        # (see ``_engine.definition_getters``).
        value = property(
            computed_value, doc="The up-to-date value (tracked inside computeds and effects)."
        )

    def get(self) -> T:
        """The up-to-date value (tracked), like ``.value``."""
        return self._read(_engine.read_computed)

    def peek(self) -> T:
        """The up-to-date value, without tracking it."""
        return self._read(_engine.peek_computed)

    def subscribe(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Call ``callback(value)`` after each change; return a function that stops it."""
        self._read(_engine.peek_computed)  # settle the level before subscribing
        return subscribe_node(self._node(), _engine.read_computed, callback)


_FLAGS_SUFFICE = sys.version_info < (3, 12)


def _is_async(fn: Callable[..., Any]) -> bool:
    # inspect.iscoroutinefunction costs about a microsecond; a plain function
    # answers with its code flags (3.12+ also honours markcoroutinefunction).
    if type(fn) is FunctionType and _FLAGS_SUFFICE:
        return bool(fn.__code__.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(fn)


@overload
def computed(
    fn: Callable[[], T],
    *,
    name: str | None = None,
    scope: str | None = None,
    equals: Callable[[T, T], bool] | None = None,
    initial: Any = None,
) -> Computed[T]: ...


@overload
def computed(
    fn: None = None,
    *,
    name: str | None = None,
    scope: str | None = None,
    equals: Callable[[Any, Any], bool] | None = None,
    initial: Any = None,
) -> Callable[[Callable[[], Any]], Any]: ...


def computed(
    fn: Callable[[], Any] | None = None,
    *,
    name: str | None = None,
    scope: str | None = None,
    equals: Callable[[Any, Any], bool] | None = None,
    initial: Any = None,
) -> Any:
    """Define a derived value; use as a function or as a decorator.

    An ``async def`` gives an :class:`AsyncComputed` (``initial`` is its value
    until the first run settles). Inside a ``State`` class, the decorator marks
    a cached, dependency-tracked method.

    Example:
        >>> import statekit as sk
        >>> count = sk.atom(2)
        >>> @sk.computed
        ... def label() -> str:
        ...     return f"{count.value} items"
        >>> label.value
        '2 items'
    """
    if fn is None:
        return lambda f: computed(f, name=name, scope=scope, equals=equals, initial=initial)
    # _is_async, inlined for the common case (a plain function on 3.11).
    if (
        bool(fn.__code__.co_flags & inspect.CO_COROUTINE)
        if type(fn) is FunctionType and _FLAGS_SUFFICE
        else inspect.iscoroutinefunction(fn)
    ):
        from ._async_computed import AsyncComputed

        return AsyncComputed(fn, name=name, scope=scope, equals=equals, initial=initial)
    return Computed(fn, name=name, scope=scope, equals=equals)
