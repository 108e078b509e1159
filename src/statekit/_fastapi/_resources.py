"""App-scoped resources: values with async init and close, opened in dependency order.

A resource is a *definition* (like an atom): made once, usually at module
level, holding no value itself. Its value is made when the statekit lifespan
starts and lives in that run's app scope; it is closed at shutdown, in the
reverse order. A resource's factory names the resources it needs as
parameter defaults, the way FastAPI routes name dependencies::

    @resource
    async def repository(app):            # ``app``: the FastAPI application
        repo = TodoRepository(app.state.db_path)
        await repo.initialize()
        yield repo                        # the value; the rest runs at shutdown
        await repo.close()

    @resource
    def service(repo: TodoRepository = Depends(repository)) -> TodoService:
        return TodoService(repo)

Routes then ask for ``Depends(service)``; ``app.dependency_overrides[service]``
replaces it in tests.
"""

from __future__ import annotations

import inspect
import typing
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from typing import Any, Generic, TypeVar, overload

from .._scope import Scope, _current
from ..exceptions import InvalidDefinition, StatekitError

__all__ = ["Resource", "open_resources", "resource", "resources_of", "run_order"]

T = TypeVar("T")

# The values of each running app scope's resources; weak so that a disposed,
# dropped app scope takes its values with it.
_values: weakref.WeakKeyDictionary[Scope, dict[Resource[Any], Any]] = weakref.WeakKeyDictionary()


class Resource(Generic[T]):
    """An app-scoped value with async init and close, made by the statekit lifespan.

    Make one with :func:`resource`. ``Depends(res)`` in a route (or in another
    resource's factory) gives its value; ``res.get()`` gives it in any code
    running in the app (routes, background tasks, the user's own lifespan).

    Example:
        >>> from statekit.fastapi import resource
        >>> @resource
        ... def settings() -> dict[str, str]:
        ...     return {"db": ":memory:"}
        >>> settings
        <Resource 'settings'>
        >>> settings.get()
        Traceback (most recent call last):
        ...
        statekit.exceptions.StatekitError: resource 'settings' is not open in this app scope...
    """

    __slots__ = ("__weakref__", "_needs", "_takes_app", "factory", "name")

    def __init__(self, factory: Callable[..., Any], *, name: str | None = None) -> None:
        if not callable(factory):
            raise TypeError(f"resource(): the factory must be callable, not {factory!r}")
        self.factory = factory
        self.name = name or getattr(factory, "__name__", None) or repr(factory)
        self._needs, self._takes_app = _parameters(self.name, factory)

    def __repr__(self) -> str:
        return f"<Resource {self.name!r}>"

    @property
    def needs(self) -> tuple[Resource[Any], ...]:
        """The resources this one's factory asks for, in parameter order."""
        return tuple(needed for _, needed in self._needs)

    def get(self) -> T:
        """This resource's value in the current app scope.

        Raises :class:`~statekit.StatekitError` when the statekit lifespan of
        the current app did not open it.
        """
        app = _current.get().chain[0]
        values = _values.get(app) if app is not None else None
        if values is None or self not in values:
            raise StatekitError(
                f"resource {self.name!r} is not open in this app scope; list it (or a "
                "resource that needs it) in StatekitLifespan(resources=[...]) and run the "
                "app with its lifespan (`with TestClient(app)`, uvicorn --lifespan on)"
            )
        return values[self]  # type: ignore[no-any-return]

    async def __call__(self) -> T:
        # FastAPI calls this for ``Depends(res)``: async, so it runs on the
        # event loop rather than in the thread pool.
        return self.get()


@overload
def resource(factory: Callable[..., AsyncIterator[T]], /) -> Resource[T]: ...
@overload
def resource(factory: Callable[..., Iterator[T]], /) -> Resource[T]: ...
@overload
def resource(factory: Callable[..., Awaitable[T]], /) -> Resource[T]: ...
@overload
def resource(factory: Callable[..., T], /) -> Resource[T]: ...
@overload
def resource(*, name: str) -> Callable[[Callable[..., Any]], Resource[Any]]: ...


