"""FastAPI dependencies for scoped statekit values: ``state(Cart)``, ``store(todos)``.

Each returns the same callable for the same definition, so
``app.dependency_overrides[state(Cart)] = ...`` replaces exactly what
``Depends(state(Cart))`` asks for. The callables are ``async``: FastAPI runs
them on the event loop, without a thread-pool hop per request.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, TypeVar

from .._scope import LEVELS, Scope, _current, level_index
from .._store import Store
from ..exceptions import StatekitError

__all__ = ["current", "state", "store"]

S = TypeVar("S")


def _unavailable(name: str, depth: int) -> Exception:
    """The HTTP error for a definition whose level has no scope in this request."""
    from fastapi import HTTPException

    level = LEVELS[depth]
    if _current.get().chain[3] is None:
        return StatekitError(
            f"{name} is asked for outside a statekit request: the app's lifespan is not "
            "StatekitLifespan, or it did not run (use `with TestClient(app)`, uvicorn "
            "--lifespan on)"
        )
    if level == "user":
        return HTTPException(401, f"{name} belongs to a signed-in user; this request has none")
    if level == "session":
        return StatekitError(
            f"{name} lives in a session, but this request has none: give "
            "StatekitLifespan a secret= (or set STATEKIT_SECRET) so requests get sessions"
        )
    return StatekitError(f"{name} needs a {level} scope, which this request does not have")


class _Dependency:
    """Base of the dependencies: one per definition, so the default identity
    ``==`` and ``hash`` (C-level, FastAPI hashes a dependency several times per
    request) make ``dependency_overrides[state(Cart)]`` match."""

    __slots__ = ("__weakref__", "depth", "name")

    def __init__(self, name: str, depth: int) -> None:
        self.name = name
        self.depth = depth

    def __repr__(self) -> str:
        return self.name

    def _check(self, what: str) -> None:
        if _current.get().chain[self.depth] is None:
            raise _unavailable(what, self.depth)


class _StateDependency(_Dependency):
    __slots__ = ("_cls", "_definition")

    def __init__(self, cls: Any) -> None:
        super().__init__(f"state({cls.__name__})", level_index(cls.__sk_level__))
        # Weak: the class owns its definition and this dependency (a cache
        # entry), and must stay collectable.
        self._cls = weakref.ref(cls)
        self._definition = weakref.ref(cls._sk_definition())

    async def __call__(self) -> Any:
        definition: Any = self._definition()
        try:
            return definition._node()  # what Cart.get() does, one call less
        except LookupError:
            self._check(self.name[6:-1])
            raise


class _StoreDependency(_Dependency):
    __slots__ = ("_store",)

    def __init__(self, definition: Store) -> None:
        super().__init__(f"store({definition.name!r})", definition._depth)
        self._store = weakref.ref(definition)

    async def __call__(self) -> Any:
        self._check(f"store {self.name[6:-1]}")
        return self._store()


_state_dependencies: weakref.WeakKeyDictionary[Any, _StateDependency] = weakref.WeakKeyDictionary()
_store_dependencies: weakref.WeakKeyDictionary[Store, _StoreDependency] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _cached(cache: weakref.WeakKeyDictionary[Any, Any], target: Any, make: Any) -> Any:
    """The one dependency of ``target``, made on first use (one per target, thread-safe)."""
    with _lock:
        found = cache.get(target)
        if found is None:
            found = cache[target] = make(target)
    return found


def state(cls: type[S]) -> Any:
    """A dependency giving the current request's instance of a ``State`` class.

    ``Depends(state(Cart))`` is ``Cart.get()`` in the request's scope chain:
    the session's ``Cart`` for ``scope="session"``, the user's for
    ``scope="user"`` (401 when the request has no user), the app's for
    ``scope="app"``.

    Example:
        >>> import statekit as sk
        >>> from statekit.fastapi import state
        >>> class Cart(sk.State, scope="session"):
        ...     items: list[str] = []
        >>> state(Cart) == state(Cart)
        True
        >>> state(Cart)
        state(Cart)
    """
    found = _state_dependencies.get(cls) if isinstance(cls, type) else None
    if found is not None:
        return found
    if not (isinstance(cls, type) and hasattr(cls, "__sk_level__") and hasattr(cls, "get")):
        raise TypeError(f"state() takes an sk.State subclass, not {cls!r}")
    return _cached(_state_dependencies, cls, _StateDependency)


def store(definition: Store) -> Any:
    """A dependency giving a ``Store``, checked to have a copy in this request's chain.

    The store's methods then read and write the copy of the request's scope
    chain (the session's copy for ``scope="session"``).

    Example:
        >>> import statekit as sk
        >>> from statekit.fastapi import store
        >>> todos = sk.Store({"todo": []}, name="todos", scope="session")
        >>> store(todos)
        store('todos')
    """
    if not isinstance(definition, Store):
        raise TypeError(f"store() takes an sk.Store, not {definition!r}")
    return _cached(_store_dependencies, definition, _StoreDependency)


class _ScopeDependency(_Dependency):
    __slots__ = ()

    async def __call__(self) -> Scope:
        found = _current.get().chain[self.depth]
        if found is None:
            raise _unavailable(f"the {LEVELS[self.depth]} scope", self.depth)
        return found


def current(level: str = "request") -> Any:
    """A dependency giving the request's scope of ``level`` (its ``.id``, ``.parent``...).

    ``Depends(current("session"))`` is the session scope (its ``id`` is the
    session id of the signed cookie); ``current("user")`` answers 401 when the
    request has no user.

    Example:
        >>> from statekit.fastapi import current
        >>> current("session")
        current('session')
        >>> current("tab")
        Traceback (most recent call last):
        ...
        ValueError: unknown scope level 'tab'; expected one of ('app', 'user', 'session', 'request')
    """
    return _scope_dependencies[level_index(level)]


_scope_dependencies = tuple(
    _ScopeDependency(f"current({level!r})", depth) for depth, level in enumerate(LEVELS)
)
