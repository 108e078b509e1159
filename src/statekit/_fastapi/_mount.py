"""``mount_sync``: a ``SyncServer`` inside a FastAPI app, on the same scopes and cookie."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._scope import new_app_scope
from .._store import Store
from ._lifespan import StatekitLifespan

__all__ = ["mount_sync"]


def mount_sync(
    app: Any,
    stores: Iterable[Store],
    *,
    path: str = "/sk",
    lifespan: StatekitLifespan | None = None,
    **options: Any,
) -> Any:
    """Mount a :class:`~statekit.server.SyncServer` for ``stores`` at ``path``; return it.

    The server shares everything with the app's :class:`StatekitLifespan`:
    each run's app scope (so a route and the server read and write the same
    copies), the session cookie (same secret and max age), ``identify`` and
    ``session_per_tab``. ``options`` go to ``SyncServer`` (``actions=``,
    ``limits=``, ``heartbeat=``, ...). ``lifespan`` is found on the app when
    it was given as ``FastAPI(lifespan=StatekitLifespan(...))``.

    Example:
        >>> import statekit as sk
        >>> from fastapi import FastAPI
        >>> from statekit.fastapi import StatekitLifespan, mount_sync
        >>> todos = sk.Store({"todo": []}, name="todos", scope="session", writable=["/todo"])
        >>> app = FastAPI(lifespan=StatekitLifespan(secret="change me"))
        >>> server = mount_sync(app, [todos], path="/sk")
        >>> [route.path for route in app.routes][-1], server.describe()[0]["name"]
        ('/sk', 'todos')
    """
    from ..server import SyncServer

    found = lifespan if lifespan is not None else getattr(app.router, "lifespan_context", None)
    if not isinstance(found, StatekitLifespan):
        raise TypeError(
            "mount_sync() shares the statekit lifespan's scopes and cookie: create the app "
            "with FastAPI(lifespan=StatekitLifespan(...)), or pass lifespan=..."
        )
    if not path.startswith("/") or path.endswith("/") or len(path) < 2:
        raise ValueError(f"mount_sync(path={path!r}): a prefix like '/sk' (no trailing slash)")
    for taken in (mounted for mounted, _ in found.mounted):
        if path == taken:
            raise ValueError(f"mount_sync(path={path!r}): a sync server is mounted there already")
    for name in ("secret", "identify", "session_per_tab", "session_max_age", "app"):
        if name in options:
            raise TypeError(
                f"mount_sync(): {name}= comes from the StatekitLifespan, so that the app and "
                "the sync server agree; set it there"
            )
    server = SyncServer(
        stores,
        secret=found.secret,
        identify=found.identify,
        session_per_tab=found.session_per_tab,
        session_max_age=found.session_max_age,
        # Until the first startup: a scope of its own (each run replaces it).
        app=new_app_scope("sync-server-before-startup"),
        **options,
    )
    app.mount(path, server)
    found.mounted.append((path, server))
    return server
