"""mount_sync: a SyncServer inside a FastAPI app, on the same scopes and the same cookie."""

from __future__ import annotations

import time
from typing import Annotated, Any

import httpx
import pytest

pytest.importorskip("fastapi")

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import statekit as sk
from _uvicorn import serve
from statekit.fastapi import SESSION_COOKIE, StatekitLifespan, mount_sync, store

SECRET = "mount-test-secret"
WRITE = {"X-Statekit": "1", "Content-Type": "application/json-patch+json"}

notes = sk.Store({"items": []}, name="notes", scope="session", writable=["/items"])
shared = sk.Store({"n": 0}, name="shared", writable=["/n"])  # app scope
Notes = Annotated[sk.Store, Depends(store(notes))]


def make_app(**options: Any) -> FastAPI:
    app = FastAPI(lifespan=StatekitLifespan(secret=SECRET, **options))
    mount_sync(app, [notes, shared], path="/sk")

    @app.post("/notes/{text}")
    async def add(text: str, n: Notes) -> list[str]:
        n.add("items/-", text)
        return list(n.get("items"))

    @app.get("/notes")
    async def read(n: Notes) -> list[str]:
        return list(n.get("items"))

    @app.post("/bump")
    async def bump() -> int:
        return int(shared.update("n", lambda v: v + 1))

    return app


def snapshot(client: Any, name: str) -> Any:
    response = client.get(f"/sk/stores/{name}")
    assert response.status_code == 200, response.text
    return response.json()["value"]


def test_a_route_and_the_sync_server_see_the_same_session_store() -> None:
    with TestClient(make_app()) as alice:
        bob = TestClient(alice.app)
        assert alice.post("/notes/milk").json() == ["milk"]
        assert snapshot(alice, "notes") == {"items": ["milk"]}
        assert snapshot(bob, "notes") == {"items": []}  # bob: another session
        # A write through the sync server is what the route reads next.
        response = alice.patch(
            "/sk/stores/notes",
            json=[{"op": "add", "path": "/items/-", "value": "eggs"}],
            headers=WRITE,
        )
        assert response.status_code == 200, response.text
        assert alice.get("/notes").json() == ["milk", "eggs"]
        assert bob.get("/notes").json() == []
        # A session the sync server started (its cookie) is the routes' session too.
        carol = TestClient(alice.app)
        assert snapshot(carol, "notes") == {"items": []}
        assert SESSION_COOKIE in carol.cookies
        assert carol.post("/notes/tea").json() == ["tea"]
        assert snapshot(carol, "notes") == {"items": ["tea"]}


def test_app_scoped_stores_are_this_runs_and_shared() -> None:
    app = make_app()
    with TestClient(app) as client:
        client.post("/bump")
        client.post("/bump")
        assert snapshot(client, "shared") == {"n": 2}
        client.cookies.clear()
        assert snapshot(client, "shared") == {"n": 2}
    with TestClient(app) as client:  # a new run: a fresh app scope for both
        assert snapshot(client, "shared") == {"n": 0}
        assert client.post("/bump").json() == 1


def test_the_mount_under_uvicorn() -> None:
    with (
        serve(make_app(), lifespan="on") as url,
        httpx.Client(base_url=url, timeout=10) as alice,
        httpx.Client(base_url=url, timeout=10) as bob,
    ):
        assert alice.post("/notes/milk").json() == ["milk"]
        assert snapshot(alice, "notes") == {"items": ["milk"]}
        assert snapshot(bob, "notes") == {"items": []}
        patch = [{"op": "add", "path": "/items/-", "value": "bob's"}]
        assert bob.patch("/sk/stores/notes", json=patch, headers=WRITE).status_code == 200
        assert bob.get("/notes").json() == ["bob's"]
        assert alice.get("/notes").json() == ["milk"]


def test_per_tab_sessions_are_shared_too() -> None:
    with TestClient(make_app(session_per_tab=True)) as client:
        snapshot(client, "notes")  # a cookie
        tab = client.post("/sk/session/tab", headers={"X-Statekit": "1"}).json()["tab"]
        in_tab = {"X-Statekit-Tab": tab}
        assert client.post("/notes/tabbed", headers=in_tab).json() == ["tabbed"]
        assert client.get("/notes").json() == []  # the cookie's own session: another one
        response = client.get("/sk/stores/notes", headers=in_tab)
        assert response.json()["value"] == {"items": ["tabbed"]}
        refused = client.get("/notes", headers={"X-Statekit-Tab": "0" * 16 + ".forged"})
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_session"


def test_sessions_the_sync_server_made_expire_with_the_apps() -> None:
    app = make_app(session_ttl=60)
    with TestClient(app) as client:
        snapshot(client, "notes")
        runtime = app.state.statekit
        assert runtime.scope.count("session") == 1
        assert runtime.expire_idle() == 0
        assert runtime.expire_idle(now=time.monotonic() + 61) == 1
        assert runtime.scope.count("session") == 0


def test_mount_errors_are_clear() -> None:
    with pytest.raises(TypeError, match=r"FastAPI\(lifespan=StatekitLifespan"):
        mount_sync(FastAPI(), [notes])
    app = FastAPI(lifespan=StatekitLifespan(secret=SECRET))
    with pytest.raises(ValueError, match="no trailing slash"):
        mount_sync(app, [notes], path="/sk/")
    with pytest.raises(TypeError, match="secret= comes from the StatekitLifespan"):
        mount_sync(app, [notes], secret="other")
    mount_sync(app, [notes])
    with pytest.raises(ValueError, match="mounted there already"):
        mount_sync(app, [notes])
    lifespan = StatekitLifespan(secret=SECRET)
    other = FastAPI()
    assert mount_sync(other, [notes], lifespan=lifespan) is lifespan.mounted[0][1]


def _events(lines: Any) -> Any:
    """(event, data) pairs of a Server-Sent Events line iterator."""
    import json

    kind, data = None, []
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and kind is not None:
            yield kind, json.loads("\n".join(data))
            kind, data = None, []


def test_a_route_change_reaches_the_mounted_sse_stream_of_that_session() -> None:
    with (
        serve(make_app(), lifespan="on") as url,
        httpx.Client(base_url=url, timeout=10) as alice,
        httpx.Client(base_url=url, timeout=10) as bob,
    ):
        assert alice.post("/notes/milk").json() == ["milk"]
        bob.post("/notes/other")
        with alice.stream("GET", "/sk/events", params={"store": "notes"}) as stream:
            events = _events(stream.iter_lines())
            kind, data = next(events)
            assert (kind, data["value"]) == ("snapshot", {"items": ["milk"]})
            assert bob.post("/notes/not-alices").status_code == 200  # another session
            assert alice.post("/notes/eggs").json() == ["milk", "eggs"]
            kind, data = next(events)
            assert kind == "patch"
            assert data["ops"] == [{"op": "add", "path": "/items/1", "value": "eggs"}]
