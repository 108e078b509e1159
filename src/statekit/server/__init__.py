"""``statekit.server``: stores served to browsers over HTTP and Server-Sent Events.

:class:`SyncServer` is a Starlette-based ASGI app speaking the sync protocol
(docs/sync-protocol.md) to the JS client (``client.js``); docs/server.md
shows how to run it, mount it and configure identity, writes and limits. The
identity helpers (signed session cookies, per-tab tokens, the scope chain of
a request) are public too, for the FastAPI adapter and the HTeaLeaf façade.

Example:
    >>> import statekit as sk
    >>> from statekit.server import Limits, SyncServer
    >>> todos = sk.Store({"todo": []}, name="todos", scope="session", writable=["/todo"])
    >>> server = SyncServer([todos], secret="change me", limits=Limits(rate=None))
    >>> [store["name"] for store in server.describe()]
    ['todos']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import SyncServer
    from ._errors import ApiError
    from ._identity import (
        SESSION_COOKIE,
        TAB_HEADER,
        Identity,
        SessionSigner,
        enter_scopes,
        resolve_secret,
        session_of,
        set_session_cookie,
    )
    from ._limits import Limits

# Loaded on first use: ``store.react()`` imports ``statekit.server._html``
# (standard library only), which must work without Starlette installed.
_LAZY = {
    "SyncServer": "._app",
    "ApiError": "._errors",
    "SESSION_COOKIE": "._identity",
    "TAB_HEADER": "._identity",
    "Identity": "._identity",
    "SessionSigner": "._identity",
    "enter_scopes": "._identity",
    "resolve_secret": "._identity",
    "session_of": "._identity",
    "set_session_cookie": "._identity",
    "Limits": "._limits",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'statekit.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "SESSION_COOKIE",
    "TAB_HEADER",
    "ApiError",
    "Identity",
    "Limits",
    "SessionSigner",
    "SyncServer",
    "enter_scopes",
    "resolve_secret",
    "session_of",
    "set_session_cookie",
]