def resource(factory: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Declare an app-scoped resource (decorator).

    The factory may be an async or plain generator (code before ``yield``
    opens, the yielded object is the value, code after it closes), an async
    function or a plain function. Its parameters are other resources, given
    as defaults ``= Depends(other)``, and optionally ``app`` (the FastAPI
    application being started).

    Example:
        >>> from fastapi import Depends
        >>> from statekit.fastapi import resource
        >>> @resource
        ... async def pool():
        ...     yield ["connection"]
        >>> @resource(name="svc")
        ... def service(conns: list[str] = Depends(pool)) -> str:
        ...     return f"service over {len(conns)} connection(s)"
        >>> service.needs
        (<Resource 'pool'>,)
    """
    if factory is None:
        return lambda fn: Resource(fn, name=name)
    return Resource(factory, name=name)


def _parameters(
    name: str, factory: Callable[..., Any]
) -> tuple[tuple[tuple[str, Resource[Any]], ...], bool]:
    """The resources a factory needs (by parameter name) and whether it takes ``app``.

    A need is written like a FastAPI dependency: ``repo: Repo = Depends(res)``
    or ``repo: Annotated[Repo, Depends(res)]``.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return (), False
    try:
        hints = typing.get_type_hints(factory, include_extras=True)
    except Exception:  # unresolvable names: fall back on what the signature holds
        hints = {}
    needs: list[tuple[str, Resource[Any]]] = []
    takes_app = False
    for param in signature.parameters.values():
        needed = _resource_in(param.default)
        if needed is None:
            annotation = hints.get(param.name, param.annotation)
            for extra in getattr(annotation, "__metadata__", ()):
                needed = needed or _resource_in(extra)
        if needed is not None:
            needs.append((param.name, needed))
        elif param.name == "app":
            takes_app = True
        elif param.default is inspect.Parameter.empty and param.kind not in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            raise InvalidDefinition(
                f"resource {name!r}: parameter {param.name!r} is neither another resource "
                f"(`{param.name}: Annotated[T, Depends(some_resource)]`) nor `app`; a "
                "resource's factory gets only those"
            )
    return tuple(needs), takes_app


def _resource_in(marker: Any) -> Resource[Any] | None:
    """The resource of ``Depends(res)`` (or ``res`` itself), else ``None``."""
    found = getattr(marker, "dependency", marker)
    return found if isinstance(found, Resource) else None


def run_order(resources: Iterable[Resource[Any]]) -> list[Resource[Any]]:
    """``resources`` and everything they need, each after what it needs.

    Listed order is kept where dependencies allow. A cycle raises
    :class:`~statekit.InvalidDefinition` naming it.

    Example:
        >>> from statekit._fastapi._resources import resource, run_order
        >>> from fastapi import Depends
        >>> a = resource(lambda: 1, name="a")
        >>> b = resource(lambda x=Depends(a): x + 1, name="b")
        >>> [r.name for r in run_order([b])]
        ['a', 'b']
    """
    order: list[Resource[Any]] = []
    done: set[Resource[Any]] = set()
    for root in resources:
        if not isinstance(root, Resource):
            raise TypeError(
                f"resources=[...] holds statekit.fastapi.resource definitions, not {root!r}"
            )
        # Iterative depth-first walk (no recursion): (resource, next need index).
        path: list[Resource[Any]] = []
        stack: list[tuple[Resource[Any], int]] = [(root, 0)]
        while stack:
            current, index = stack.pop()
            if current in done:
                continue
            if index == 0:
                if current in path:
                    cycle = [*path[path.index(current) :], current]
                    raise InvalidDefinition(
                        "resources depend on each other in a cycle: "
                        + " -> ".join(r.name for r in cycle)
                    )
                path.append(current)
            needs = current.needs
            if index < len(needs):
                stack.append((current, index + 1))
                stack.append((needs[index], 0))
                continue
            path.pop()
            done.add(current)
            order.append(current)
    return order


async def _open_one(
    res: Resource[Any], values: dict[Resource[Any], Any], app: Any, stack: AsyncExitStack
) -> Any:
    kwargs = {param: values[needed] for param, needed in res._needs}
    if res._takes_app:
        kwargs["app"] = app
    made = res.factory(**kwargs)
    if inspect.isasyncgen(made):
        try:
            value = await made.__anext__()
        except StopAsyncIteration:
            raise StatekitError(f"resource {res.name!r}: its generator did not yield") from None
        stack.push_async_callback(_finish_async_gen, res.name, made)
        return value
    if inspect.isgenerator(made):
        try:
            value = next(made)
        except StopIteration:
            raise StatekitError(f"resource {res.name!r}: its generator did not yield") from None
        stack.callback(_finish_gen, res.name, made)
        return value
    if inspect.isawaitable(made):
        return await made
    return made


async def _finish_async_gen(name: str, gen: Any) -> None:
    try:
        await gen.__anext__()
    except StopAsyncIteration:
        return
    await gen.aclose()
    raise StatekitError(f"resource {name!r}: its generator yielded more than once")


def _finish_gen(name: str, gen: Any) -> None:
    try:
        next(gen)
    except StopIteration:
        return
    gen.close()
    raise StatekitError(f"resource {name!r}: its generator yielded more than once")


async def open_resources(
    scope: Scope, resources: Iterable[Resource[Any]], app: Any, stack: AsyncExitStack
) -> dict[Resource[Any], Any]:
    """Open ``resources`` (in :func:`run_order`) into ``scope``; closes go on ``stack``.

    If one fails, the ones already open stay on ``stack`` for the caller to
    close (it exits the stack), and the error propagates.
    """
    values: dict[Resource[Any], Any] = {}
    _values[scope] = values
    for res in run_order(resources):
        with scope:
            values[res] = await _open_one(res, values, app, stack)
    return values


def resources_of(scope: Scope) -> dict[Resource[Any], Any]:
    """The open resources of an app scope (empty when none)."""
    return dict(_values.get(scope, {}))


def forget(scope: Scope) -> None:
    """Drop the values of ``scope``'s resources (after they were closed)."""
    _values.pop(scope, None)
