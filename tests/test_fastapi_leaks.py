"""statekit.fastapi leaves nothing behind: 10,000 requests over 1,000 sessions, then expiry.

Requests go in process through httpx's ASGI transport (the lifespan is run by
hand, as a server would), so the test is quick; the cookie of each session is
carried by hand.
"""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import pytest

pytest.importorskip("fastapi")

import httpx
from fastapi import Depends, FastAPI

import statekit as sk
from statekit.fastapi import SESSION_COOKIE, StatekitLifespan, state, store

SESSIONS = 1_000
PER_SESSION = 10
TTL = 600.0


class LeakCart(sk.State, scope="session"):
    items: list[str] = []


notes = sk.Store({"n": 0}, name="leak_notes", scope="session")


def _app(instances: list[weakref.ref[Any]]) -> FastAPI:
    app = FastAPI(
        lifespan=StatekitLifespan(secret="leak-test-secret", session_ttl=TTL, sweep_interval=None)
    )

    @app.post("/add/{item}")
    async def add(
        item: str, cart: LeakCart = Depends(state(LeakCart)), n: sk.Store = Depends(store(notes))
    ) -> int:
        if not cart.items:
            instances.append(weakref.ref(cart))
        cart.update("items", lambda items: [*items, item])
        n.update("n", lambda v: v + 1)
        stop = sk.effect(lambda: cart.items)  # an effect per request, owned by its scope
        del stop
        return len(cart.items)

    @app.get("/health")
    async def health() -> str:
        return "ok"

    return app


@pytest.mark.slow
async def test_ten_thousand_requests_then_expiry_retain_nothing() -> None:
    instances: list[weakref.ref[Any]] = []
    app = _app(instances)
    async with app.router.lifespan_context(app):
        runtime = app.state.statekit
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            cookies: list[str] = []
            for _ in range(SESSIONS):
                response = await client.post("/add/x")
                assert response.json() == 1
                cookies.append(response.cookies[SESSION_COOKIE])
                client.cookies.clear()
            for round_ in range(2, PER_SESSION + 1):
                for cookie in cookies:
                    response = await client.post(
                        "/add/y", headers={"cookie": f"{SESSION_COOKIE}={cookie}"}
                    )
                    assert response.json() == round_
            for _ in range(100):  # cookieless requests that store nothing
                assert (await client.get("/health")).status_code == 200
        assert len(instances) == SESSIONS
        assert runtime.scope.count("session") == SESSIONS
        assert runtime.scope.count("request") == 0
        sessions = [weakref.ref(s) for s in runtime.scope.scopes("session")]
        assert runtime.expire_idle(now=time.monotonic() + TTL + 1) == SESSIONS
        assert runtime.scope.count() == 0
        gc.collect()
        alive = sum(ref() is not None for ref in instances + sessions)
        assert alive == 0, f"{alive} carts or session scopes outlived their expiry"
    app_scope = weakref.ref(runtime.scope)
    del runtime, transport, client, response
    app.dependency_overrides.clear()
    gc.collect()
    assert app.state.statekit is None
    assert app_scope() is None, "the app scope outlived its shutdown"
