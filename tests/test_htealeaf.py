"""statekit.compat.htealeaf: the seed's examples, the routes, and every HTeaLeaf defect.

Each ``test_defect_*`` names one defect ANCHORS.md §1 measured in HTeaLeaf
0.4.0 and shows the façade does not have it. Most go through a real uvicorn
on 127.0.0.1.
"""

from __future__ import annotations

import importlib.resources
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from starlette.applications import Starlette

import statekit as sk
from _server_fixtures import Events
from _uvicorn import serve
from statekit.compat import htealeaf as hl
from statekit.compat.htealeaf import (
    App,
    AuthStore,
    JSCode,
    Limits,
    Session,
    SessionData,
    Store,
    SuperStore,
    button,
    div,
    false,
    h3,
    rButton,
    redirect,
)

SECRET = "test-secret-" + "x" * 20
WRITE = {"X-Statekit": "1", "Content-Type": "application/json"}
JSON_PATCH = {"X-Statekit": "1", "Content-Type": "application/json-patch+json"}
LIVE = "/_statekit"  # where SuperStore mounts the sync server


def auth_session(session: Session) -> Any:
    if session.has("userName"):
        return session["userName"]
    return None


class Site:
    """A running façade app and a logged-in-able client."""

    def __init__(self, url: str, app: App, hub: SuperStore) -> None:
        self.url, self.app, self.hub = url, app, hub

    def client(self, name: str | None = None) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=5)
        c.get("/login" + (f"?name={name}" if name else ""))
        return c


@pytest.fixture
def site() -> Iterator[Site]:
    app = App(secret=SECRET)
    hub = SuperStore(app)

    @app.route("/login")
    def login(session: Session, request: Any) -> Any:
        name = request.query_params.get("name")
        if name:
            session["userName"] = name
        return "ok"

    with serve(app) as url:
        yield Site(url, app, hub)


def api(store: Store | AuthStore, path: str = "") -> str:
    return f"/api/_store/{store.id}/{path}"


# ------------------------------------------------------------------ the seed's examples


def test_seed_counter_example_runs(site: Site) -> None:
    cstore = Store({"counter": 1})
    app = site.app

    @app.route("/counter")
    def counter() -> Any:
        return div(
            rButton("-").attr(onclick=cstore.do.update("counter", -1)),
            h3(cstore.react("counter")),
            rButton("+").attr(onclick=cstore.do.update("counter", 1)),
        )

    page = httpx.get(site.url + "/counter").text
    assert f'<h3><span data-sk-text="{cstore.id}:/counter">1</span></h3>' in page
    assert f"statekit.update(&#x27;{cstore.id}&#x27;,&#x27;/counter&#x27;,1)" in page
    assert f"statekit.update(&#x27;{cstore.id}&#x27;,&#x27;/counter&#x27;,-1)" in page


def test_seed_path_keys_and_js_update() -> None:
    store = Store({"todo": [{"value": "Buy milk", "done": False}]})
    assert str(store.js.update("todo/0/done", True)) == (
        f"statekit.set('{store.id}','/todo/0/done',true)"
    )
    assert store.do.update("todo/0/done", True) == f"statekit.set('{store.id}','/todo/0/done',true)"
    store.update("todo/0/done", True)
    assert store.read("todo/0") == {"value": "Buy milk", "done": True}


def test_seed_auth_store_example_runs(site: Site) -> None:
    todoStore = AuthStore(auth_session, {"todo": []})
    app = site.app

    def elementoCompra(idx: int, t: dict[str, Any]) -> Any:
        return div(t["value"]).attr(data_idx=idx)

    val = JSCode("val")

    @app.route("/")
    def home(session: Session) -> Any:
        if not session.has("userName"):
            return redirect("/login")
        return div(
            [elementoCompra(idx, t) for idx, t in enumerate(todoStore.auth(session).read("todo"))],
            button("Add Task").attr(
                onclick=JSCode(todoStore.do.set("todo", {"done": false, "value": val}))
            ),
        )

    anon = httpx.Client(base_url=site.url, timeout=5)
    assert anon.get("/", follow_redirects=False).headers["location"] == "/login"
    ana = site.client("ana")
    r = ana.post(api(todoStore, "todo"), json={"value": "milk", "done": False}, headers=WRITE)
    assert r.status_code == 200, r.text
    page = ana.get("/").text
    assert '<div data-idx="0">milk</div>' in page
    assert "{&#x27;done&#x27;:false,&#x27;value&#x27;:val}" in page
    assert "milk" not in site.client("bob").get("/").text


