"""Session identity, shared with ``statekit.server``: the same signed cookie.

The signing and the cookie attributes live in ``statekit.server._identity``;
this module picks the signer of a lifespan and renders the ``Set-Cookie``
header for the ASGI middleware.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..server._identity import SESSION_COOKIE, TAB_HEADER, SessionSigner, set_session_cookie

__all__ = ["SESSION_COOKIE", "TAB_HEADER", "cookie_header", "make_signer"]


def make_signer(secret: str | bytes | None, max_age: float) -> SessionSigner | None:
    """The server's cookie signer for ``secret`` (or ``STATEKIT_SECRET``); ``None`` without."""
    if secret is None and not os.environ.get("STATEKIT_SECRET"):
        return None
    return SessionSigner(secret, max_age)


def cookie_header(scope: Any, value: str, max_age: float) -> tuple[bytes, bytes]:
    """The raw ``Set-Cookie`` header of a newly issued session cookie, as the server sets it."""
    response = Response()
    set_session_cookie(response, HTTPConnection(scope), value, max_age)
    for name, header in response.raw_headers:
        if name == b"set-cookie":
            return (name, header)
    raise AssertionError("set_session_cookie did not set a cookie")  # pragma: no cover
