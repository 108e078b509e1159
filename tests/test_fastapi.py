"""statekit.fastapi: lifespan, resources, scopes per request, dependencies, overrides.

Each behaviour is checked in-process with ``with TestClient(app)`` and, where
the server matters (lifespan events, cookies over real HTTP), against a real
uvicorn on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

import statekit as sk
from _uvicorn import serve
from statekit.fastapi import SESSION_COOKIE, StatekitLifespan, current, resource, state, store

SECRET = "test-secret-for-statekit-fastapi"


class Cart(sk.State, scope="session"):
    items: list[str] = []


class Prefs(sk.State, scope="user"):
    lang: str = "en"


todos = sk.Store({"todo": []}, name="fa_todos", scope="session")
hits = sk.atom(0, name="fa_hits")  # app scope
seen = sk.atom(0, name="fa_seen", scope="request")


def logged(log: list[str], name: str) -> Any:
    """A resource whose value is its name, logging its open and close."""

    async def factory() -> AsyncIterator[str]:
        log.append(f"open {name}")
        yield name
        log.append(f"close {name}")

    return resource(factory, name=name)


def make_app(log: list[str] | None = None, **options: Any) -> FastAPI:
    """An app with a chain of three resources and routes over session state."""
    log = log if log is not None else []
    db = logged(log, "db")

    @resource
    async def repo(conn: str = Depends(db)) -> AsyncIterator[str]:
        log.append("open repo")
        yield f"repo({conn})"
        log.append("close repo")

    @resource
    def service(r: str = Depends(repo)) -> str:
        log.append("open service")
        return f"service({r})"

    options.setdefault("secret", SECRET)
    app = FastAPI(lifespan=StatekitLifespan(resources=[service], **options))
    app.state.resources = {"db": db, "repo": repo, "service": service}

    @app.get("/service")
    async def get_service(svc: str = Depends(service)) -> str:
        return svc

    @app.post("/cart/{item}")
    async def add(item: str, cart: Cart = Depends(state(Cart))) -> list[str]:
        cart.update("items", lambda items: [*items, item])
        return list(cart.items)

    @app.get("/cart")
    def read_cart(cart: Cart = Depends(state(Cart))) -> list[str]:  # a sync route: thread pool
        return list(cart.items)

    @app.post("/todos/{title}")
    async def add_todo(title: str, t: sk.Store = Depends(store(todos))) -> int:
        t.add("todo/-", {"title": title, "done": False})
        return len(t.get("todo"))

    @app.post("/hit")
    async def hit() -> int:
        return int(hits.update(lambda n: n + 1))

    @app.get("/request")
    async def in_request() -> dict[str, Any]:
        seen.update(lambda n: n + 1)
        scope = sk.current_scope()
        return {"level": scope.level, "seen": seen.value, "parent": scope.parent.level}

    @app.get("/health")
    async def health() -> str:
        return "ok"

    return app


# ---------------------------------------------------------------- lifespan


def test_lifespan_opens_in_dependency_order_and_closes_in_reverse() -> None:
    log: list[str] = []
    app = make_app(log)
    with TestClient(app) as client:
        assert log == ["open db", "open repo", "open service"]
        assert client.get("/service").json() == "service(repo(db))"
        runtime = app.state.statekit
        assert runtime.scope.level == "app" and not runtime.scope.disposed
        assert runtime.get(app.state.resources["repo"]) == "repo(db)"
    assert log[3:] == ["close repo", "close db"]
    assert runtime.scope.disposed
    assert app.state.statekit is None


def test_lifespan_under_uvicorn_opens_and_closes_in_order() -> None:
    log: list[str] = []
    app = make_app(log)
    with serve(app, lifespan="on") as url:
        assert log == ["open db", "open repo", "open service"]
        assert httpx.get(f"{url}/service", timeout=10).json() == "service(repo(db))"
    assert log[3:] == ["close repo", "close db"]


def _failing_app(log: list[str], fail_in: str) -> FastAPI:
    @resource
    async def first() -> AsyncIterator[int]:
        log.append("open first")
        yield 1
        log.append("close first")

    @resource
    async def second(x: int = Depends(first)) -> AsyncIterator[int]:
        log.append("open second")
        yield x + 1
        log.append("close second")

    @resource
    async def third(y: int = Depends(second)) -> int:
        if fail_in == "resource":
            raise RuntimeError("third cannot start")
        return y + 1

    @asynccontextmanager
    async def mine(app: FastAPI) -> AsyncIterator[None]:
        log.append("open mine")
        if fail_in == "user":
            raise RuntimeError("my lifespan cannot start")
        yield
        log.append("close mine")  # pragma: no cover - startup failed

    return FastAPI(lifespan=StatekitLifespan(mine, resources=[third], secret=SECRET))


@pytest.mark.parametrize("fail_in", ["resource", "user"])
def test_startup_failing_half_way_closes_what_was_opened(fail_in: str) -> None:
    log: list[str] = []
    app = _failing_app(log, fail_in)
    with pytest.raises(RuntimeError, match="cannot start"), TestClient(app):
        pass  # pragma: no cover - startup fails
    opened = ["open first", "open second"] + (["open mine"] if fail_in == "user" else [])
    assert log == [*opened, "close second", "close first"]
    assert getattr(app.state, "statekit", None) is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_startup_failing_under_uvicorn_closes_what_was_opened() -> None:
    log: list[str] = []
    app = _failing_app(log, "resource")
    with pytest.raises(RuntimeError, match="did not start"), serve(app, lifespan="on"):
        pass  # pragma: no cover - startup fails
    assert log == ["open first", "open second", "close second", "close first"]


def test_user_lifespan_runs_inside_with_resources_and_state() -> None:
    log: list[str] = []
    conn = logged(log, "conn")

    @asynccontextmanager
    async def mine(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        log.append(f"mine sees {conn.get()} in {sk.current_scope().level}")
        yield {"answer": 42}
        log.append("close mine")

    app = FastAPI(lifespan=StatekitLifespan(mine, resources=[conn], secret=SECRET))

    @app.get("/")
    async def home(request: Request, c: str = Depends(conn)) -> list[Any]:
        return [request.state.answer, c, request.state.statekit is request.app.state.statekit]

    with TestClient(app) as client:
        assert client.get("/").json() == [42, "conn", True]
    assert log == ["open conn", "mine sees conn in app", "close mine", "close conn"]


def test_close_errors_still_close_the_rest_and_surface() -> None:
    log: list[str] = []

    @resource
    async def outer() -> AsyncIterator[str]:
        yield "outer"
        log.append("close outer")

    @resource
    async def inner(o: str = Depends(outer)) -> AsyncIterator[str]:
        yield "inner"
        raise RuntimeError("inner failed to close")

    app = FastAPI(lifespan=StatekitLifespan(resources=[inner], secret=SECRET))
    client = TestClient(app)
    client.__enter__()
    runtime = app.state.statekit
    with pytest.raises(RuntimeError, match="inner failed to close"):
        client.__exit__(None, None, None)
    assert log == ["close outer"]
    assert runtime.scope.disposed


# ---------------------------------------------------------------- resources


def test_resource_definition_errors_are_clear() -> None:
    @resource
    def a() -> int:
        return 1

    with pytest.raises(sk.InvalidDefinition, match=r"parameter 'x' is neither"):

        @resource
        def bad(x: int) -> int:
            return x

    # Defaults can only name resources that exist, so a cycle takes a forward
    # reference patched in afterwards.
    p = resource(lambda: 1, name="p")
    q = resource(lambda x=Depends(p): x, name="q")
    object.__setattr__(p, "_needs", (("y", q),))
    with pytest.raises(sk.InvalidDefinition, match="cycle: q -> p -> q"):
        StatekitLifespan(resources=[q])
    with pytest.raises(TypeError, match="resource definitions, not 3"):
        StatekitLifespan(resources=[3])  # type: ignore[list-item]
    with pytest.raises(sk.StatekitError, match="resource 'a' is not open"):
        a.get()


def test_resource_generator_must_yield_exactly_once() -> None:
    @resource
    async def twice() -> AsyncIterator[int]:
        yield 1
        yield 2

    app = FastAPI(lifespan=StatekitLifespan(resources=[twice], secret=SECRET))
    client = TestClient(app)
    client.__enter__()
    with pytest.raises(sk.StatekitError, match="'twice': its generator yielded more than once"):
        client.__exit__(None, None, None)

    @resource
    def never() -> Iterator[int]:
        return
        yield  # pragma: no cover

    app = FastAPI(lifespan=StatekitLifespan(resources=[never], secret=SECRET))
    with pytest.raises(sk.StatekitError, match="'never': its generator did not yield"):
        with TestClient(app):
            pass  # pragma: no cover


def test_resource_gets_the_app_and_sync_generators_close() -> None:
    log: list[str] = []

    @resource
    def settings(app: FastAPI) -> Iterator[str]:
        yield app.state.db_path
        log.append("closed settings")

    app = FastAPI(lifespan=StatekitLifespan(resources=[settings], secret=SECRET))
    app.state.db_path = "/tmp/x.db"

    @app.get("/")
    async def home(path: str = Depends(settings)) -> str:
        return path

    with TestClient(app) as client:
        assert client.get("/").json() == "/tmp/x.db"
    assert log == ["closed settings"]


# ---------------------------------------------------------------- sessions and scopes


def test_two_cookie_jars_see_separate_session_state() -> None:
    app = make_app()
    with TestClient(app) as alice:
        bob = TestClient(app)  # shares the running app (no second lifespan), own cookies
        assert alice.post("/cart/apple").json() == ["apple"]
        assert bob.post("/cart/fig").json() == ["fig"]
        assert alice.post("/cart/pear").json() == ["apple", "pear"]
        assert alice.get("/cart").json() == ["apple", "pear"]
        assert bob.get("/cart").json() == ["fig"]
        assert alice.post("/todos/milk").json() == 1
        assert bob.post("/todos/eggs").json() == 1
        assert alice.post("/todos/tea").json() == 2
        assert alice.cookies[SESSION_COOKIE] != bob.cookies[SESSION_COOKIE]
        assert app.state.statekit.scope.count("session") == 2


def test_two_cookie_jars_under_uvicorn() -> None:
    app = make_app()
    with (
        serve(app, lifespan="on") as url,
        httpx.Client(base_url=url, timeout=10) as alice,
        httpx.Client(base_url=url, timeout=10) as bob,
    ):
        assert alice.post("/cart/apple").json() == ["apple"]
        set_cookie = alice.post("/cart/pear").headers.get("set-cookie")
        assert set_cookie is None  # issued once, on the first response that stored state
        assert bob.post("/cart/fig").json() == ["fig"]
        assert alice.get("/cart").json() == ["apple", "pear"]
        assert bob.get("/cart").json() == ["fig"]


def test_cookie_is_http_only_same_site_and_issued_only_when_state_is_kept() -> None:
    app = make_app()
    with TestClient(app) as client:
        response = client.get("/health")
        assert "set-cookie" not in response.headers
        assert app.state.statekit.scope.count("session") == 0
        response = client.post("/cart/apple")
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http here
        assert app.state.statekit.scope.count("session") == 1


def test_forged_cookie_gets_a_new_session() -> None:
    app = make_app()
    with TestClient(app) as client:
        client.post("/cart/apple")
        good = client.cookies[SESSION_COOKIE]
        sid, _, rest = good.partition(".")
        forged = ("0" * 32 if sid != "0" * 32 else "1" * 32) + "." + rest
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, forged)
        response = client.post("/cart/fig")
        assert response.json() == ["fig"]
        assert response.cookies[SESSION_COOKIE] not in (good, forged)


def test_https_cookie_is_secure() -> None:
    app = make_app()
    with TestClient(app, base_url="https://testserver") as client:
        assert "Secure" in client.post("/cart/apple").headers["set-cookie"]


def test_each_request_runs_in_its_own_request_scope() -> None:
    app = make_app()
    with TestClient(app) as client:
        client.post("/cart/apple")  # a session, so requests hang under it
        first = client.get("/request").json()
        second = client.get("/request").json()
        assert first == second == {"level": "request", "seen": 1, "parent": "session"}
        session = app.state.statekit.scope.scopes("session")[0]
        assert session.children("request") == []  # disposed after each request


def test_app_scoped_values_are_per_app_run() -> None:
    app = make_app()
    with TestClient(app) as client:
        assert [client.post("/hit").json() for _ in range(3)] == [1, 2, 3]
    with TestClient(app) as client:  # a new run: a fresh app scope
        assert client.post("/hit").json() == 1
        assert client.post("/cart/x").json() == ["x"]
    assert hits.value == 0  # the test's own app scope never saw them


def test_two_apps_in_one_process_do_not_share_state() -> None:
    one, two = make_app(), make_app()
    with TestClient(one) as a, TestClient(two) as b:
        assert a.post("/hit").json() == 1
        assert a.post("/hit").json() == 2
        assert b.post("/hit").json() == 1
        a.post("/cart/apple")
        # The same cookie sent to the other app: same secret, so the same sid,
        # but that app's session has its own cart.
        b.cookies.clear()
        b.cookies.set(SESSION_COOKIE, a.cookies[SESSION_COOKIE])
        assert b.get("/cart").json() == []
        assert one.state.statekit.scope is not two.state.statekit.scope


def test_two_apps_under_uvicorn_do_not_share_state() -> None:
    one, two = make_app(), make_app()
    with serve(one, lifespan="on") as url1, serve(two, lifespan="on") as url2:
        assert httpx.post(f"{url1}/hit", timeout=10).json() == 1
        assert httpx.post(f"{url1}/hit", timeout=10).json() == 2
        assert httpx.post(f"{url2}/hit", timeout=10).json() == 1


def test_user_scoped_state_follows_identify() -> None:
    def identify(request: Any) -> str | None:
        return request.headers.get("x-user")

    app = FastAPI(lifespan=StatekitLifespan(secret=SECRET, identify=identify))

    @app.post("/lang/{lang}")
    async def set_lang(lang: str, prefs: Prefs = Depends(state(Prefs))) -> str:
        prefs.lang = lang
        return prefs.lang

    @app.get("/lang")
    async def get_lang(prefs: Prefs = Depends(state(Prefs))) -> str:
        return prefs.lang

    with TestClient(app) as client:
        assert client.post("/lang/fr", headers={"x-user": "alice"}).json() == "fr"
        client.cookies.clear()  # another device of alice: another session, same user
        assert client.get("/lang", headers={"x-user": "alice"}).json() == "fr"
        assert client.get("/lang", headers={"x-user": "bob"}).json() == "en"
        anonymous = client.get("/lang")
        assert anonymous.status_code == 401
        assert "signed-in user" in anonymous.json()["detail"]


def test_async_identify_and_bad_identify() -> None:
    async def identify(request: Any) -> Any:
        return request.headers.get("x-user") or 7

    app = FastAPI(lifespan=StatekitLifespan(secret=SECRET, identify=identify))

    @app.get("/")
    async def home() -> str | None:
        user = sk.current_scope().find("user")
        return None if user is None else user.id

    with TestClient(app) as client:
        assert client.get("/", headers={"x-user": "alice"}).json() == "alice"
        with pytest.raises(TypeError, match=r"returns a user id \(str\) or None, not int"):
            client.get("/")


def test_without_a_secret_session_state_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STATEKIT_SECRET", raising=False)
    app = make_app(secret=None)
    with TestClient(app) as client:
        assert client.post("/hit").json() == 1  # app state needs no session
        assert client.get("/request").json()["parent"] == "app"
        with pytest.raises(sk.StatekitError, match=r"Cart lives in a session.*secret="):
            client.post("/cart/apple")


def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEKIT_SECRET", SECRET)
    app = make_app(secret=None)
    with TestClient(app) as client:
        assert client.post("/cart/apple").json() == ["apple"]
        assert SESSION_COOKIE in client.cookies


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="session_ttl=0"):
        StatekitLifespan(session_ttl=0)
    with pytest.raises(ValueError, match="sweep_interval=-1"):
        StatekitLifespan(sweep_interval=-1)
    with pytest.raises(TypeError, match=r"state\(\) takes an sk.State subclass"):
        state(dict)
    with pytest.raises(TypeError, match=r"store\(\) takes an sk.Store"):
        store(Cart)  # type: ignore[arg-type]


def test_current_gives_the_request_scopes() -> None:
    app = make_app()

    @app.get("/scopes")
    async def scopes(
        session: sk.Scope = Depends(current("session")),
        request: sk.Scope = Depends(current()),
        user: sk.Scope = Depends(current("user")),
    ) -> list[str]:
        return [session.id, request.parent.id]  # pragma: no cover - no user: 401 first

    @app.get("/session")
    async def session_id(session: sk.Scope = Depends(current("session"))) -> str:
        Cart.get()  # keep the session, so its cookie is issued
        return session.id

    with TestClient(app) as client:
        sid = client.get("/session").json()
        assert client.get("/session").json() == sid
        assert len(sid) == 32 and client.cookies[SESSION_COOKIE].startswith(sid)
        assert client.get("/scopes").status_code == 401
    assert current("session") == current("session")


def test_dependencies_outside_a_statekit_app_say_so() -> None:
    app = FastAPI()  # no StatekitLifespan

    @app.get("/")
    async def home(cart: Cart = Depends(state(Cart))) -> list[str]:
        return list(cart.items)  # pragma: no cover

    with TestClient(app) as client, pytest.raises(sk.StatekitError, match="outside a statekit"):
        client.get("/")


# ---------------------------------------------------------------- overrides


def test_dependency_overrides_work_and_reset() -> None:
    app = make_app()
    service = app.state.resources["service"]
    with TestClient(app) as client:
        app.dependency_overrides[service] = lambda: "fake service"
        app.dependency_overrides[state(Cart)] = lambda: Cart(items=["stub"])
        assert client.get("/service").json() == "fake service"
        assert client.get("/cart").json() == ["stub"]
        app.dependency_overrides.clear()
        assert client.get("/service").json() == "service(repo(db))"
        assert client.get("/cart").json() == []


def test_override_replaces_a_store() -> None:
    other = sk.Store({"todo": [{"title": "x", "done": True}]}, name="fa_other", scope="app")
    app = make_app()
    with TestClient(app) as client:
        app.dependency_overrides[store(todos)] = lambda: other
        assert client.post("/todos/milk").json() == 2
        app.dependency_overrides.clear()
        assert client.post("/todos/milk").json() == 1


# ---------------------------------------------------------------- expiry


def test_idle_sessions_expire_and_a_returning_cookie_starts_fresh() -> None:
    app = make_app(session_ttl=60)
    with TestClient(app) as client:
        client.post("/cart/apple")
        runtime = app.state.statekit
        assert runtime.expire_idle() == 0
        import time

        assert runtime.expire_idle(now=time.monotonic() + 61) == 1
        assert runtime.scope.count("session") == 0
        assert client.get("/cart").json() == []  # same cookie, fresh session


def test_the_sweeper_expires_sessions_while_the_app_runs() -> None:
    app = make_app(session_ttl=0.05, sweep_interval=0.02)
    with TestClient(app) as client:
        client.post("/cart/apple")
        runtime = app.state.statekit
        import time

        deadline = time.monotonic() + 10
        while runtime.scope.count("session") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runtime.scope.count("session") == 0
