"""Scopes: where values live (app -> user -> session -> request)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import statekit as sk

# A module-level definition, as real code writes them: the sk_app fixture must
# give each test its own value.
SHARED = sk.atom(0, name="shared-across-tests")


# --------------------------------------------------------------------------
# ScopeError


def test_session_definition_outside_a_session_raises_scope_error() -> None:
    cart = sk.atom([], name="cart", scope="session")
    assert cart.scope == "session"
    with pytest.raises(sk.ScopeError) as info:
        cart.value
    message = str(info.value)
    assert "cart" in message
    assert "session" in message
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, sk.StatekitError)
    with pytest.raises(sk.ScopeError):
        cart.set([1])
    with pytest.raises(sk.ScopeError):
        cart.get()
    with pytest.raises(sk.ScopeError):
        cart.update(lambda xs: [*xs, 1])
    with pytest.raises(sk.ScopeError):
        cart.subscribe(lambda v: None)


def test_user_definition_outside_a_user_raises_scope_error_naming_level() -> None:
    prefs = sk.atom({}, name="prefs", scope="user")
    with pytest.raises(sk.ScopeError) as info:
        prefs.value
    assert "prefs" in str(info.value)
    assert "user" in str(info.value)
    # an anonymous session (not inside a user) has no user either
    with sk.session("anon"), pytest.raises(sk.ScopeError):
        prefs.value


def test_request_definition_outside_a_request_raises_scope_error() -> None:
    req = sk.atom(0, name="req-id", scope="request")
    with sk.session("s"), pytest.raises(sk.ScopeError) as info:
        req.value
    assert "req-id" in str(info.value)
    assert "request" in str(info.value)


def test_computed_with_explicit_session_scope_outside_session() -> None:
    base = sk.atom(1, name="base")
    per_session = sk.computed(lambda: base.value + 1, name="per-session", scope="session")
    with pytest.raises(sk.ScopeError) as info:
        per_session.value
    assert "per-session" in str(info.value)
    with sk.session("s"):
        assert per_session.value == 2


def test_unknown_level_is_refused() -> None:
    with pytest.raises((ValueError, sk.StatekitError)):
        sk.atom(0, name="bad", scope="galaxy")


# --------------------------------------------------------------------------
# isolation


def test_sessions_are_isolated_and_persist_by_id() -> None:
    theme = sk.atom("light", name="theme", scope="session")
    with sk.session("a") as a:
        assert theme.value == "light"
        theme.value = "dark"
        assert theme.value == "dark"
    with sk.session("b") as b:
        assert theme.value == "light"
        theme.value = "blue"
    with sk.session("a") as a2:
        assert a2 is a  # same id again -> same scope, values persist
        assert theme.value == "dark"
    with b:
        assert theme.value == "blue"
    assert a.level == "session"
    assert a.id == "a"
    assert a.parent is sk.app_scope()


def test_users_are_isolated_and_shared_by_their_sessions() -> None:
    prefs = sk.atom("en", name="lang", scope="user")
    sess = sk.atom(0, name="tabs", scope="session")
    with sk.user("alice") as alice, sk.session("phone") as phone:
        assert phone.parent is alice
        assert phone.find("user") is alice
        assert phone.find("app") is sk.app_scope()
        prefs.value = "fr"
        sess.value = 1
    with sk.user("alice"), sk.session("laptop"):
        assert prefs.value == "fr"  # same user, other session
        assert sess.value == 0
    with sk.user("bob"):
        assert prefs.value == "en"
        prefs.value = "de"
    with sk.user("alice"):
        assert prefs.value == "fr"
    assert alice.level == "user"
    assert alice.id == "alice"


def test_app_values_are_shared_by_all_sessions() -> None:
    hits = sk.atom(0, name="hits")
    for sid in ("a", "b", "c"):
        with sk.session(sid):
            hits.update(lambda n: n + 1)
    assert hits.value == 3


def test_find_and_current_scope() -> None:
    app = sk.current_scope()
    assert app.level == "app"
    assert sk.app_scope() is app
    assert app.find("app") is app
    assert app.find("session") is None
    with sk.session("s") as s:
        assert sk.current_scope() is s
        assert s.find("session") is s
        assert s.find("user") is None
        with sk.request() as r:
            assert sk.current_scope() is r
            assert r.parent is s
            assert r.find("session") is s
            assert r.level == "request"
        assert sk.current_scope() is s
    assert sk.current_scope() is app


def test_new_app_scope_is_independent() -> None:
    n = sk.atom(0, name="n")
    n.value = 5
    other = sk.new_app_scope(name="other")
    with other:
        assert sk.app_scope() is other
        assert n.value == 0
        n.value = 7
    assert n.value == 5
    with other:
        assert n.value == 7
    other.dispose()


def test_scope_run_calls_inside_the_scope() -> None:
    mine = sk.atom(0, name="mine", scope="session")
    with sk.session("s") as s:
        mine.value = 9
    assert s.run(lambda: mine.value) == 9
    assert s.run(lambda x, y=0: x + y + mine.value, 1, y=2) == 12
    assert sk.current_scope() is not s


# --------------------------------------------------------------------------
# computed with scope=None reading a session atom


def test_computed_without_scope_follows_the_session_it_reads() -> None:
    name = sk.atom("?", name="user-name", scope="session")
    runs = [0]

    def _greeting() -> str:
        runs[0] += 1
        return f"hi {name.value}"

    greeting = sk.computed(_greeting, name="greeting")
    with sk.session("A"):
        name.value = "ann"
        assert greeting.value == "hi ann"
    with sk.session("B"):
        assert greeting.value == "hi ?"
        name.value = "bob"
        assert greeting.value == "hi bob"
    learned = runs[0]
    with sk.session("A"):
        assert greeting.value == "hi ann"
    with sk.session("B"):
        assert greeting.value == "hi bob"
    assert runs[0] == learned  # cached per session: re-reading costs nothing
    with sk.session("A"):
        name.value = "anna"
        assert greeting.value == "hi anna"
    assert runs[0] == learned + 1  # only A's value recomputed
    with sk.session("B"):
        assert greeting.value == "hi bob"
    assert runs[0] == learned + 1
    with pytest.raises(sk.ScopeError):
        greeting.value


def test_computed_without_scope_reading_only_app_values_is_shared() -> None:
    base = sk.atom(2, name="base")
    runs = [0]

    def _double() -> int:
        runs[0] += 1
        return base.value * 2

    double = sk.computed(_double, name="double-app")
    for sid in ("A", "B", "C"):
        with sk.session(sid):
            assert double.value == 4
    assert double.value == 4
    assert runs[0] == 1  # one app-level value, computed once


def test_computed_without_scope_learns_a_deeper_level_later() -> None:
    personal = sk.atom(False, name="personal")
    nick = sk.atom("?", name="nick2", scope="session")
    label = sk.computed(lambda: nick.value if personal.value else "anonymous", name="label")
    with sk.session("A"):
        assert label.value == "anonymous"  # reads only app values so far
    personal.value = True
    with sk.session("A"):
        nick.value = "ann"
        assert label.value == "ann"
    with sk.session("B"):
        nick.value = "bob"
        assert label.value == "bob"
    with sk.session("A"):
        assert label.value == "ann"
    personal.value = False
    with sk.session("B"):
        assert label.value == "anonymous"


def test_effect_in_a_session_reruns_only_for_its_session() -> None:
    name = sk.atom("", name="nm", scope="session")
    greeting = sk.computed(lambda: f"hi {name.value}", name="greet")
    seen: dict[str, list[str]] = {"A": [], "B": []}
    stops = []
    for sid in ("A", "B"):
        with sk.session(sid):
            name.value = sid.lower()
            stops.append(sk.effect(lambda sid=sid: seen[sid].append(greeting.value)))
    with sk.session("B"):
        name.value = "bee"
    assert seen == {"A": ["hi a"], "B": ["hi b", "hi bee"]}
    with sk.session("A"):
        name.value = "ay"
    assert seen == {"A": ["hi a", "hi ay"], "B": ["hi b", "hi bee"]}
    for stop in stops:
        stop()


def test_effect_triggered_from_outside_sees_its_own_session() -> None:
    global_tick = sk.atom(0, name="tick")
    nick = sk.atom("", name="nick", scope="session")
    seen: list[tuple[int, str, str]] = []
    with sk.session("A"):
        nick.value = "alpha"
        stop = sk.effect(
            lambda: seen.append((global_tick.value, nick.value, sk.current_scope().id))
        )
    global_tick.value = 1  # written from the app scope, no session active
    assert seen == [(0, "alpha", "A"), (1, "alpha", "A")]
    stop()


# --------------------------------------------------------------------------
# request scope


def test_request_scope_is_disposed_on_exit() -> None:
    req = sk.atom(0, name="req", scope="request")
    tick = sk.atom(0, name="tick")
    runs = [0]
    cleaned: list[str] = []
    with sk.request() as r:
        req.value = 5
        r.on_dispose(lambda: cleaned.append("r"))

        def watch() -> None:
            runs[0] += 1
            tick.value

        sk.effect(watch)
        assert not r.disposed
    assert r.disposed
    assert cleaned == ["r"]
    tick.value = 1
    assert runs[0] == 1  # the request's effect stopped
    with sk.request() as r2:
        assert r2 is not r
        assert req.value == 0
    assert sk.app_scope().count("request") == 0


def test_request_scope_disposed_even_on_exception() -> None:
    with pytest.raises(RuntimeError), sk.request() as r:
        raise RuntimeError("handler failed")
    assert r.disposed


# --------------------------------------------------------------------------
# dispose


def test_dispose_stops_effects_drops_values_and_runs_cleanups() -> None:
    cart = sk.atom(0, name="cart", scope="session")
    tick = sk.atom(0, name="tick")
    log: list[str] = []
    with sk.session("s") as s:
        cart.value = 3

        def watch() -> Callable[[], None]:
            log.append(f"run {tick.value}")
            return lambda: log.append("effect cleanup")

        sk.effect(watch)
        s.on_dispose(lambda: log.append("first registered"))
        s.on_dispose(lambda: log.append("second registered"))
    tick.value = 1
    assert log == ["run 0", "effect cleanup", "run 1"]
    s.dispose()
    assert s.disposed
    assert log[:4] == ["run 0", "effect cleanup", "run 1", "effect cleanup"]
    assert sorted(log[4:]) == ["first registered", "second registered"]
    n = len(log)
    tick.value = 2
    assert len(log) == n  # the effect is gone
    s.dispose()  # idempotent: nothing runs twice
    assert len(log) == n
    assert sk.app_scope().count("session") == 0
    with sk.session("s") as fresh:
        assert fresh is not s
        assert cart.value == 0  # the old value was dropped


def test_disposed_scope_cannot_be_entered() -> None:
    with sk.session("gone") as s:
        pass
    s.dispose()
    with pytest.raises(sk.DisposedError):
        with s:
            pass
    with pytest.raises(sk.DisposedError):
        s.run(lambda: None)


def test_disposing_a_user_disposes_its_sessions() -> None:
    tick = sk.atom(0, name="tick")
    runs = [0]
    with sk.user("carol") as u, sk.session("c1") as c1:

        def watch() -> None:
            runs[0] += 1
            tick.value

        sk.effect(watch)
        with sk.session("c2") as c2:
            pass
    assert sk.app_scope().count("session") == 2
    u.dispose()
    assert u.disposed and c1.disposed and c2.disposed
    tick.value = 1
    assert runs[0] == 1
    assert sk.app_scope().count() == 0


def test_failing_scope_cleanup_goes_to_error_hook() -> None:
    errors: list[BaseException] = []
    old = sk.set_error_hook(lambda exc, where: errors.append(exc))
    try:
        log: list[str] = []
        with sk.session("s") as s:
            s.on_dispose(lambda: log.append("ok"))
            s.on_dispose(lambda: 1 / 0)
        s.dispose()
        assert log == ["ok"]
        assert len(errors) == 1
        assert isinstance(errors[0], ZeroDivisionError)
    finally:
        sk.set_error_hook(old)


async def test_aclose_awaits_async_cleanups() -> None:
    log: list[str] = []
    with sk.session("s") as s:

        async def async_cleanup() -> None:
            await asyncio.sleep(0.01)
            log.append("async done")

        s.on_dispose(async_cleanup)
        s.on_dispose(lambda: log.append("sync done"))
    await asyncio.wait_for(s.aclose(), 5)
    assert s.disposed
    assert sorted(log) == ["async done", "sync done"]


def test_dispose_without_a_loop_runs_async_cleanups() -> None:
    log: list[str] = []
    with sk.session("s") as s:

        async def async_cleanup() -> None:
            await asyncio.sleep(0)
            log.append("async done")

        s.on_dispose(async_cleanup)
    s.dispose()
    assert log == ["async done"]


# --------------------------------------------------------------------------
# idle expiry and the registry


def test_idle_sessions_expire_after_their_ttl() -> None:
    app = sk.app_scope()
    cleaned: list[str] = []
    with sk.session("short", ttl=30.0) as short:
        short.on_dispose(lambda: cleaned.append("short"))
    with sk.session("long", ttl=300.0) as long_:
        pass
    with sk.session("forever") as forever:
        pass
    assert short.ttl == 30.0
    assert forever.ttl is None
    now = time.monotonic()
    assert app.expire_idle(now=now + 10) == 0
    assert app.count("session") == 3
    assert app.expire_idle(now=now + 60) == 1
    assert short.disposed and not long_.disposed and not forever.disposed
    assert cleaned == ["short"]
    assert app.expire_idle(now=now + 10_000) == 1
    assert long_.disposed
    assert not forever.disposed
    assert [s.id for s in app.scopes("session")] == ["forever"]


def test_touch_and_use_keep_a_session_alive() -> None:
    app = sk.app_scope()
    with sk.session("busy", ttl=30.0) as s:
        pass
    t0 = time.monotonic()
    assert app.expire_idle(now=t0 + 20) == 0
    time.sleep(0.05)
    s.touch()
    t1 = time.monotonic()
    assert t1 > t0
    assert app.expire_idle(now=t0 + 30.03) == 0  # touched after t0: not idle for 30 s yet
    with s:  # entering also counts as use
        pass
    assert app.expire_idle(now=time.monotonic() + 29) == 0
    assert app.expire_idle(now=time.monotonic() + 31) == 1
    assert s.disposed


def test_expiring_a_user_expires_its_sessions() -> None:
    app = sk.app_scope()
    with sk.user("u", ttl=5.0) as u, sk.session("in-u") as s:
        pass
    assert app.expire_idle(now=time.monotonic() + 6) == 2
    assert u.disposed and s.disposed


def test_scopes_and_count() -> None:
    app = sk.app_scope()
    assert app.count() == 0
    assert app.scopes() == []
    with sk.user("alice"):
        with sk.session("a1"):
            pass
        with sk.session("a2"):
            with sk.request():
                assert app.count("request") == 1
                assert app.count() == 4
    with sk.session("anon"):
        pass
    assert app.count("user") == 1
    assert app.count("session") == 3
    assert app.count("request") == 0
    assert app.count() == 4
    assert sorted(s.id for s in app.scopes("session")) == ["a1", "a2", "anon"]
    assert [s.id for s in app.scopes("user")] == ["alice"]
    with sk.user("alice") as alice:
        assert alice.count("session") == 2
        assert sorted(s.id for s in alice.scopes()) == ["a1", "a2"]
    with sk.session("a1"):
        pass  # this "a1" is an anonymous session, not alice's
    assert app.count("session") == 4


# --------------------------------------------------------------------------
# the sk_app fixture isolates tests (these two run in either order)


def _uses_a_clean_app(sk_app: Any) -> None:
    assert sk.current_scope() is sk_app
    assert sk.app_scope() is sk_app
    assert SHARED.value == 0, "a value written by another test leaked into this one"
    assert sk_app.count() == 0, "a scope opened by another test leaked into this one"
    SHARED.value = 42
    with sk.session("leaky"):
        pass


def test_sk_app_isolation_first(sk_app: Any) -> None:
    _uses_a_clean_app(sk_app)


def test_sk_app_isolation_second(sk_app: Any) -> None:
    _uses_a_clean_app(sk_app)


def test_sk_app_is_a_fresh_app_scope(sk_app: Any) -> None:
    assert isinstance(sk_app, sk.Scope)
    assert sk_app.level == "app"
    assert not sk_app.disposed


# --------------------------------------------------------------------------
# nesting and unwinding (the token stack), scopes that never held anything


def test_nested_blocks_unwind_in_order_across_levels() -> None:
    app = sk.app_scope()
    with sk.user("u") as u:
        with sk.session("s") as s:
            with sk.request() as r:
                assert sk.current_scope() is r
                assert r.chain == (app, u, s, r)
                with s:  # re-entering an outer scope from inside
                    assert sk.current_scope() is s
                assert sk.current_scope() is r
            assert sk.current_scope() is s
            assert s.chain == (app, u, s, None)
        assert sk.current_scope() is u
    assert sk.current_scope() is app
    with sk.session("anon") as anon:
        assert anon.chain == (app, None, anon, None)


async def test_interleaved_tasks_each_unwind_their_own_blocks() -> None:
    app = sk.app_scope()
    both_inside = asyncio.Barrier(2) if hasattr(asyncio, "Barrier") else None
    order: list[str] = []

    async def visit(sid: str) -> None:
        with sk.session(sid) as s:
            if both_inside is not None:
                await both_inside.wait()
            await asyncio.sleep(0)
            with sk.request() as r:
                await asyncio.sleep(0)
                assert sk.current_scope() is r
            assert sk.current_scope() is s
            order.append(sid)
        assert sk.current_scope() is app

    await asyncio.gather(visit("a"), visit("b"))
    assert sorted(order) == ["a", "b"]
    assert sk.current_scope() is app


def test_a_scope_that_never_held_anything() -> None:
    with sk.session("empty") as s:
        pass
    assert s.children() == []
    assert s.scopes() == []
    assert s.count() == 0
    s.dispose()
    assert s.disposed
    assert sk.app_scope().count("session") == 0


def test_first_cleanup_effect_and_child_of_a_fresh_scope() -> None:
    ran: list[str] = []
    n = sk.atom(0, name="fresh-scope-n")
    with sk.session("fresh") as s:
        s.on_dispose(lambda: ran.append("cleanup"))
        stop = sk.effect(lambda: ran.append(f"effect {n.value}"))
        with sk.request() as r:
            assert s.children() == [r]
        assert s.children() == []  # the request was disposed and unlinked
    n.value = 1
    stop()
    n.value = 2  # stopped: no run
    with sk.session("fresh"):
        stop2 = sk.effect(lambda: ran.append(f"again {n.value}"))
    s.dispose()
    n.value = 3  # the scope's effects stopped with it
    assert ran == ["effect 0", "effect 1", "again 2", "cleanup"]
    del stop2
