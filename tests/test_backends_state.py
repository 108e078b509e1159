"""``State`` models bound to a backend (memory, SQLite, Redis), parametrised.

Two app scopes attached to one backend object stand for two processes (as in
test_backends.py); the real-process and FastAPI cases are at the end.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, model_validator

import statekit as sk
from _backends import (
    BACKENDS,
    cleanup_prefix,
    expire_local,
    make_backend,
    new_prefix,
    redis_url,
    two_apps,
    wait_for,
)
from statekit.backends import Backend, backend_from_url, store_name

pytestmark = pytest.mark.timeout(120)


class Address(BaseModel):
    model_config = ConfigDict(frozen=True)
    city: str
    zip: str = ""


class Line(sk.State):
    sku: str = ""
    qty: int = 1


class Cart(sk.State, scope="session"):
    items: list[str] = []
    lines: list[Line] = []
    ship_to: Address | None = None
    tags: frozenset[str] = frozenset()
    count: int = 0
    when: datetime.date | None = None

    @sk.computed
    def size(self) -> int:
        return len(self.items)


class Bounded(sk.State, scope="session", name="bounded"):
    low: int = 0
    high: int = 10

    @model_validator(mode="after")
    def ordered(self) -> Bounded:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


def in_session(app: sk.Scope, fn: Callable[[], Any], sid: str = "s1") -> Any:
    with app, sk.session(sid):
        return fn()


CART = store_name(Cart)
KEY = "app:app/session:s1"


# ---------------------------------------------------------------- sharing


def test_two_apps_share_a_sessions_state(backend: Backend) -> None:
    one, two = two_apps(backend)
    with one, sk.session("s1"):
        cart = Cart.get()
        cart.items = ["tea", "milk"]
        cart.lines = [Line(sku="a", qty=2), Line(sku="b")]
        cart.ship_to = Address(city="Lyon")
        cart.tags = frozenset({"gift"})
        cart.when = datetime.date(2026, 12, 2)
    with two, sk.session("s1"):
        other = Cart.get()
        assert other is not cart
        assert other.items == ["tea", "milk"]
        assert [(line.sku, line.qty) for line in other.lines] == [("a", 2), ("b", 1)]
        assert isinstance(other.lines[0], Line)
        assert other.ship_to == Address(city="Lyon")
        assert other.tags == frozenset({"gift"})
        assert other.when == datetime.date(2026, 12, 2)
        assert other.size == 2
        assert isinstance(other.items, sk.FrozenList)
        other.items = [*other.items, "eggs"]  # and back the other way
    wait_for(lambda: cart.items == ["tea", "milk", "eggs"])
    with two, sk.session("s2"):  # another session of the same app: its own
        assert Cart.get().items == []


def test_the_stored_document_is_the_json_of_the_model(backend: Backend) -> None:
    one, _ = two_apps(backend)
    with one, sk.session("s1"):
        cart = Cart.get()
        cart.set(items=["x"], ship_to=Address(city="Oslo", zip="0150"))
        cart.when = datetime.date(2026, 1, 31)
    assert CART == "state:test_backends_state.Cart"
    version, doc = backend.load(KEY, CART)
    assert version == 2
    assert doc == cart.model_dump(mode="json")
    assert doc["when"] == "2026-01-31" and doc["ship_to"] == {"city": "Oslo", "zip": "0150"}
    assert store_name(Bounded) == "state:bounded"


def test_a_copy_created_later_loads_the_stored_values(backend: Backend) -> None:
    one, two = two_apps(backend)
    with one, sk.session("s1"):
        for _ in range(5):
            Cart.get().update("count", lambda n: n + 1)
    with two, sk.session("s1"):
        assert not Cart.exists()
        late = Cart.get()  # made after the writes: loaded from the backend
        assert late.count == 5
        assert late.update("count", lambda n: n * 10) == 50
    # The first copy follows (on whichever thread hears the commit first).
    wait_for(lambda: in_session(one, lambda: Cart.get().count) == 50)


def test_an_instance_written_outside_its_scope_commits_to_its_own_copy(
    backend: Backend,
) -> None:
    one, two = two_apps(backend)
    with one, sk.session("s1"):
        cart = Cart.get()
    with one, sk.session("other"):
        cart.items = ["from elsewhere"]  # the current session is not cart's
        assert Cart.get().items == []
    cart.count = 3  # no scope entered at all
    assert backend.load(KEY, CART)[1]["items"] == ["from elsewhere"]
    assert in_session(two, lambda: (Cart.get().items, Cart.get().count)) == (
        ["from elsewhere"],
        3,
    )


# ---------------------------------------------------------------- atomicity


def test_update_from_threads_over_two_copies_ends_exact(backend: Backend) -> None:
    apps = two_apps(backend)
    carts = [in_session(app, Cart.get) for app in apps]
    per_thread = 40
    errors: list[BaseException] = []

    def work(cart: Cart) -> None:
        try:
            for _ in range(per_thread):
                cart.update("count", lambda n: n + 1)
                cart.update("items", lambda xs: [*xs, "x"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(carts[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not errors, errors
    total = 6 * per_thread
    assert backend.load(KEY, CART)[1]["count"] == total
    for cart in carts:
        wait_for(lambda cart=cart: cart.count == total and len(cart.items) == total)


def test_a_stale_copy_reruns_update_on_the_fresh_value(backend: Backend) -> None:
    one, two = two_apps(backend)
    cart = in_session(one, Cart.get)
    in_session(two, Cart.get)
    cart.count = 1
    calls: list[int] = []

    def bump(n: int) -> int:
        calls.append(n)
        if len(calls) == 1:
            # "Another process" commits while fn runs: this copy's push is refused.
            op = {"op": "replace", "path": "/count", "value": 41}
            backend._write(KEY, CART, [op], 1, initial="{}", ttl=None)
        return n + 1

    assert cart.update("count", bump) == 42
    assert calls == [1, 41]  # ran on the stale value, was refused, ran again
    assert backend.load(KEY, CART) == (3, cart.model_dump(mode="json"))
    # Plain assignment is last-writer-wins, but never loses the other fields.
    op = {"op": "replace", "path": "/items", "value": ["z"]}
    backend._write(KEY, CART, [op], 3, initial="{}", ttl=None)
    cart.count = 7
    assert cart.items == ["z"] and cart.count == 7
    assert backend.load(KEY, CART)[1]["items"] == ["z"]


def test_a_refused_value_commits_nothing_anywhere(backend: Backend) -> None:
    one, two = two_apps(backend)
    mine = in_session(one, Bounded.get)
    theirs = in_session(two, Bounded.get)
    mine.set(low=1, high=5)
    version = backend.load(KEY, "state:bounded")[0]
    with pytest.raises(sk.ValidationError):
        mine.low = 9  # the model validator refuses low > high
    with pytest.raises(sk.ValidationError):
        mine.set(high=20, low="nope")  # one bad value: none is written
    with pytest.raises(sk.ValidationError):
        mine.update("high", lambda n: n - 10)
    with pytest.raises(sk.ValidationError):
        mine.restore({"low": 3, "high": 2})
    assert backend.load(KEY, "state:bounded") == (version, {"low": 1, "high": 5})
    assert (mine.low, mine.high) == (1, 5)
    wait_for(lambda: (theirs.low, theirs.high) == (1, 5))
    time.sleep(0.05)
    assert (theirs.low, theirs.high) == (1, 5)
    mine.restore({"high": 3})  # restore: missing fields take their defaults
    wait_for(lambda: (theirs.low, theirs.high) == (0, 3))


def test_a_stored_document_that_does_not_fit_falls_back_to_defaults(backend: Backend) -> None:
    caught: list[tuple[BaseException, str]] = []
    old = sk.set_error_hook(lambda exc, where: caught.append((exc, where)))
    try:
        bad = [
            {"op": "add", "path": "/low", "value": "x"},
            {"op": "add", "path": "/gone", "value": 1},
        ]
        backend.commit(KEY, "state:bounded", bad, 0, initial="{}")
        one, _ = two_apps(backend)
        with one, sk.session("s1"):
            bounded = Bounded.get()  # no crash: the defaults
            assert (bounded.low, bounded.high) == (0, 10)
        assert len(caught) == 1
        assert "does not fit the model" in str(caught[0][0])
        assert "'state:bounded'" in str(caught[0][0])
        bounded.high = 4  # the next write replaces the whole document
        assert backend.load(KEY, "state:bounded")[1] == {"low": 0, "high": 4}
        assert len(caught) == 1
    finally:
        sk.set_error_hook(old)


# ---------------------------------------------------------------- following


def test_a_remote_commit_reaches_computeds_effects_and_subscribers(backend: Backend) -> None:
    one, two = two_apps(backend)
    writer = in_session(one, Cart.get)
    with two, sk.session("s1"):
        reader = Cart.get()
        sizes: list[int] = []
        stop = sk.effect(lambda: sizes.append(reader.size))
        counts: list[int] = []
        off = reader.subscribe(lambda cart: counts.append(cart.count), "count")
        ref: list[Any] = []
        off_ref = reader.field("items").subscribe(ref.append)
    writer.items = ["a", "b"]
    writer.count = 5
    writer.ship_to = Address(city="Rome")  # a field nobody here watches
    wait_for(lambda: sizes == [0, 2] and counts == [5] and ref == [["a", "b"]])
    wait_for(lambda: reader.ship_to == Address(city="Rome"))
    time.sleep(0.05)
    assert sizes == [0, 2] and counts == [5]  # each reader ran once per change
    stop()
    off()
    off_ref()


def test_followers_run_outside_every_lock(backend: Backend) -> None:
    """A watcher of a followed instance may write another bound instance (the
    shape of the store deadlock fixed in f0ff29e): it runs outside the locks."""
    one, two = two_apps(backend)
    writer = in_session(one, Cart.get)
    with two:
        reader = in_session(two, Cart.get)
        echo = in_session(two, Bounded.get)
        stop = sk.effect(lambda: setattr(echo, "high", 10 + reader.count))
    for n in range(1, 21):
        writer.count = n
    wait_for(lambda: echo.high == 30)
    assert backend.load(KEY, "state:bounded")[1]["high"] == 30
    stop()


def test_idle_sessions_expire_and_drop_the_state(backend: Backend) -> None:
    app, _ = two_apps(backend)
    with app:
        with sk.session("idle", ttl=0.5):
            Cart.get().items = ["tea"]
        with sk.session("busy", ttl=60):
            Cart.get().items = ["milk"]
    idle, busy = "app:app/session:idle", "app:app/session:busy"
    assert {idle, busy} <= set(backend.scopes())
    wait_for(lambda: idle not in backend.scopes())
    assert busy in backend.scopes()
    assert expire_local(app) == 1
    backend.expire()
    assert backend.load(idle, CART) == (0, None)
    with app, sk.session("idle", ttl=0.5):
        assert Cart.get().items == []  # a new session starts from the defaults
    with app, sk.session("busy"):
        assert Cart.get().items == ["milk"]


def test_without_a_backend_nothing_is_bound() -> None:
    class Plain(sk.State, scope="session"):
        n: int = 0

    with sk.session("s"):
        plain = Plain.get()
        plain.n = 1
    assert getattr(plain, "_sk_link", None) is None
    assert Plain.__sk_guard__ is False  # writes keep the fast path


def test_plain_instances_of_a_bound_class_stay_plain(backend: Backend) -> None:
    one, _ = two_apps(backend)
    in_session(one, lambda: setattr(Cart.get(), "count", 2))
    loose = Cart(count=5)  # belongs to no scope
    loose.count = 6
    assert backend.load(KEY, CART)[1]["count"] == 2
    frozen_copy = in_session(one, lambda: Cart.get().model_copy())
    frozen_copy.count = 9  # a copy is not bound
    assert backend.load(KEY, CART)[1]["count"] == 2


def test_name_must_be_a_non_empty_string() -> None:
    with pytest.raises(sk.InvalidDefinition, match="name= is a non-empty string"):

        class Bad(sk.State, name=""):
            n: int = 0


# ---------------------------------------------------------------- real processes


def test_a_state_written_in_one_process_is_read_in_another(tmp_path: Path) -> None:
    from test_backends_processes import Worker

    for kind in ("redis", "sqlite"):
        if kind == "redis":
            url, prefix = redis_url(), new_prefix()
        else:
            url, prefix = f"sqlite:///{tmp_path}/shared.db", "-"
        worker = Worker("state", url, prefix, "s9", "tea,milk")
        try:
            assert worker.expect("ack") == "ack tea,milk"
            backend = backend_from_url(
                url, **({"prefix": prefix} if url.startswith("redis") else {})
            )
            try:
                with backend.attach(sk.new_app_scope()), sk.session("s9"):
                    cart = ProcCart.get()
                    assert cart.items == ["tea", "milk"]  # written by the worker
                    cart.update("items", lambda xs: [*xs, "eggs"])
                # The worker follows: its instance (already made) hears the commit.
                worker.send("show")
                assert worker.expect("items") == "items tea,milk,eggs"
            finally:
                backend.close()
        finally:
            worker.stop()
            if kind == "redis":
                cleanup_prefix(url, prefix)


class ProcCart(sk.State, scope="session", name="proc-cart"):
    """The same document as the worker's ``ProcCart`` (tests/_backend_worker.py)."""

    items: list[str] = []


