"""The web demo behind ``statekit demo``: three stores, three scopes, one page.

Read this first: it is a whole statekit web app in a few lines.

* ``counter`` lives in the **app** scope: one number every visitor shares.
  Clients may only call its actions (increment, decrement, reset).
* ``todos`` lives in the **user** scope: each logged-in user has a private
  list, changed only through the actions add, toggle and remove. The login is
  a name in a signed cookie (:mod:`._login`), read by the sync server's
  ``identify(request)`` hook.
* ``draft`` lives in the **session** scope with ``session_per_tab=True``: every
  browser tab has its own draft (the JS client keeps a per-tab token in
  ``sessionStorage``), which clients write directly at ``/text``.

The page (:mod:`._page`) binds them with ``data-sk-*`` attributes; the JS client
keeps it live over one Server-Sent Events stream.

Example:
    >>> app = create_app(secret="a secret for this example")
    >>> [route.path for route in app.routes]
    ['/', '/login', '/logout', '/sk']
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import pydantic
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

import statekit as sk
from statekit.backends import Backend
from statekit.server import SyncServer

from ._login import Login
from ._page import render

__all__ = ["MAX_TODOS", "counter", "create_app", "draft", "todos"]

MAX_TODOS = 50

counter = sk.Store({"n": 0}, name="counter")  # app scope: shared by everyone
todos = sk.Store({"todo": []}, name="todos", scope="user")  # one list per user


class Draft(pydantic.BaseModel):
    """The draft's schema: every client write is validated against it."""

    text: str = pydantic.Field("", max_length=2000)


# One draft per session; with session_per_tab=True a session is a browser tab.
draft = sk.Store({"text": ""}, name="draft", scope="session", schema=Draft, writable=["/text"])


def increment() -> int:
    """Add one to the shared counter."""
    return int(counter.update("n", lambda n: n + 1))


def decrement() -> int:
    """Take one from the shared counter."""
    return int(counter.update("n", lambda n: n - 1))


def reset() -> int:
    """Set the shared counter back to zero."""
    counter.set("n", 0)
    return 0


Title = Annotated[
    str, pydantic.StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
]
Index = Annotated[int, pydantic.Field(ge=0)]


def add(title: Title) -> int:
    """Append a todo to the caller's own list; the list's new length."""
    if len(todos.get("todo")) >= MAX_TODOS:
        raise ValueError(f"a list holds at most {MAX_TODOS} todos")
    todos.add("todo/-", {"title": title, "done": False})
    return len(todos.get("todo"))


def toggle(index: Index) -> bool:
    """Flip a todo between done and not done."""
    return bool(todos.update(f"todo/{index}/done", lambda done: not done))


def remove(index: Index) -> int:
    """Remove a todo; the list's new length."""
    todos.delete(f"todo/{index}")
    return len(todos.get("todo"))


def create_app(
    *, secret: str, backend: Backend | str | None = None, app: sk.Scope | None = None
) -> Starlette:
    """The demo as an ASGI app: the page, login and logout, and the sync server at ``/sk``.

    ``secret`` signs the session and login cookies; ``backend`` is where the
    stores live (``None``: in this process); ``app`` is the app scope holding
    the shared counter (default: a new one).
    """
    scope = app if app is not None else sk.new_app_scope("demo")
    login = Login(secret)
    server = SyncServer(
        [counter, todos, draft],
        secret=secret,
        identify=login.identify,
        session_per_tab=True,
        actions={"counter": [increment, decrement, reset], "todos": [add, toggle, remove]},
        backend=backend,
        app=scope,
    )

    async def page(request: Request) -> Response:
        with scope:  # the counter's current value is rendered in the page
            counter_html = counter.react("n", tag="output")
        bad_login = request.query_params.get("login") == "invalid"
        body = render(login.identify(request), counter_html, bad_login=bad_login)
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    async def sign_in(request: Request) -> Response:
        name = await login.name_from_form(request)
        if name is None:
            return RedirectResponse("/?login=invalid", status_code=303)
        response = RedirectResponse("/", status_code=303)
        login.set_cookie(response, request, name)
        return response

    async def sign_out(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        login.clear_cookie(response)
        return response

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        server.close()  # end the event streams, then let the backend go
        if server.backend is not None:
            server.backend.close()

    return Starlette(
        routes=[
            Route("/", page),
            Route("/login", sign_in, methods=["POST"]),
            Route("/logout", sign_out, methods=["POST"]),
            Mount("/sk", app=server),
        ],
        lifespan=lifespan,
    )
