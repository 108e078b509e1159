"""The web half of the HTeaLeaf façade: signed sessions, elements and ``App``.

HTeaLeaf's examples return element trees from ``@app.route`` handlers that
take a ``session``. ``App`` is a Starlette application with that ``route``
decorator; sessions are server-side dicts found through the signed
``sk_session`` cookie of the sync server (docs/sync-protocol.md), signed and
checked by the same :class:`statekit.server.SessionSigner`, so a page and the
live store updates share one identity (and a façade app and a ``SyncServer``
with the same secret accept each other's cookies).
"""

from __future__ import annotations

import contextvars
import html
import inspect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..server._identity import (
    DEFAULT_MAX_AGE,
    SESSION_COOKIE,
    SessionSigner,
    resolve_secret,
    set_session_cookie,
)

__all__ = [
    "COOKIE",
    "App",
    "Component",
    "Session",
    "SessionData",
    "Sessions",
    "current_session",
    "redirect",
    "sessions_of",
]

COOKIE = SESSION_COOKIE
_current: contextvars.ContextVar[SessionData | None] = contextvars.ContextVar(
    "statekit_htealeaf_session", default=None
)


class SessionData(dict[str, Any]):
    """A session: a dict with HTeaLeaf's ``has(key)`` and attribute access.

    Example:
        >>> s = SessionData(userName="ana")
        >>> s.has("userName"), s.userName, s.has("cart")
        (True, 'ana', False)
    """

    def has(self, key: str) -> bool:
        """Whether ``key`` is set to something other than ``None``."""
        return self.get(key) is not None

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(
                f"session has no {key!r}; use session.has({key!r}) first"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


Session = SessionData


def current_session() -> SessionData | None:
    """The session of the request being handled by an ``App`` route (or ``None``)."""
    return _current.get()


class Sessions:
    """Server-side session dicts behind signed ``sk_session`` cookies.

    A cookie is only a signed random id: a visitor without one gets one, but
    nothing is stored until a handler writes into its session, so cookieless
    requests cost no memory. Stored sessions expire after ``ttl`` idle seconds
    and at most ``max_sessions`` are kept (least recently used go first).

    The cookies are :class:`statekit.server.SessionSigner`'s
    (``<sid>.<issued>.<sig>``, valid for ``max_age`` seconds), so the sync
    server accepts them when it has the same ``secret``.

    Example:
        >>> jar = Sessions(b"k" * 32)
        >>> sid, cookie = jar.issue()
        >>> jar.verify(cookie) == sid, jar.verify(cookie + "x"), len(jar)
        (True, None, 0)
        >>> from statekit.server import SessionSigner
        >>> SessionSigner(b"k" * 32).verify(cookie) == sid
        True
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        ttl: float = 1800.0,
        max_age: float = DEFAULT_MAX_AGE,
        max_sessions: int = 100_000,
    ) -> None:
        #: The secret the cookies are signed with (a sync server sharing them needs it).
        self.secret = resolve_secret(secret, "Sessions")
        #: Signs and checks the ``sk_session`` cookies.
        self.signer = SessionSigner(self.secret, max_age)
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._data: OrderedDict[str, tuple[SessionData, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def max_age(self) -> float:
        """How long a cookie stays valid (seconds)."""
        return self.signer.max_age

    def issue(self) -> tuple[str, str]:
        """A new session id and its cookie value ``<sid>.<issued>.<sig>``."""
        return self.signer.issue()

    def verify(self, cookie: str | None) -> str | None:
        """The session id of a valid (unforged, unexpired) cookie, else ``None``."""
        return self.signer.verify(cookie)

    def load(self, sid: str) -> SessionData:
        """The stored data of ``sid`` (a fresh, unstored dict when there is none)."""
        now = time.monotonic()
        with self._lock:
            entry = self._data.get(sid)
            if entry is None or now - entry[1] > self.ttl:
                self._data.pop(sid, None)
                return SessionData()
            self._data[sid] = (entry[0], now)
            self._data.move_to_end(sid)
            return entry[0]

    def save(self, sid: str, data: SessionData) -> None:
        """Keep ``data`` for ``sid`` (an empty dict is forgotten instead)."""
        now = time.monotonic()
        with self._lock:
            if not data:
                self._data.pop(sid, None)
                return
            self._data[sid] = (data, now)
            self._data.move_to_end(sid)
            while self._data:  # expired ones and the overflow, oldest first
                oldest, (_, seen) = next(iter(self._data.items()))
                if len(self._data) <= self.max_sessions and now - seen <= self.ttl:
                    break
                del self._data[oldest]


def sessions_of(app: Any, secret: str | bytes | None = None) -> Sessions:
    """The :class:`Sessions` of a Starlette app (made on first use, kept in ``app.state``)."""
    jar = getattr(app.state, "htealeaf_sessions", None)
    if jar is None:
        jar = Sessions(resolve_secret(secret, "statekit.compat.htealeaf", generate=True))
        app.state.htealeaf_sessions = jar
    return jar


session_cookie = set_session_cookie  # HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS


# ------------------------------------------------------------------ elements


class Component:
    """An HTML element: children (text is escaped) and attributes set with ``attr``.

    Example:
        >>> str(div(h3("a < b"), button("+").attr(onclick="go()", class_="big")))
        '<div><h3>a &lt; b</h3><button type="button" onclick="go()" class="big">+</button></div>'
    """

    tag = "div"
    void = False

    def __init__(self, *children: Any) -> None:
        self.children: list[Any] = []
        self.attrs: dict[str, Any] = {}
        for child in children:
            self.append(child)

    def append(self, child: Any) -> Component:
        """Add a child (a list adds each item); return ``self``."""
        if isinstance(child, list | tuple):
            for item in child:
                self.append(item)
        elif child is not None:
            self.children.append(child)
        return self

    def attr(self, **attrs: Any) -> Component:
        """Set attributes (``class_`` → ``class``, ``data_x`` → ``data-x``); return ``self``."""
        for key, value in attrs.items():
            self.attrs[key.rstrip("_").replace("_", "-")] = value
        return self

    def render(self) -> str:
        """The element as HTML."""
        attrs = "".join(
            f" {key}" if value is True else f' {key}="{html.escape(str(value))}"'
            for key, value in self.attrs.items()
            if value is not None and value is not False
        )
        if self.void:
            return f"<{self.tag}{attrs}>"
        inner = "".join(_render_child(child) for child in self.children)
        return f"<{self.tag}{attrs}>{inner}</{self.tag}>"

    __str__ = render

    def __html__(self) -> str:
        return self.render()


def _render_child(child: Any) -> str:
    markup = getattr(child, "__html__", None)
    if markup is not None:
        return str(markup())
    return html.escape(str(child), quote=False)


def _element(tag: str, void: bool = False, **defaults: Any) -> type[Component]:
    def __init__(self: Component, *children: Any) -> None:
        Component.__init__(self, *children)
        self.attrs.update(defaults)

    return type(tag, (Component,), {"tag": tag, "void": void, "__init__": __init__})


html_ = _element("html")
head = _element("head")
title = _element("title")
body = _element("body")
div = _element("div")
span = _element("span")
p = _element("p")
a = _element("a")
h1 = _element("h1")
h2 = _element("h2")
h3 = _element("h3")
ul = _element("ul")
li = _element("li")
label = _element("label")
form = _element("form")
button = _element("button", type="button")
rButton = _element("button", type="button")  # HTeaLeaf's "reactive button"
textInput = _element("input", void=True, type="text")
checkbox = _element("input", void=True, type="checkbox")


def redirect(path: str) -> RedirectResponse:
    """A 303 redirect to ``path`` (HTeaLeaf's ``redirect``)."""
    return RedirectResponse(path, status_code=303)


# ------------------------------------------------------------------ App

PageHook = Callable[[Request], str]


class App(Starlette):
    """A Starlette app with HTeaLeaf's ``@app.route(path)`` for element-returning handlers.

    A handler may take ``session`` (its :class:`SessionData`), ``request`` and
    the path parameters by name, be sync or async, and return an element, a
    string of HTML, a Starlette response or ``(status, body)``.

    Example:
        >>> app = App(secret="s" * 32)
        >>> @app.route("/")
        ... def home(session):
        ...     return h1("hello")
        >>> [r.path for r in app.routes]
        ['/']
    """

    def __init__(self, *, secret: str | bytes | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        sessions_of(self, secret)
        #: Markup added at the end of every element page (the store client, for one).
        self.page_hooks: list[PageHook] = []

    def route(
        self, path: str, methods: Iterable[str] = ("GET", "POST")
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``handler`` for ``path``; see the class docstring."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.router.routes.append(Route(path, self._endpoint(handler), methods=list(methods)))
            return handler

        return register

    def _endpoint(self, handler: Callable[..., Any]) -> Callable[[Request], Any]:
        wanted = set(inspect.signature(handler).parameters)

        async def endpoint(request: Request) -> Response:
            jar = sessions_of(self)
            sid = jar.verify(request.cookies.get(COOKIE))
            cookie = None
            if sid is None:
                sid, cookie = jar.issue()
            data = jar.load(sid)
            kwargs: dict[str, Any] = {
                key: value for key, value in request.path_params.items() if key in wanted
            }
            if "session" in wanted:
                kwargs["session"] = data
            if "request" in wanted:
                kwargs["request"] = request
            token = _current.set(data)
            try:
                result = handler(**kwargs)
                if inspect.isawaitable(result):
                    result = await result
            finally:
                _current.reset(token)
            jar.save(sid, data)
            response = self._respond(request, result)
            if cookie is not None:
                session_cookie(response, request, cookie, jar.max_age)
            return response

        return endpoint

    def _respond(self, request: Request, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        status = 200
        if isinstance(result, tuple):
            status, result = result
        if isinstance(result, Component):
            extra = "".join(hook(request) for hook in self.page_hooks)
            page = result.render()
            if result.tag == "html":
                page = page.replace("</body>", extra + "</body>", 1) if extra else page
            else:
                page = f'<!doctype html><meta charset="utf-8">{page}{extra}'
            return HTMLResponse(page, status_code=status)
        return HTMLResponse(str(result), status_code=status)


WSGI = App  # HTeaLeaf's ``WSGI()`` app: here it is an ASGI one