def test_seed_superstore_on_a_plain_starlette_app() -> None:
    app = Starlette()
    SuperStore(app, secret=SECRET)  # register the orchestrator first, as the seed does
    globalStore = Store({"counter": 0})
    todoStore = AuthStore(auth_session, {"todo": []})
    with serve(app) as url:
        c = httpx.Client(base_url=url, timeout=5)
        assert c.get(api(globalStore, "counter")).json() == 0
        # the GET handed out a session cookie; writes need it
        assert c.patch(api(globalStore, "counter"), json=5, headers=WRITE).json() == 5
        assert c.get(api(todoStore, "todo")).status_code == 404  # nobody logged in
    assert globalStore.read("counter") == 5


# ------------------------------------------------------------------ the routes


def test_routes_read_append_merge_replace_remove(site: Site) -> None:
    s = Store({"todo": [], "meta": {"a": 1}, "n": 0})
    c = site.client()
    assert c.get(api(s)).json() == {"todo": [], "meta": {"a": 1}, "n": 0}
    assert c.post(api(s, "todo"), json={"t": "x"}, headers=WRITE).json() == [{"t": "x"}]
    assert c.post(api(s, "meta"), json={"b": 2}, headers=WRITE).json() == {"a": 1, "b": 2}
    assert c.patch(api(s, "todo/0/t"), json="y", headers=WRITE).json() == "y"
    r = c.delete(api(s, "meta/a"), headers={"X-Statekit": "1"})
    assert r.status_code == 200 and r.json() is None
    r = c.get(api(s, "n"))
    assert r.headers["etag"] == '"4"'
    assert s.read() == {"todo": [{"t": "y"}], "meta": {"b": 2}, "n": 0}


def test_python_api_errors_and_views() -> None:
    s = Store({"n": 1, "l": []})
    with pytest.raises(sk.PathError):
        s.read("missing")
    with pytest.raises(sk.PatchError, match="holds int"):
        s.create("n", 1)
    with pytest.raises(sk.PatchError, match="needs an object"):
        s.create("", [1])
    with pytest.raises(sk.PatchError, match="root"):
        s.delete("")
    assert s.data == {"n": 1, "l": []} and s.version == 0
    assert s.create("l", 3) == [3] and s.get("l/0") == 3 and s.set("n", 2) == 2


def test_schema_validation_is_422_and_changes_nothing(site: Site) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Counter(pydantic.BaseModel):
        counter: int

    s = Store({"counter": 1}, schema=Counter)
    c = site.client()
    r = c.patch(api(s, "counter"), json="many", headers=WRITE)
    assert r.status_code == 422 and r.json()["error"] == "validation_failed"
    assert s.read("counter") == 1


# ------------------------------------------------------------------ HTeaLeaf's defects


def test_defect_500_on_unknown_key_bad_index_bad_path(site: Site) -> None:
    s = Store({"todo": [{"done": False}], "n": 1})
    c = site.client()
    for method, path in [
        ("GET", "nope"),
        ("GET", "todo/7"),
        ("GET", "todo/x"),
        ("GET", "n/deeper"),
        ("PATCH", "nope"),
        ("PATCH", "todo/3/done"),
        ("DELETE", "todo/9"),
        ("POST", "nope"),
        ("GET", "todo/~2"),
    ]:
        r = c.request(method, api(s, path), json=1, headers=WRITE)
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"] == "not_found" and path.split("/")[-1] in r.json()["detail"]
    assert c.get("/api/_store/no-such-store/x").json()["error"] == "unknown_store"
    assert s.version == 0


def test_defect_error_messages_leak_contents(site: Site) -> None:
    s = Store({"users": {"ana": {"password": "hunter2-SECRET"}}, "list": ["TOKEN-abc"]})
    c = site.client()
    for method, path in [
        ("GET", "users/bob"),
        ("GET", "users/ana/email"),
        ("GET", "list/5"),
        ("POST", "users/ana/password"),
        ("PATCH", "list/9"),
    ]:
        r = c.request(method, api(s, path), json={"x": 1}, headers=WRITE)
        assert 400 <= r.status_code < 500
        assert "SECRET" not in r.text and "TOKEN" not in r.text and "hunter2" not in r.text


