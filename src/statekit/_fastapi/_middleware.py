"""The per-request scope chain: app → (user) → session → request, around every request.

A pure ASGI middleware (no task group, so the endpoint runs in the very
context whose scope it sets; ``BaseHTTPMiddleware`` would copy it away).

Sessions are lazy for visitors without a valid cookie: the request runs in a
fresh session, and the cookie is issued only if that session holds something
when the response starts. A health check or a bot therefore gets no cookie and
leaves nothing behind.
"""

from __future__ import annotations

import itertools
from typing import Any

from .._scope import REQUEST, SESSION, USER, Scope
from ..server._identity import Identity
from ._identity import SESSION_COOKIE, TAB_HEADER, cookie_header
from ._runtime import AppRuntime, runtime_of

__all__ = ["ScopeMiddleware"]

_request_ids = itertools.count(1)
_COOKIE_NAME = SESSION_COOKIE.encode("latin-1") + b"="


def session_cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The ``sk_session`` value of a raw ASGI header list, if present.

    Example:
        >>> session_cookie([(b"cookie", b"a=1; sk_session=abc.1.sig")])
        'abc.1.sig'
    """
    for name, value in headers:
        if name == b"cookie" and _COOKIE_NAME in value:
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(_COOKIE_NAME):
                    return part[len(_COOKIE_NAME) :].decode("latin-1")
    return None


def holds_state(session: Scope, request: Scope) -> bool:
    """Whether a fresh session got anything worth a cookie during the request."""
    if session._nodes or session._effects or session._cleanups:
        return True
    children = session._children  # None until the session opens a child
    return children is not None and any(child is not request for child in children.values())


class ScopeMiddleware:
    """Run each HTTP request and websocket in its app → user → session → request chain."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        runtime = runtime_of(scope) if kind in ("http", "websocket") else None
        if runtime is None:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        for prefix in runtime.sync_prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                # A mounted sync server reads the same cookie itself; it only
                # needs this run's app scope current.
                with runtime.scope:
                    await self.app(scope, receive, send)
                return
        await _in_scopes(runtime, self.app, scope, receive, send)


async def _in_scopes(runtime: AppRuntime, app: Any, scope: Any, receive: Any, send: Any) -> None:
    parent = runtime.scope
    if runtime.identify is not None:
        from starlette.requests import HTTPConnection

        user = await runtime.user_of(HTTPConnection(scope, receive))
        if user is not None:
            parent = parent._child(USER, user, runtime.session_ttl)
    signer = runtime.signer
    if signer is None:
        # Sessions need a secret; without one, requests run under the app (or user).
        request = parent._child(REQUEST, f"r{next(_request_ids)}", None)
        try:
            with request:
                await app(scope, receive, send)
        finally:
            request.dispose()
        return
    sid: str | None = None
    value = session_cookie(scope["headers"])
    if value is not None:
        sid = runtime.verify(value)
    fresh: str | None = None
    if sid is None:
        sid, fresh = signer.issue()
    key = sid
    if runtime.session_per_tab:
        token = _tab_token(scope)
        if token is not None:
            tab = signer.verify_tab(sid, token)
            if tab is None:
                await _refuse_tab(scope, receive, send)
                return
            key = Identity(sid, tab=tab).scope_key()  # the sync server's per-tab session id
    session = parent._child(SESSION, key, runtime.session_ttl)
    request = session._child(REQUEST, f"r{next(_request_ids)}", None)
    kept = fresh is None
    sender: Any = send
    if fresh is not None and scope["type"] == "http":
        cookie = fresh

        async def send_with_cookie(message: Any) -> None:
            nonlocal kept
            if message["type"] == "http.response.start" and holds_state(session, request):
                kept = True
                cookie_line = cookie_header(scope, cookie, runtime.cookie_max_age)
                headers = [*message.get("headers", ()), cookie_line]
                message = {**message, "headers": headers}
            await send(message)

        sender = send_with_cookie
    try:
        with request:
            await app(scope, receive, sender)
    finally:
        request.dispose()
        if not kept:
            # No cookie went out: nobody can come back to this session.
            session.dispose()


_TAB_HEADER = TAB_HEADER.lower().encode("latin-1")


def _tab_token(scope: Any) -> str | None:
    """The per-tab token of a request: the ``X-Statekit-Tab`` header or ``?tab=``."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == _TAB_HEADER:
            return value.decode("latin-1")
    query: bytes = scope.get("query_string", b"")
    if b"tab=" in query:
        from urllib.parse import parse_qs

        found: list[str] = parse_qs(query.decode("latin-1")).get("tab", [])
        if found:
            return found[0]
    return None


async def _refuse_tab(scope: Any, receive: Any, send: Any) -> None:
    """401 like the sync server: a tab token that does not belong to this session."""
    from starlette.responses import JSONResponse

    detail = "the tab token does not belong to this session; get a new one with POST session/tab"
    response = JSONResponse({"error": "invalid_session", "detail": detail}, status_code=401)
    if scope["type"] == "http":
        await response(scope, receive, send)
    else:
        await send({"type": "websocket.close", "code": 1008})
