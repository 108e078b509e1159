"""Session identity, shared with ``statekit.server``: the same signed cookie.

The signing itself lives in ``statekit.server``; this module only picks the
signer for a lifespan and renders the ``Set-Cookie`` header.
"""

from __future__ import annotations

import os
from typing import Any

from ._runtime import AppRuntime, SessionSigner

__all__ = ["SESSION_COOKIE", "cookie_header", "make_signer"]

SESSION_COOKIE = "sk_session"


def make_signer(secret: str | bytes | None, max_age: int) -> SessionSigner | None:
    """The server's cookie signer for ``secret`` (or ``STATEKIT_SECRET``); ``None`` without."""
    if secret is None:
        secret = os.environ.get("STATEKIT_SECRET") or None
    if secret is None:
        return None
    try:
        from statekit.server import SessionSigner as ServerSigner
    except ImportError as exc:  # pragma: no cover - the server extra is part of fastapi's
        raise ImportError(
            "statekit.fastapi signs session cookies with statekit.server; install statekit[fastapi]"
        ) from exc
    signer: SessionSigner = ServerSigner(secret, max_age)
    return signer


def cookie_header(scope: Any, value: str, runtime: AppRuntime) -> tuple[bytes, bytes]:
    """The raw ``Set-Cookie`` header for a newly issued session cookie."""
    from starlette.responses import Response

    response = Response()
    secure = scope.get("scheme") in ("https", "wss")
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=runtime.cookie_max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    for name, header in response.raw_headers:
        if name == b"set-cookie":
            return (name, header)
    raise AssertionError("starlette did not render the cookie")  # pragma: no cover
