"""statekit for FastAPI: state made in the lifespan, reached through ``Depends``.

This is the only public module that imports FastAPI (install
``statekit[fastapi]``). It is the shape of the "app state" ADR, generalised:
no module-level singletons, no ``set_*()`` / ``clear_dependencies()``.

* :class:`StatekitLifespan` / :func:`lifespan` — per app run, a fresh app
  scope with its backend and :func:`resource` values (async init and close,
  in dependency order), on ``app.state.statekit`` and the lifespan state;
  closed in reverse order at shutdown, and on a startup that fails half way.
* Every request runs in app → user → session → request scopes; the session
  comes from the signed ``sk_session`` cookie that ``statekit.server`` uses,
  so a route and a mounted sync server see the same session.
* ``Depends(state(Cart))``, ``Depends(store(todos))``, ``Depends(resource)``;
  ``app.dependency_overrides`` replaces any of them.
* :func:`mount_sync` mounts a ``SyncServer`` on the same scopes and cookie,
  so a page bound with the JS client updates live when a route changes state.
* Each ``with TestClient(app)`` is a new run: a fresh app scope, nothing
  shared with the previous test.

Example:
    >>> import statekit as sk
    >>> from fastapi import Depends, FastAPI
    >>> from fastapi.testclient import TestClient
    >>> from statekit.fastapi import StatekitLifespan, state
    >>> class Cart(sk.State, scope="session"):
    ...     items: list[str] = []
    >>> app = FastAPI(lifespan=StatekitLifespan(secret="change me"))
    >>> @app.post("/cart/{item}")
    ... async def add(item: str, cart: Cart = Depends(state(Cart))) -> list[str]:
    ...     cart.update("items", lambda items: [*items, item])
    ...     return cart.items
    >>> with TestClient(app) as alice, TestClient(app) as bob:
    ...     _ = alice.post("/cart/apple")
    ...     alice.post("/cart/pear").json(), bob.post("/cart/fig").json()
    (['apple', 'pear'], ['fig'])
"""

from __future__ import annotations

import fastapi as _fastapi  # noqa: F401  (fail here, clearly, without the extra)

from ._fastapi._deps import current, state, store
from ._fastapi._identity import SESSION_COOKIE
from ._fastapi._lifespan import StatekitLifespan, install, lifespan
from ._fastapi._middleware import ScopeMiddleware
from ._fastapi._mount import mount_sync
from ._fastapi._resources import Resource, resource
from ._fastapi._runtime import AppRuntime

__all__ = [
    "SESSION_COOKIE",
    "AppRuntime",
    "Resource",
    "ScopeMiddleware",
    "StatekitLifespan",
    "current",
    "install",
    "lifespan",
    "mount_sync",
    "resource",
    "state",
    "store",
]
