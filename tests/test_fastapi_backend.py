"""``StatekitLifespan(backend=...)``: a FastAPI app's state in a backend.

A URL makes a backend for the app run (opened at startup, closed at shutdown);
a ``Backend`` object is the caller's (attached, not closed). Either way the
app's stores and session state live in the backend: they outlive a restart and
are shared by every app (every process) on the same backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

import statekit as sk
from _backends import make_backend
from statekit.backends import Backend, SQLiteBackend
from statekit.fastapi import SESSION_COOKIE, StatekitLifespan, resource, store

SECRET = "fastapi-backend-test-secret-0123456789"

hits = sk.Store({"n": 0}, name="hits")  # app scope: shared by every app on the backend
notes = sk.Store({"items": []}, name="notes", scope="session")


def create_app(backend: Any) -> FastAPI:
    app = FastAPI(lifespan=StatekitLifespan(secret=SECRET, backend=backend))

    @app.post("/hit")
    async def hit(counter: sk.Store = Depends(store(hits))) -> dict[str, int]:
        return {"n": counter.update("n", lambda n: n + 1)}

    @app.post("/notes/{text}")
    async def add(text: str, mine: sk.Store = Depends(store(notes))) -> dict[str, Any]:
        mine.add("items/-", text)
        return {"items": mine.get("items")}

    @app.get("/notes")
    async def read(mine: sk.Store = Depends(store(notes))) -> dict[str, Any]:
        return {"items": mine.get("items")}

    @app.get("/backend")
    async def which(request: Request) -> dict[str, Any]:
        runtime = request.app.state.statekit
        backend = runtime.backend
        request.app.state.seen_backend = backend
        return {"kind": type(backend).__name__, "attached": runtime.scope.backend is not None}

    return app


def test_a_url_backend_keeps_state_across_restarts_and_is_closed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    app = create_app(url)
    with TestClient(app) as client:
        assert client.get("/backend").json() == {"kind": "SQLiteBackend", "attached": True}
        assert [client.post("/hit").json()["n"] for _ in range(3)] == [1, 2, 3]
        client.post("/notes/milk")
        client.post("/notes/eggs")
        cookie = client.cookies[SESSION_COOKIE]
    opened: Backend = app.state.seen_backend
    assert opened._closed, "a backend made from a URL is closed at shutdown"

    # A new run (a restart): the app scope is fresh, the state is the backend's.
    with TestClient(create_app(url)) as client:
        assert client.post("/hit").json() == {"n": 4}
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get("/notes").json() == {"items": ["milk", "eggs"]}
        client.cookies.clear()
        assert client.get("/notes").json() == {"items": []}  # another session: its own


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_two_apps_on_one_backend_share_app_state_and_sessions(kind: str, tmp_path: Path) -> None:
    backend = make_backend(kind, tmp_path)
    try:
        one, two = create_app(backend), create_app(backend)
        with TestClient(one) as first, TestClient(two) as second:
            assert first.post("/hit").json() == {"n": 1}
            assert second.post("/hit").json() == {"n": 2}
            assert first.post("/hit").json() == {"n": 3}
            first.post("/notes/milk")
            # The same signed cookie is the same session in the other app.
            second.cookies.set(SESSION_COOKIE, first.cookies[SESSION_COOKIE])
            assert second.get("/notes").json() == {"items": ["milk"]}
            second.post("/notes/eggs")
            assert first.get("/notes").json() == {"items": ["milk", "eggs"]}
        assert not backend._closed, "a Backend object passed in is the caller's to close"
    finally:
        backend.close()


def test_a_bad_backend_url_fails_startup_with_a_clear_error() -> None:
    with (
        pytest.raises(ValueError, match=r"nosuch://"),
        TestClient(create_app("nosuch://x")),
    ):
        pass  # pragma: no cover - startup fails


def test_a_backend_object_is_left_open_after_a_failed_startup(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "state.db")

    @resource
    async def broken() -> AsyncIterator[None]:
        raise RuntimeError("resource failed")
        yield  # pragma: no cover - an async generator that fails before yielding

    app = FastAPI(lifespan=StatekitLifespan(secret=SECRET, backend=backend, resources=[broken]))
    try:
        with pytest.raises(RuntimeError, match="resource failed"), TestClient(app):
            pass  # pragma: no cover - startup fails
        assert not backend._closed
    finally:
        backend.close()
