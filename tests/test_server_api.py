"""The sync server's HTTP API through a real uvicorn on 127.0.0.1 (docs/sync-protocol.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

import statekit as sk
from _server_fixtures import (
    CALL,
    WRITE,
    Events,
    client,
    counter,
    draft,
    make_server,
    running,
    todos,
)
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
        {"name": "items", "scope": "app", "writable": ["/xs"], "actions": []},
        {"name": "profile", "scope": "app", "writable": [""], "actions": []},
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


# ------------------------------------------------------------------ events


def replace_n(c: httpx.Client, value: int) -> int:
    r = c.patch(
        "/stores/counter", json=[{"op": "replace", "path": "/n", "value": value}], headers=WRITE
    )
    assert r.status_code == 200, r.text
    return int(r.json()["version"])


def test_events_start_with_retry_and_a_snapshot_then_deliver_patches(url: str) -> None:
    with client(url) as c, Events(c, "/events?store=counter") as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        assert events.next() == {"retry": "1000"}
        snap = events.next_event()
        assert snap["event"] == "snapshot" and snap["id"] == "counter=0"
        assert snap["data"] == {"store": "counter", "version": 0, "value": {"n": 0, "locked": 1}}
        assert replace_n(c, 4) == 1
        patch = events.next_event()
        assert patch["event"] == "patch" and patch["id"] == "counter=1"
        assert patch["data"] == {
            "store": "counter",
            "base": 0,
            "version": 1,
            "ops": [{"op": "replace", "path": "/n", "value": 4}],
        }
        counter.set("locked", 2)  # Python code in the process: streamed too
        assert events.next_event()["data"]["ops"] == [
            {"op": "replace", "path": "/locked", "value": 2}
        ]


def test_event_ids_list_every_stream_store(url: str) -> None:
    with client(url) as c, Events(c, "/events?store=counter&store=draft") as events:
        events.next()
        assert events.next_event()["id"] == "counter=0"
        assert events.next_event()["id"] == "counter=0,draft=0"
        op = [{"op": "replace", "path": "/text", "value": "x"}]
        c.patch("/stores/draft", json=op, headers=WRITE)
        event = events.next_event()
        assert event["id"] == "counter=0,draft=1" and event["data"]["store"] == "draft"


def test_resume_by_last_event_id_replays_what_was_missed(url: str) -> None:
    with client(url) as c:
        for n in (1, 2, 3):
            replace_n(c, n)
        with Events(c, "/events?store=counter", {"Last-Event-ID": "counter=1"}) as events:
            assert events.next() == {"retry": "1000"}
            replay = events.next_event()
            assert replay["event"] == "patch" and replay["id"] == "counter=3"
            assert replay["data"]["base"] == 1 and replay["data"]["version"] == 3
            assert [op["value"] for op in replay["data"]["ops"]] == [2, 3]
        # The query parameter works the same (the client uses it after an HTTP error).
        with Events(c, "/events?store=counter&last_event_id=counter%3D2") as events:
            events.next()
            assert events.next_event()["data"]["base"] == 2
        # Up to date: nothing to replay, then live patches.
        with Events(c, "/events?store=counter", {"Last-Event-ID": "counter=3"}) as events:
            events.next()
            assert events.next() == {"comment": "resumed"}
            replace_n(c, 9)
            assert events.next_event()["data"]["base"] == 3


def test_snapshot_when_the_log_no_longer_reaches_back() -> None:
    with running(make_server(log_size=2)) as url, client(url) as c:
        for n in range(1, 6):
            replace_n(c, n)
        for resume in ("counter=1", "counter=99", "junk"):  # trimmed, unknown, malformed
            with Events(c, "/events?store=counter", {"Last-Event-ID": resume}) as events:
                events.next()
                event = events.next_event()
                assert event["event"] == "snapshot", resume
                assert event["data"]["version"] == 5 and event["data"]["value"]["n"] == 5
        with Events(c, "/events?store=counter", {"Last-Event-ID": "counter=3"}) as events:
            events.next()
            assert events.next_event()["data"]["base"] == 3  # still in the log


def test_heartbeat_comments_keep_the_stream_alive() -> None:
    with running(make_server(heartbeat=0.2)) as url, client(url) as c:
        with Events(c, "/events?store=counter") as events:
            events.next()
            events.next_event()
            assert events.next() == {"comment": "ping"}
            assert events.next() == {"comment": "ping"}


def test_coalesced_events_replay_to_the_same_document(url: str) -> None:
    import threading

    from statekit import _patch

    with client(url) as c, Events(c, "/events?store=counter") as events:
        events.next()
        snap = events.next_event()["data"]
        doc, version = _patch.freeze_json(snap["value"]), snap["version"]

        def writes() -> None:
            for i in range(300):
                if i % 3:
                    counter.update("n", lambda n: n + 1)
                else:
                    counter.patch([{"op": "add", "path": f"/k{i % 7}", "value": i}])

        thread = threading.Thread(target=sk.app_scope().run, args=(writes,))
        thread.start()
        thread.join()
        seen = 0
        while version < counter.version:
            event = events.next_event()
            data = event["data"]
            if event["event"] == "snapshot":
                doc, version = _patch.freeze_json(data["value"]), data["version"]
                continue
            assert data["base"] == version  # no gap, no overlap
            doc, _ = _patch.apply(doc, data["ops"])
            version = data["version"]
            seen += 1
        assert version == 300 and seen <= 300
        assert _patch.json_equal(doc, counter.snapshot())


def test_event_stream_refusals(url: str) -> None:
    with client(url) as c:
        r = c.get("/events")
        assert r.status_code == 400 and r.json()["error"] == "invalid_query"
        r = c.get("/events?store=counter&store=nope")
        assert r.status_code == 404 and r.json()["error"] == "unknown_store"
        r = c.get("/events?store=todos")  # a user store, no user
        assert r.status_code == 404 and r.json()["error"] == "unknown_store"


def test_per_tab_event_streams() -> None:
    with running(make_server(session_per_tab=True)) as url, client(url) as c:
        tab = c.post("/session/tab", headers=CALL, content="{}").json()["tab"]
        op = [{"op": "replace", "path": "/text", "value": "tab text"}]
        c.patch("/stores/draft", json=op, headers={**WRITE, "X-Statekit-Tab": tab})
        with Events(c, f"/events?store=draft&tab={tab}") as events:
            events.next()
            assert events.next_event()["data"]["value"] == {"text": "tab text"}
        with Events(c, "/events?store=draft") as events:
            events.next()
            assert events.next_event()["data"]["value"] == {"text": ""}
        r = c.get("/events?store=draft&tab=0123456789abcdef.forged")
        assert r.status_code == 401 and r.json()["error"] == "invalid_session"


def test_streams_end_on_close_and_never_block_shutdown() -> None:
    server = make_server()
    with running(server) as url, client(url) as c:
        with Events(c, "/events?store=counter") as events:
            events.next()
            events.next_event()
            assert server.streams == 1
            server.close()
            with pytest.raises(EOFError):
                events.next()
        events = Events(c, "/events?store=counter")
        events.next()
        events.next_event()
    # The server shut down with the stream open: the stream was ended, not waited for.
    with pytest.raises((EOFError, httpx.HTTPError)):
        events.next()
    events.close()
    assert server.streams == 0


def test_patch_without_identify_answers_as_with_it() -> None:
    """PATCH on a server with no identify= (the raw-ASGI fast path's common case)."""
    with running(make_server(identify=None, session_per_tab=True)) as url, client(url) as c:
        op = [{"op": "replace", "path": "/text", "value": "hi"}]
        r = c.patch("/stores/draft", json=op, headers=WRITE)
        assert r.status_code == 200 and r.json() == {"version": 1}
        assert r.headers["etag"] == '"1"' and r.headers["cache-control"] == "no-store"
        assert r.headers["content-type"] == "application/json"
        assert r.headers["content-length"] == str(len(r.content))
        assert "set-cookie" not in r.headers
        # A per-tab session named by the ?tab= query instead of the header.
        tab = c.post("/session/tab", headers=CALL, content="{}").json()["tab"]
        r = c.patch(f"/stores/draft?tab={tab}", json=op, headers=WRITE)
        assert r.status_code == 200 and r.json() == {"version": 1}
        assert c.get("/stores/draft", headers={"X-Statekit-Tab": tab}).json()["value"] == {
            "text": "hi"
        }
        r = c.patch("/stores/draft?tab=forged.token", json=op, headers=WRITE)
        assert r.status_code == 401 and r.json()["error"] == "invalid_session"
        stale = c.patch("/stores/draft", json=op, headers={**WRITE, "If-Match": '"0"'})
        assert stale.status_code == 412 and stale.headers["etag"] == '"1"'
        assert c.patch("/stores/draft", content=b"[", headers=WRITE).json()["error"] == (
            "malformed_json"
        )
        assert c.patch("/stores/draft", json=op, headers={**WRITE, "X-Statekit": "0"}).json()[
            "error"
        ] == ("missing_header")
        assert c.patch("/stores/nope", json=op, headers=WRITE).json()["error"] == "unknown_store"
    with running(make_server(identify=None)) as url, httpx.Client(base_url=url) as c:
        r = c.patch("/stores/draft", json=op, headers=WRITE)  # no cookie at all
        assert r.status_code == 401 and r.json()["error"] == "invalid_session"


def test_a_remembered_cookie_header_is_still_verified_each_time() -> None:
    server = make_server(identify=None)
    sid, cookie = server.signer.issue()
    header = f"theme=dark; {SESSION_COOKIE}={cookie}".encode()
    assert server._fast_sid([header]) == sid
    assert server._fast_sid([header]) == sid  # from the remembered parse
    old = server.signer.issue(now=time.time() - 31 * 86400)[1]
    expired = f"{SESSION_COOKIE}={old}".encode()
    assert server._fast_sid([expired]) is None
    assert server._fast_sid([expired]) is None
    assert server._fast_sid([b"theme=dark", header]) == sid  # two Cookie headers
    assert server._fast_sid([]) is None