def test_defect_minus_one_silently_writes_the_last_element(site: Site) -> None:
    s = Store({"todo": ["a", "b"]})
    c = site.client()
    for method in ("GET", "PATCH", "DELETE"):
        r = c.request(method, api(s, "todo/-1"), json="z", headers=WRITE)
        assert r.status_code == 404 and "-1" in r.json()["detail"]
        r = c.request(method, api(s, "todo/-"), json="z", headers=WRITE)
        assert r.status_code == 404
    assert s.read("todo") == ["a", "b"] and s.version == 0


def test_defect_no_tilde_escaping(site: Site) -> None:
    s = Store({"a/b": 1, "c~d": 2, "a": {"b": 3}})
    c = site.client()
    assert c.get(api(s, "a~1b")).json() == 1
    assert c.get(api(s, "c~0d")).json() == 2
    assert c.get(api(s, "a/b")).json() == 3
    assert c.patch(api(s, "a~1b"), json=10, headers=WRITE).json() == 10
    assert s.read() == {"a/b": 10, "c~d": 2, "a": {"b": 3}}
    assert s.react("a~1b") == f'<span data-sk-text="{s.id}:/a~1b">10</span>'


def test_defect_no_auth_on_a_global_store(site: Site) -> None:
    s = Store({"title": "t", "admin": {"open": False}}, writable=["/title"])
    c = site.client()
    r = c.patch(api(s, "admin/open"), json=True, headers=WRITE)
    assert (r.status_code, r.json()["error"]) == (403, "not_writable")
    assert c.patch(api(s, "title"), json="u", headers=WRITE).status_code == 200
    # no session cookie: no write, whatever the headers
    stranger = httpx.Client(base_url=site.url, timeout=5)
    r = stranger.patch(api(s, "title"), json="v", headers=WRITE)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_session")
    # a forged or tampered cookie is no better
    forged = c.cookies["sk_session"][:-2] + "AA"
    r = httpx.patch(
        site.url + api(s, "title"), json="v", headers=WRITE, cookies={"sk_session": forged}
    )
    assert r.status_code == 401
    assert s.read() == {"title": "u", "admin": {"open": False}}


