"""The sync server's HTTP API through a real uvicorn on 127.0.0.1 (docs/sync-protocol.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

import statekit as sk
from _server_fixtures import CALL, WRITE, client, counter, draft, make_server, running, todos
from statekit.server import SESSION_COOKIE, SyncServer


@pytest.fixture
def url() -> Iterator[str]:
    with running(make_server()) as base:
        yield base


def test_store_list_names_scope_writable_and_actions(url: str) -> None:
    body = httpx.get(url + "/stores").json()
    assert body["stores"] == [
        {
            "name": "counter",
            "scope": "app",
            "writable": ["/n"],
            "actions": ["bump", "fail_after_write"],
        },
        {"name": "todos", "scope": "user", "writable": ["/todo"], "actions": ["add"]},
        {"name": "draft", "scope": "session", "writable": ["/text"], "actions": []},
    ]


def test_first_get_issues_a_signed_httponly_lax_cookie(url: str) -> None:
    r = httpx.get(url + "/stores")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here
    sid, issued, sig = r.cookies[SESSION_COOKIE].split(".")
    assert len(sid) == 32 and issued.isdigit() and sig
    with client(url) as c:
        assert "set-cookie" not in c.get("/stores").headers  # a valid cookie is kept


def test_snapshot_etag_and_304(url: str) -> None:
    with client(url) as c:
        r = c.get("/stores/counter")
        assert r.status_code == 200
        assert r.json() == {"name": "counter", "version": 0, "value": {"n": 0, "locked": 1}}
        assert r.headers["etag"] == '"0"'
        again = c.get("/stores/counter", headers={"If-None-Match": '"0"'})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == '"0"'
        c.patch(
            "/stores/counter", json=[{"op": "replace", "path": "/n", "value": 1}], headers=WRITE
        )
        changed = c.get("/stores/counter", headers={"If-None-Match": '"0"'})
        assert changed.status_code == 200 and changed.headers["etag"] == '"1"'


def test_patch_applies_atomically_and_bumps_the_version(url: str) -> None:
    with client(url) as c:
        ops = [
            {"op": "replace", "path": "/n", "value": 5},
            {"op": "test", "path": "/n", "value": 5},
        ]
        r = c.patch("/stores/counter", json=ops, headers=WRITE)
        assert r.status_code == 200, r.text
        assert r.json() == {"version": 1} and r.headers["etag"] == '"1"'
        # The second op fails: the first is not applied either.
        bad = [{"op": "replace", "path": "/n", "value": 6}, {"op": "remove", "path": "/n/x"}]
        assert c.patch("/stores/counter", json=bad, headers=WRITE).status_code == 422
        assert c.get("/stores/counter").json()["value"]["n"] == 5
        assert counter.get("n") == 5 and counter.version == 1  # the server's copy is the app's


def test_if_match_conflict_is_412_and_changes_nothing(url: str) -> None:
    with client(url) as c:
        op = [{"op": "replace", "path": "/n", "value": 1}]
        ok = c.patch("/stores/counter", json=op, headers={**WRITE, "If-Match": '"0"'})
        assert ok.status_code == 200
        stale = c.patch("/stores/counter", json=op, headers={**WRITE, "If-Match": '"0"'})
        assert stale.status_code == 412
        assert stale.json()["error"] == "version_mismatch"
        assert stale.headers["etag"] == '"1"'
        assert counter.version == 1


def test_failed_test_op_is_409(url: str) -> None:
    with client(url) as c:
        ops = [
            {"op": "test", "path": "/n", "value": 41},
            {"op": "replace", "path": "/n", "value": 42},
        ]
        r = c.patch("/stores/counter", json=ops, headers=WRITE)
        assert r.status_code == 409 and r.json()["error"] == "test_failed"
        assert counter.get("n") == 0 and counter.version == 0


def test_python_writes_in_process_are_served(url: str) -> None:
    counter.set("n", 7)
    with client(url) as c:
        assert c.get("/stores/counter").json()["version"] == 1
        assert c.get("/stores/counter").json()["value"]["n"] == 7


def test_sync_action_is_one_transaction_one_version(url: str) -> None:
    with client(url) as c:
        r = c.post("/stores/counter/actions/bump", json={"by": 3}, headers=CALL)
        assert r.status_code == 200, r.text
        assert r.json() == {"version": 1, "result": 6}
        assert counter.version == 1 and counter.get("n") == 6


def test_action_arguments_are_validated(url: str) -> None:
    with client(url) as c:
        for body in ({"by": "lots"}, {"step": 1}, [1]):
            r = c.post("/stores/counter/actions/bump", json=body, headers=CALL)
            assert r.status_code == 422 and r.json()["error"] == "invalid_arguments", body
        assert "'by'" in c.post("/stores/counter/actions/bump", json={"by": "x"}, headers=CALL).text
        assert counter.version == 0


def test_failing_action_rolls_its_writes_back(url: str) -> None:
    with client(url) as c:
        r = c.post("/stores/counter/actions/fail_after_write", json={}, headers=CALL)
        assert r.status_code == 422
        assert r.json() == {
            "error": "action_failed",
            "detail": "action 'fail_after_write' of store 'counter' failed: "
            "ValueError: refused on purpose",
        }
        assert counter.get("n") == 0 and counter.version == 0


def test_session_stores_are_per_cookie_jar(url: str) -> None:
    with client(url) as a, client(url) as b:
        op = [{"op": "replace", "path": "/text", "value": "mine"}]
        assert a.patch("/stores/draft", json=op, headers=WRITE).status_code == 200
        assert a.get("/stores/draft").json()["value"] == {"text": "mine"}
        assert b.get("/stores/draft").json() == {
            "name": "draft",
            "version": 0,
            "value": {"text": ""},
        }


def test_user_stores_belong_to_their_user(url: str) -> None:
    alice = {"X-Test-User": "alice"}
    with client(url) as a, client(url) as a2, client(url) as bob, client(url) as anon:
        r = a.post("/stores/todos/actions/add", json={"title": "milk"}, headers={**CALL, **alice})
        assert r.status_code == 200, r.text
        assert r.json() == {"version": 1, "result": 1}
        # Alice in another session (another device) sees her list.
        mine = a2.get("/stores/todos", headers=alice).json()
        assert mine["value"] == {"todo": [{"title": "milk", "done": False}]}
        # Bob has his own, empty one.
        assert bob.get("/stores/todos", headers={"X-Test-User": "bob"}).json()["value"] == {
            "todo": []
        }
        # An anonymous visitor cannot have a user store: 404, not the data.
        r = anon.get("/stores/todos")
        assert r.status_code == 404 and r.json()["error"] == "unknown_store"
        assert "milk" not in r.text


def test_per_tab_sessions() -> None:
    with running(make_server(session_per_tab=True)) as url, client(url) as c:
        t1 = c.post("/session/tab", headers=CALL, content="{}").json()["tab"]
        t2 = c.post("/session/tab", headers=CALL, content="{}").json()["tab"]
        op = [{"op": "replace", "path": "/text", "value": "tab one"}]
        r = c.patch("/stores/draft", json=op, headers={**WRITE, "X-Statekit-Tab": t1})
        assert r.status_code == 200
        assert c.get("/stores/draft", headers={"X-Statekit-Tab": t1}).json()["value"]["text"] == (
            "tab one"
        )
        assert c.get("/stores/draft", headers={"X-Statekit-Tab": t2}).json()["value"]["text"] == ""
        assert c.get("/stores/draft").json()["value"]["text"] == ""  # no tab: the cookie's own
        # A token is bound to its session: another cookie jar cannot use it.
        with client(url) as other:
            r = other.get("/stores/draft", headers={"X-Statekit-Tab": t1})
            assert r.status_code == 401 and r.json()["error"] == "invalid_session"


def test_tab_endpoint_is_404_when_per_tab_is_off(url: str) -> None:
    with client(url) as c:
        r = c.post("/session/tab", headers=CALL, content="{}")
        assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_client_js_is_served_with_an_etag(url: str) -> None:
    r = httpx.get(url + "/client.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert "export function connect" in r.text or "export" in r.text
    again = httpx.get(url + "/client.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_mounted_under_a_prefix_in_starlette() -> None:
    server = make_server()
    app = Starlette(routes=[Mount("/sk", app=server)])
    with running(app) as url, client(url + "/sk") as c:
        assert c.get("/stores/counter").json()["version"] == 0
        r = c.patch(
            "/stores/counter", json=[{"op": "replace", "path": "/n", "value": 2}], headers=WRITE
        )
        assert r.status_code == 200
        assert c.get("/stores/counter").json()["value"]["n"] == 2
        # statekit's own JSON errors, not the host framework's, inside the mount.
        assert c.delete("/stores/counter").json()["error"] == "method_not_allowed"
        assert c.get("/nope").json()["error"] == "not_found"


def test_secret_is_required() -> None:
    import os

    saved = os.environ.pop("STATEKIT_SECRET", None)
    try:
        with pytest.raises(ValueError, match=r"secret=.*STATEKIT_SECRET"):
            SyncServer([counter])
        os.environ["STATEKIT_SECRET"] = "from the environment"
        assert SyncServer([counter]).describe()[0]["name"] == "counter"
    finally:
        os.environ.pop("STATEKIT_SECRET", None)
        if saved is not None:
            os.environ["STATEKIT_SECRET"] = saved


def test_constructor_refuses_what_cannot_be_served() -> None:
    with pytest.raises(ValueError, match="request-scoped"):
        SyncServer([sk.Store({}, name="r", scope="request")], secret="x")
    with pytest.raises(ValueError, match="two stores"):
        SyncServer([counter, sk.Store({}, name="counter")], secret="x")
    with pytest.raises(ValueError, match="not served"):
        SyncServer([counter], secret="x", actions={"todos": [print]})
    with pytest.raises(ValueError, match="name"):
        SyncServer([sk.Store({}, name="a b")], secret="x")
    assert draft.name == "draft" and todos.scope == "user"