# ---------------------------------------------------------------- FastAPI


@pytest.mark.parametrize("kind", BACKENDS)
def test_two_fastapi_apps_with_one_cookie_see_the_same_state(kind: str, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from statekit.fastapi import SESSION_COOKIE, StatekitLifespan, state

    def create_app(backend: Backend) -> FastAPI:
        app = FastAPI(lifespan=StatekitLifespan(secret="s" * 40, backend=backend))

        @app.post("/cart/{item}")
        async def add(item: str, cart: Cart = Depends(state(Cart))) -> dict[str, Any]:
            cart.update("items", lambda xs: [*xs, item])
            return {"items": list(cart.items), "size": cart.size}

        @app.get("/cart")
        async def read(cart: Cart = Depends(state(Cart))) -> dict[str, Any]:
            return {"items": list(cart.items), "size": cart.size}

        return app

    backend = make_backend(kind, tmp_path)
    try:
        with TestClient(create_app(backend)) as first, TestClient(create_app(backend)) as second:
            assert first.post("/cart/milk").json() == {"items": ["milk"], "size": 1}
            second.cookies.set(SESSION_COOKIE, first.cookies[SESSION_COOKIE])
            assert second.get("/cart").json() == {"items": ["milk"], "size": 1}
            assert second.post("/cart/eggs").json() == {"items": ["milk", "eggs"], "size": 2}
            wait_for(lambda: first.get("/cart").json()["items"] == ["milk", "eggs"])
            second.cookies.clear()
            assert second.get("/cart").json() == {"items": [], "size": 0}
        # The shared session's document: two commits, one per app.
        versions = [backend.load(key, CART)[0] for key in backend.scopes() if "/session:" in key]
        assert 2 in versions
    finally:
        backend.close()