def test_defect_no_csrf_origin_or_content_type_check(site: Site) -> None:
    s = Store({"n": 0})
    c = site.client()
    cases = [
        ({"Content-Type": "application/json"}, 403, "missing_header"),
        ({**WRITE, "Origin": "https://evil.example"}, 403, "cross_origin"),
        ({**WRITE, "Sec-Fetch-Site": "cross-site"}, 403, "cross_origin"),
        ({"X-Statekit": "1", "Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ({"X-Statekit": "1", "Content-Type": "application/x-www-form-urlencoded"}, 415, None),
    ]
    for headers, status, code in cases:
        r = c.patch(api(s, "n"), content=b"5", headers=headers)
        assert r.status_code == status, (headers, r.text)
        assert code is None or r.json()["error"] == code
    ok = {**WRITE, "Origin": site.url, "Sec-Fetch-Site": "same-origin"}
    assert c.patch(api(s, "n"), content=b"5", headers=ok).status_code == 200
    assert s.read("n") == 5


def test_defect_no_limits() -> None:
    app = App(secret=SECRET)
    SuperStore(app, limits=Limits(body=1000, depth=5, rate=0.5, burst=10))

    @app.route("/")
    def home() -> str:
        return "hi"

    s = Store({"v": None})
    with serve(app) as url:
        c = httpx.Client(base_url=url, timeout=5)
        c.get("/")
        r = c.patch(api(s, "v"), content=b'"' + b"x" * 2000 + b'"', headers=WRITE)
        assert (r.status_code, r.json()["error"]) == (413, "body_too_large")
        deep: Any = 1
        for _ in range(6):
            deep = [deep]
        r = c.patch(api(s, "v"), json=deep, headers=WRITE)
        assert (r.status_code, r.json()["error"]) == (422, "too_deep")
        statuses = [c.get(api(s, "v")).status_code for _ in range(30)]
        assert 429 in statuses
        r = c.get(api(s, "v"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # one budget per visitor: the live pages' sync server counts the same requests
        r = c.get(f"{LIVE}/stores/{s.id}")
        assert (r.status_code, r.json()["error"]) == (429, "rate_limited")
    assert s.read("v") is None and s.version == 0


def test_defect_no_locks_concurrent_writers_lose_nothing(site: Site) -> None:
    s = Store({"items": [], "n": 0})
    site.hub.limits = Limits(rate=10_000, burst=10_000)
    clients = [site.client() for _ in range(8)]

    def append(i: int) -> int:
        c = clients[i % len(clients)]
        return c.post(api(s, "items"), json=i, headers=WRITE).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(append, range(200)))
    assert codes == [200] * 200
    assert sorted(s.read("items")) == list(range(200))

    # and Python-side writers in threads, through the same store
    def bump() -> None:
        with site.hub.scope:
            for _ in range(500):
                s.store.update("n", lambda n: n + 1)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.read("n") == 4000


def test_defect_wsgi_adapter_hangs_every_request(site: Site) -> None:
    # HTeaLeaf's adapter never answered under wsgiref; here 64 concurrent requests
    # through uvicorn each answer within a (generous, machine-load-proof) timeout.
    s = Store({"n": 1})
    site.hub.limits = Limits(rate=10_000, burst=10_000)

    def get(_: int) -> Any:
        return httpx.get(site.url + api(s, "n"), timeout=30).json()

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(get, range(64)))
    assert results == [1] * 64


def test_defect_helper_js_missing_from_the_wheel() -> None:
    static = importlib.resources.files("statekit.server") / "static" / "statekit.js"
    source = static.read_text(encoding="utf-8")
    assert "export function connect" in source
    assert "data-sk-text" in source and "Last-Event-ID" in source


def test_defect_every_cookieless_request_makes_a_new_session(site: Site) -> None:
    s = Store({"n": 1})
    for _ in range(50):
        r = httpx.get(site.url + api(s, "n"))
        assert r.status_code == 200 and "sk_session" in r.cookies
    assert len(site.hub.sessions) == 0
    assert site.hub.scope.count("session") == 0
    # a returning visitor keeps its id: one stored session for one browser
    c = site.client("ana")
    first = c.cookies["sk_session"]
    c.get(api(s, "n"))
    c.get("/login?name=ana")
    assert c.cookies["sk_session"] == first and len(site.hub.sessions) == 1


def test_defect_per_user_data_is_never_evicted(site: Site) -> None:
    todos = AuthStore(auth_session, {"todo": []}, ttl=60)
    c = site.client("ana")
    assert c.post(api(todos, "todo"), json="milk", headers=WRITE).status_code == 200
    users = site.hub.scope.scopes("user")
    assert [u.id for u in users] == ["ana"]
    assert site.hub.scope.expire_idle(now=time.monotonic() + 61) >= 1
    assert site.hub.scope.count("user") == 0
    assert c.get(api(todos, "todo")).json() == []  # evicted: back to the default
    # and stored sessions expire too
    jar = site.hub.sessions
    assert len(jar) == 1
    jar.ttl = 0.01
    time.sleep(0.02)
    jar.save("0" * 32, SessionData(x=1))
    assert len(jar) == 1 and jar.load("0" * 32) == {"x": 1}


def events(*stores: Store | AuthStore) -> str:
    return f"{LIVE}/events?" + "&".join(f"store={s.id}" for s in stores)


def test_defect_no_server_side_notification_route_writes_reach_event_streams(
    site: Site,
) -> None:
    # HTeaLeaf re-fetched the whole page after each call. Here every write, through
    # any of the seed's routes or by Python code, reaches the mounted sync server's
    # event stream as a JSON Patch with its version (the page's cookie is the stream's).
    s = Store({"counter": 0, "todo": []})
    c = site.client()
    with Events(c, events(s)) as stream:
        assert "set-cookie" not in stream.response.headers  # the page's session: accepted
        assert "retry" in stream.next()
        first = stream.next_event()
        assert first["event"] == "snapshot"
        assert first["data"]["version"] == 0
        assert first["data"]["value"] == {"counter": 0, "todo": []}

        def next_patch() -> dict[str, Any]:
            event = stream.next_event()
            assert event["event"] == "patch", event
            return dict(event["data"])

        r = c.patch(api(s, "counter"), json=5, headers=WRITE)
        assert r.headers["etag"] == '"1"'
        assert next_patch() == {
            "store": s.id,
            "base": 0,
            "version": 1,
            "ops": [{"op": "replace", "path": "/counter", "value": 5}],
        }
        c.post(api(s, "todo"), json={"t": "milk"}, headers=WRITE)
        got = next_patch()
        assert (got["base"], got["version"]) == (1, 2)
        assert got["ops"] == [{"op": "add", "path": "/todo/0", "value": {"t": "milk"}}]
        c.delete(api(s, "todo/0"), headers={"X-Statekit": "1"})
        assert next_patch()["ops"] == [{"op": "remove", "path": "/todo/0"}]
        ops = [
            {"op": "test", "path": "/counter", "value": 5},
            {"op": "replace", "path": "/counter", "value": 6},
        ]
        r = c.patch(api(s), content=json.dumps(ops), headers=JSON_PATCH)
        assert r.json() == {"version": 4} and r.headers["etag"] == '"4"'
        assert next_patch() == {"store": s.id, "base": 3, "version": 4, "ops": ops[1:]}
        with site.hub.scope:
            s.update("counter", 7)  # Python code in the process
        assert next_patch()["version"] == 5
    assert s.read() == {"counter": 7, "todo": []}


def test_defect_an_auth_store_write_reaches_only_its_users_stream(site: Site) -> None:
    todos = AuthStore(auth_session, {"todo": []})
    ana, bob = site.client("ana"), site.client("bob")
    with Events(ana, events(todos)) as a, Events(bob, events(todos)) as b:
        assert "retry" in a.next() and "retry" in b.next()
        assert a.next_event()["data"]["value"] == {"todo": []}
        assert b.next_event()["data"]["value"] == {"todo": []}
        r = ana.post(api(todos, "todo"), json="ana's SECRET", headers=WRITE)
        assert r.status_code == 200
        got = a.next_event()["data"]
        assert (got["version"], got["ops"][0]["value"]) == (1, "ana's SECRET")
        bob.post(api(todos, "todo"), json="bob's", headers=WRITE)
        # bob's first event after his snapshot is his own write: ana's never came
        got = b.next_event()["data"]
        assert (got["base"], got["version"]) == (0, 1)
        assert got["ops"] == [{"op": "add", "path": "/todo/0", "value": "bob's"}]
    snapshot = bob.get(f"{LIVE}/stores/{todos.id}").json()
    assert snapshot["value"] == {"todo": ["bob's"]}
    assert "SECRET" not in bob.get(f"{LIVE}/stores/{todos.id}").text
    # no user: no copy, the stream and the snapshot are refused as unknown
    anon = site.client()
    for path in (events(todos), f"{LIVE}/stores/{todos.id}"):
        r = anon.get(path)
        assert (r.status_code, r.json()["error"]) == (404, "unknown_store"), path
        assert "SECRET" not in r.text


def test_two_auth_stores_naming_different_users_cannot_share_a_stream(site: Site) -> None:
    by_name = AuthStore(auth_session, {"n": 0})
    by_flag = AuthStore(lambda s: "admin" if s.has("userName") else None, {"n": 0})
    c = site.client("ana")
    with c.stream("GET", events(by_name)) as alone:
        assert alone.status_code == 200  # (closed unread)
    r = c.get(events(by_name, by_flag))
    assert (r.status_code, r.json()["error"]) == (404, "unknown_store")


def test_the_sync_server_lets_clients_write_only_what_a_store_declares(site: Site) -> None:
    plain = Store({"n": 0})
    declared = Store({"n": 0, "title": "t"}, writable=["/title"])
    c = site.client()

    def sync_write(store: Store, path: str, value: Any) -> httpx.Response:
        ops = [{"op": "replace", "path": path, "value": value}]
        return c.patch(f"{LIVE}/stores/{store.id}", content=json.dumps(ops), headers=JSON_PATCH)

    r = sync_write(plain, "/n", 1)
    assert (r.status_code, r.json()["error"]) == (403, "not_writable")
    assert sync_write(declared, "/title", "u").json() == {"version": 1}
    assert sync_write(declared, "/n", 1).status_code == 403
    # the seed's routes keep HTeaLeaf's policy (every path of a plain store)
    assert c.patch(api(plain, "n"), json=3, headers=WRITE).json() == 3
    assert (plain.read(), declared.read()) == ({"n": 3}, {"n": 0, "title": "u"})


def test_json_patch_route_is_atomic_and_keeps_the_write_policy(site: Site) -> None:
    s = Store({"n": 1, "title": "t", "admin": False}, writable=["/n", "/title"])
    c = site.client()
    ops = [
        {"op": "replace", "path": "/n", "value": 2},
        {"op": "copy", "from": "/admin", "path": "/title"},
    ]
    r = c.patch(api(s), content=json.dumps(ops), headers=JSON_PATCH)
    assert (r.status_code, r.json()) == (200, {"version": 1})
    assert s.read() == {"n": 2, "title": False, "admin": False}
    ops = [
        {"op": "replace", "path": "/n", "value": 9},
        {"op": "replace", "path": "/admin", "value": True},
    ]
    r = c.patch(api(s), content=json.dumps(ops), headers=JSON_PATCH)
    assert (r.status_code, r.json()["error"]) == (403, "not_writable")
    ops = [
        {"op": "replace", "path": "/n", "value": 9},
        {"op": "move", "from": "/admin", "path": "/n"},
    ]
    r = c.patch(api(s), content=json.dumps(ops), headers=JSON_PATCH)
    assert (r.status_code, r.json()["error"]) == (403, "not_writable")  # a move removes /admin
    assert s.read() == {"n": 2, "title": False, "admin": False} and s.version == 1


def test_pages_load_the_live_client_and_it_is_served(site: Site) -> None:
    @site.app.route("/page")
    def page() -> Any:
        return div("x")

    text = httpx.get(site.url + "/page").text
    assert text.endswith(
        '<div>x</div><script type="module" src="/_statekit/htealeaf.js" '
        'data-api="/api/_store"></script>'
    )
    js = httpx.get(site.url + "/_statekit/htealeaf.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert 'from "./client.js"' in js.text and "application/json-patch+json" in js.text
    client = httpx.get(site.url + "/_statekit/client.js")
    assert client.status_code == 200 and "export function storesOnPage" in client.text


def test_live_none_mounts_no_sync_server() -> None:
    app = App(secret=SECRET)
    hub = SuperStore(app, live=None)

    @app.route("/")
    def home() -> Any:
        return div("x")

    s = Store({"n": 1})
    with serve(app) as url:
        c = httpx.Client(base_url=url, timeout=5)
        assert "<script" not in c.get("/").text and hub.server is None
        assert c.get(events(s)).status_code == 404
        ops = [{"op": "replace", "path": "/n", "value": 2}]
        assert c.patch(api(s), content=json.dumps(ops), headers=JSON_PATCH).json() == {"version": 1}


def test_auth_store_isolation_holds(site: Site) -> None:
    todos = AuthStore(auth_session, {"todo": []})
    ana, bob = site.client("ana"), site.client("bob")
    assert ana.post(api(todos, "todo"), json="ana's", headers=WRITE).status_code == 200
    assert bob.get(api(todos, "todo")).json() == []
    assert bob.patch(api(todos, "todo"), json=["x"], headers=WRITE).json() == ["x"]
    assert ana.get(api(todos, "todo")).json() == ["ana's"]
    anon = site.client()
    r = anon.get(api(todos, "todo"))
    assert (r.status_code, r.json()["error"]) == (404, "unknown_store")
    r = anon.post(api(todos, "todo"), json="x", headers=WRITE)
    assert r.status_code == 404
    assert todos.auth(SessionData(userName="ana")).read("todo") == ["ana's"]


# ------------------------------------------------------------------ bad input catalog

BAD: list[tuple[str, str, str, Any, dict[str, str], int, str]] = [
    # (name, method, path, body bytes or None, headers, status, code)
    ("malformed json", "PATCH", "n", b"{", WRITE, 400, "malformed_json"),
    ("nan", "PATCH", "n", b"NaN", WRITE, 400, "malformed_json"),
    ("infinity", "PATCH", "n", b"Infinity", WRITE, 400, "malformed_json"),
    ("huge int", "PATCH", "n", b"1" * 5000, WRITE, 400, "malformed_json"),
    ("bad utf-8", "PATCH", "n", b'"\xff"', WRITE, 400, "malformed_json"),
    ("empty body", "PATCH", "n", b"", WRITE, 400, "malformed_json"),
    ("very deep", "PATCH", "n", b"[" * 10_000 + b"]" * 10_000, WRITE, 422, "too_deep"),
    ("deep", "PATCH", "n", b"[" * 40 + b"]" * 40, WRITE, 422, "too_deep"),
    ("no content type", "PATCH", "n", b"1", {"X-Statekit": "1"}, 415, "unsupported_media_type"),
    ("bad escape", "GET", "a~3", None, {}, 404, "not_found"),
    ("bad escape write", "PATCH", "a~", b"1", WRITE, 404, "not_found"),
    ("index on object", "GET", "n/0", None, {}, 404, "not_found"),
    ("leading zero", "GET", "l/01", None, {}, 404, "not_found"),
    ("merge non-object", "POST", "o", b"[1]", WRITE, 422, "invalid_patch"),
    ("append to number", "POST", "n", b"1", WRITE, 422, "invalid_patch"),
    ("remove root", "DELETE", "", None, {"X-Statekit": "1"}, 422, "invalid_patch"),
    ("replace root by list", "PATCH", "", b"[]", WRITE, 422, "invalid_patch"),
    ("put", "PUT", "n", b"1", WRITE, 405, "method_not_allowed"),
    ("options", "OPTIONS", "n", None, {}, 405, "method_not_allowed"),
    ("header value 0", "PATCH", "n", b"1", {**WRITE, "X-Statekit": "0"}, 403, "missing_header"),
    ("null origin", "PATCH", "n", b"1", {**WRITE, "Origin": "null"}, 403, "cross_origin"),
    (
        "same-site",
        "PATCH",
        "n",
        b"1",
        {**WRITE, "Sec-Fetch-Site": "same-site"},
        403,
        "cross_origin",
    ),
    ("json patch object", "PATCH", "", b"{}", JSON_PATCH, 422, "invalid_patch"),
    (
        "json patch unknown op",
        "PATCH",
        "",
        b'[{"op":"x","path":"/n"}]',
        JSON_PATCH,
        422,
        "invalid_patch",
    ),
    ("json patch op not object", "PATCH", "", b"[1]", JSON_PATCH, 422, "invalid_patch"),
    (
        "json patch relative",
        "PATCH",
        "",
        b'[{"op":"remove","path":"n"}]',
        JSON_PATCH,
        422,
        "invalid_patch",
    ),
    (
        "json patch bad escape",
        "PATCH",
        "",
        b'[{"op":"remove","path":"/a~2"}]',
        JSON_PATCH,
        422,
        "invalid_patch",
    ),
    ("json patch no path", "PATCH", "", b'[{"op":"remove"}]', JSON_PATCH, 422, "invalid_patch"),
    (
        "json patch missing",
        "PATCH",
        "",
        b'[{"op":"remove","path":"/zz"}]',
        JSON_PATCH,
        422,
        "path_not_found",
    ),
    (
        "json patch half applies",
        "PATCH",
        "",
        b'[{"op":"replace","path":"/n","value":5},{"op":"remove","path":"/l/7"}]',
        JSON_PATCH,
        422,
        "path_not_found",
    ),
    (
        "json patch test fails",
        "PATCH",
        "",
        b'[{"op":"test","path":"/n","value":2},{"op":"replace","path":"/n","value":3}]',
        JSON_PATCH,
        409,
        "test_failed",
    ),
    ("json patch at a path", "PATCH", "n", b"[]", JSON_PATCH, 415, "unsupported_media_type"),
    (
        "json patch too many ops",
        "PATCH",
        "",
        json.dumps([{"op": "test", "path": "/n", "value": 1}] * 101).encode(),
        JSON_PATCH,
        413,
        "too_many_ops",
    ),
    ("json patch via post", "POST", "l", b"[]", {**JSON_PATCH}, 415, "unsupported_media_type"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_a_4xx_json_error_and_changes_nothing(site: Site, case: Any) -> None:
    _, method, path, content, headers, status, code = case
    s = Store({"n": 1, "l": [1, 2], "o": {"k": "v"}})
    before = s.read()
    c = site.client()
    r = c.request(method, api(s, path), content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == code and body["detail"]
    assert s.read() == before and s.version == 0


def test_cookie_flags_and_expiry(site: Site) -> None:
    r = httpx.get(site.url + "/login")
    header = r.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "path=/" in header
    jar = site.hub.sessions
    sid, cookie = jar.issue()
    assert jar.verify(cookie) == sid
    old = cookie.split(".")
    stale = f"{old[0]}.{int(old[1]) - 31 * 86400}"
    assert jar.verify(f"{stale}.{jar.signer.sign(stale)}") is None
    assert jar.verify("garbage") is None and jar.verify(None) is None


def test_one_signer_a_sync_server_and_a_facade_accept_each_others_cookies() -> None:
    from statekit.server import SessionSigner, SyncServer

    jar = hl.sessions_of(App(secret=SECRET))
    server = SyncServer([], secret=SECRET)
    assert isinstance(jar.signer, SessionSigner)
    sid, cookie = jar.issue()
    assert server.signer.verify(cookie) == sid
    sid2, cookie2 = server.signer.issue()
    assert jar.verify(cookie2) == sid2
    # another secret accepts neither
    assert SyncServer([], secret="other " + SECRET).signer.verify(cookie) is None
    assert hl.sessions_of(App(secret="other " + SECRET)).verify(cookie2) is None


def test_no_secret_means_a_random_one_said_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("STATEKIT_SECRET", raising=False)
    with caplog.at_level("WARNING", logger="statekit.server"):
        first, second = hl.sessions_of(App()), hl.sessions_of(Starlette())
    said = [r.getMessage() for r in caplog.records if "STATEKIT_SECRET" in r.getMessage()]
    assert len(said) == 2 and all("statekit.compat.htealeaf" in m for m in said)
    assert len(first.secret) == 32 and first.secret != second.secret
    _, cookie = first.issue()
    assert second.verify(cookie) is None
    monkeypatch.setenv("STATEKIT_SECRET", SECRET)
    caplog.clear()
    with caplog.at_level("WARNING", logger="statekit.server"):
        jar = hl.sessions_of(App())
    assert jar.secret == SECRET.encode() and not caplog.records


def test_store_ids_must_be_safe_names() -> None:
    with pytest.raises(ValueError, match="must match"):
        Store({}, id="no spaces/please")


def test_react_on_auth_store_renders_the_current_users_value(site: Site) -> None:
    todos = AuthStore(auth_session, {"todo": ["x"]})

    @site.app.route("/mine")
    def mine() -> Any:
        return div(todos.react("todo/0"), todos.react("todo", tag="b"))

    assert (
        f'<span data-sk-text="{todos.id}:/todo/0">x</span>' in site.client("ana").get("/mine").text
    )
    # anonymous: nothing to follow, so the element is empty and names no store
    anonymous = site.client().get("/mine").text
    assert "<div><span></span><b></b></div>" in anonymous and todos.id not in anonymous
    assert hl.null is None and json.loads("[]") == []


def test_the_seed_example_file_runs_with_only_its_imports_changed() -> None:
    import runpy
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "htealeaf_seed.py"
    module = runpy.run_path(str(example))
    with serve(module["app"]) as url:
        c = httpx.Client(base_url=url, timeout=10)
        counter_id = module["cstore"].id
        assert f'data-sk-text="{counter_id}:/counter">1</span>' in c.get("/counter").text
        assert c.get("/", follow_redirects=False).headers["location"] == "/login"
        c.get("/login?name=ana")
        todo_id = module["todoStore"].id
        r = c.post(f"/api/_store/{todo_id}/todo", json={"value": "milk"}, headers=WRITE)
        assert r.status_code == 200
        page = c.get("/").text
        assert '<div data-idx="0">milk</div>' in page and "Add Task" in page
        r = c.patch(f"/api/_store/{module['globalStore'].id}/counter", json=7, headers=WRITE)
        assert r.json() == 7
