"""``StatekitLifespan``: a fresh app scope, its backend and resources, per app run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from .._scope import Scope, new_app_scope
from ._identity import make_signer
from ._middleware import ScopeMiddleware
from ._resources import Resource, forget, open_resources, run_order
from ._runtime import AppRuntime, Identify

__all__ = ["StatekitLifespan", "lifespan"]

UserLifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]


class StatekitLifespan:
    """The lifespan of a FastAPI (or Starlette) app that keeps its state in statekit.

    At startup it makes a **fresh app scope**, opens the backend and the
    ``resources`` (each after those it needs), runs your own ``lifespan`` inside,
    and exposes the run as ``app.state.statekit`` and as ``"statekit"`` in the
    lifespan state (an :class:`AppRuntime`). Every request then runs in the
    chain app → user (when ``identify`` names one) → session (from the signed
    ``sk_session`` cookie shared with ``statekit.server``) → request. At
    shutdown everything is closed in reverse order, and if startup fails half
    way what was opened is closed before the error propagates.

    Example:
        >>> from fastapi import Depends, FastAPI
        >>> from fastapi.testclient import TestClient
        >>> from statekit.fastapi import StatekitLifespan, resource
        >>> @resource
        ... async def greeting():
        ...     yield "hello"
        >>> app = FastAPI(lifespan=StatekitLifespan(resources=[greeting], secret="s3cret"))
        >>> @app.get("/")
        ... async def home(text: str = Depends(greeting)) -> str:
        ...     return text
        >>> with TestClient(app) as client:
        ...     client.get("/").json()
        'hello'
    """

    def __init__(
        self,
        lifespan: UserLifespan | None = None,
        *,
        resources: Iterable[Resource[Any]] = (),
        secret: str | bytes | None = None,
        identify: Identify | None = None,
        session_per_tab: bool = False,
        session_ttl: float | None = 1800.0,
        session_max_age: int = 30 * 24 * 3600,
        sweep_interval: float | None = 60.0,
        backend: Any = None,
        name: str = "app",
    ) -> None:
        self.inner = lifespan
        self.resources = tuple(resources)
        run_order(self.resources)  # a cycle or a wrong item fails here, not at startup
        if session_ttl is not None and session_ttl <= 0:
            raise ValueError(f"StatekitLifespan: session_ttl={session_ttl!r} must be > 0 or None")
        if sweep_interval is not None and sweep_interval <= 0:
            raise ValueError(
                f"StatekitLifespan: sweep_interval={sweep_interval!r} must be > 0 or None"
            )
        self.secret = secret
        self.identify = identify
        self.session_per_tab = session_per_tab
        self.session_ttl = session_ttl
        self.session_max_age = session_max_age
        self.sweep_interval = sweep_interval
        self.backend = backend
        self.name = name
        #: Sync servers mounted with :func:`~statekit.fastapi.mount_sync`: (path, server).
        self.mounted: list[tuple[str, Any]] = []

    def __call__(self, app: Any) -> AbstractAsyncContextManager[dict[str, Any]]:
        return self._run(app)

    @asynccontextmanager
    async def _run(self, app: Any) -> AsyncIterator[dict[str, Any]]:
        install(app)
        scope = new_app_scope(self.name)
        runtime = AppRuntime(
            scope,
            signer=make_signer(self.secret, self.session_max_age),
            identify=self.identify,
            session_ttl=self.session_ttl,
            cookie_max_age=self.session_max_age,
            session_per_tab=self.session_per_tab,
        )
        previous = getattr(app.state, "statekit", None)
        async with AsyncExitStack() as stack:
            # Pushed first, so run last: the app scope goes after everything in it.
            stack.push_async_callback(_dispose, app, scope, previous)
            if self.backend is not None:
                runtime.backend = await _open_backend(self.backend, scope, stack)
            for path, server in self.mounted:
                server.app_scope = scope  # the sync server serves this run's state
                runtime.sync_prefixes = (*runtime.sync_prefixes, path)
            await open_resources(scope, self.resources, app, stack)
            app.state.statekit = runtime
            state: dict[str, Any] = {}
            if self.inner is not None:
                with scope:
                    inner_state = await stack.enter_async_context(self.inner(app))
                if inner_state:
                    state.update(inner_state)
            if self.sweep_interval is not None and self.session_ttl is not None:
                await stack.enter_async_context(_sweeping(runtime, self.sweep_interval))
            state["statekit"] = runtime
            yield state


def lifespan(inner: UserLifespan | None = None, /, **options: Any) -> StatekitLifespan:
    """``StatekitLifespan(inner, **options)``: the statekit lifespan around your own.

    Example:
        >>> from contextlib import asynccontextmanager
        >>> from fastapi import FastAPI, Request
        >>> from fastapi.testclient import TestClient
        >>> import statekit.fastapi as skf
        >>> @asynccontextmanager
        ... async def mine(app):
        ...     yield {"answer": 42}
        >>> app = FastAPI(lifespan=skf.lifespan(mine))
        >>> @app.get("/")
        ... async def home(request: Request) -> list[object]:
        ...     return [request.state.answer, request.state.statekit.scope.level]
        >>> with TestClient(app) as client:
        ...     client.get("/").json()
        [42, 'app']
    """
    return StatekitLifespan(inner, **options)


def install(app: Any) -> None:
    """Put the scope middleware outermost in ``app``'s user middleware (once).

    Called at startup, so ``FastAPI(lifespan=StatekitLifespan(...))`` is the
    whole setup. Starlette builds its middleware stack on the first event (the
    lifespan itself), so the stack is rebuilt to take the middleware in.
    """
    stack = getattr(app, "user_middleware", None)
    if stack is None:
        raise TypeError(
            f"StatekitLifespan runs a Starlette or FastAPI application, not {type(app).__name__}"
        )
    if any(entry.cls is ScopeMiddleware for entry in stack):
        return
    from starlette.middleware import Middleware

    stack.insert(0, Middleware(ScopeMiddleware))
    if app.middleware_stack is not None:
        app.middleware_stack = app.build_middleware_stack()


async def _dispose(app: Any, scope: Scope, previous: Any) -> None:
    if getattr(app.state, "statekit", None) is not None and app.state.statekit.scope is scope:
        app.state.statekit = previous
    try:
        await scope.aclose()
    finally:
        forget(scope)


@asynccontextmanager
async def _sweeping(runtime: AppRuntime, interval: float) -> AsyncIterator[None]:
    """Expire idle users and sessions every ``interval`` seconds while the app runs."""

    async def sweep() -> None:
        while True:
            await asyncio.sleep(interval)
            runtime.expire_idle()

    task = asyncio.get_running_loop().create_task(sweep())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _open_backend(spec: Any, scope: Scope, stack: AsyncExitStack) -> Any:
    """Attach the configured backend to this run's app scope.

    A URL (``sqlite:///state.db``, ``redis://...``) makes a backend for this
    run, closed at shutdown; a ``Backend`` object is yours: attached, not closed.
    """
    from ..backends import Backend, backend_from_url

    backend = backend_from_url(spec)
    if not isinstance(spec, Backend):
        stack.push_async_callback(backend.aclose)
    backend.attach(scope)
    return backend
