"""Each Flet session is a statekit session scope; nothing crosses between sessions."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import pytest

ft = pytest.importorskip("flet")

import statekit as sk  # noqa: E402
import statekit.flet as skf  # noqa: E402
from flet_harness import OfflineSession, collect, open_session, settle  # noqa: E402

count = sk.atom(0, name="count")  # app-wide: both sessions show it
clicks = sk.atom(0, name="clicks", scope="session")  # one per session


def _buttons(s: OfflineSession) -> list[Any]:
    return [c for c in s.session.index.values() if isinstance(c, ft.Button)]


def _ids(s: OfflineSession) -> set[int]:
    return set(s.session.index.keys())


def _foreign_patches(s: OfflineSession, other: OfflineSession) -> list[Any]:
    """Values sent on ``s``'s connection for controls that belong to ``other``."""
    theirs = {id(c) for c in other.session.index.values()}
    mine = {c._i for c in s.session.index.values() if id(c) not in theirs}
    return [p for p in s.conn.props if p.control_id not in mine]


@skf.app
def clicks_main(page: ft.Page) -> None:
    label = ft.Text(data="clicks")
    page.add(label, ft.Button("+1", on_click=lambda: clicks.update(lambda n: n + 1)))
    skf.bind(clicks, label)


async def test_session_scoped_values_are_per_flet_session() -> None:
    a = await open_session(clicks_main)
    b = await open_session(clicks_main)
    await a.click(_buttons(a)[0])
    await a.click(_buttons(a)[0])
    await b.click(_buttons(b)[0])
    assert a.run(lambda: clicks.value) == 2 and b.run(lambda: clicks.value) == 1
    label_a = next(c for c in a.session.index.values() if c.data == "clicks")
    label_b = next(c for c in b.session.index.values() if c.data == "clicks")
    assert a.sent(label_a) == ["0", "1", "2"] and b.sent(label_b) == ["0", "1"]
    assert a.run(sk.current_scope).id == a.id  # the scope is named after the Flet session


async def test_main_handlers_and_components_all_see_the_session_scope() -> None:
    seen: dict[str, Any] = {}

    @ft.component
    def Probe() -> Any:
        seen["component"] = sk.current_scope()
        return ft.Text("probe")

    async def on_click(e: Any) -> None:
        seen["handler"] = sk.current_scope()

    @skf.app
    async def main(page: ft.Page) -> None:
        seen["main"] = sk.current_scope()
        page.render(lambda: ft.Column([Probe(), ft.Button("go", on_click=on_click)]))

    s = await open_session(main)
    await s.click(_buttons(s)[0])
    scope = skf.lookup(s.page).scope  # type: ignore[union-attr]
    assert seen == {"main": scope, "component": scope, "handler": scope}
    assert scope.level == "session" and scope.parent is sk.app_scope()


async def test_plain_main_with_session_call_and_generator_main() -> None:
    def plain(page: ft.Page) -> None:
        skf.session(page)
        clicks.value = 7

    @skf.app
    def gen(page: ft.Page) -> Any:
        clicks.value = 1
        yield
        clicks.value = 2

    s1 = await open_session(plain)
    s2 = await open_session(gen)
    assert s1.run(lambda: clicks.value) == 7 and s2.run(lambda: clicks.value) == 2
    assert skf.app(gen) is gen  # wrapping twice is a no-op


async def test_sessions_opened_under_a_user_hang_under_it() -> None:
    with sk.user("alice") as alice:
        s = await open_session(clicks_main)
    assert skf.lookup(s.page).scope.parent is alice  # type: ignore[union-attr]


# ---------------------------------------------------------------- the cross-session trap


@ft.component
def NaiveCounter() -> Any:
    """What the ANCHORS trap is about: a subscription calling a Flet setter directly."""
    n, set_n = ft.use_state(count.peek())
    ft.use_effect(lambda: count.subscribe(set_n), [])
    return ft.Column(
        [ft.Text(f"naive {n}"), ft.Button("+", on_click=lambda: count.update(lambda v: v + 1))]
    )


@ft.component
def SafeCounter() -> Any:
    n, set_n = skf.use_atom(count)
    return ft.Column(
        [ft.Text(f"safe {n}"), ft.Button("+", on_click=lambda: set_n(lambda v: v + 1))]
    )


def _texts(s: OfflineSession, prefix: str) -> list[str]:
    return [
        p.value for p in s.conn.props if isinstance(p.value, str) and p.value.startswith(prefix)
    ]


async def test_the_trap_exists_with_a_naive_setter() -> None:
    # The trap, shown with plain Flet: session B's click updates the shared
    # atom, A's setter runs while B's page is current, and A never hears of it.
    a = await open_session(lambda page: page.render(NaiveCounter))
    b = await open_session(lambda page: page.render(NaiveCounter))
    a.clear()
    b.clear()
    await b.click(_buttons(b)[0])
    await settle()
    assert _texts(b, "naive") == ["naive 1"]
    assert _texts(a, "naive") == []  # A's component was scheduled on B's session: lost


async def test_use_atom_delivers_into_the_right_session() -> None:
    a = await open_session(skf.app(lambda page: page.render(SafeCounter)))
    b = await open_session(skf.app(lambda page: page.render(SafeCounter)))
    a.clear()
    b.clear()
    await b.click(_buttons(b)[0])
    await settle()
    assert _texts(b, "safe") == ["safe 1"]
    assert _texts(a, "safe") == ["safe 1"]  # A re-rendered, on A's own connection
    assert _foreign_patches(a, b) == [] and _foreign_patches(b, a) == []
    assert a.errors() == [] and b.errors() == []


async def test_bindings_of_two_sessions_get_only_their_own_patches() -> None:
    labels: dict[str, Any] = {}

    @skf.app
    def main(page: ft.Page) -> None:
        own, shared = ft.Text(), ft.Text()
        labels[page.session.id] = (own, shared)
        page.add(own, shared, ft.Button("+", on_click=lambda: clicks.update(lambda n: n + 1)))
        skf.bind(clicks, own)
        skf.bind(count, shared)

    a = await open_session(main)
    b = await open_session(main)
    a.clear()
    b.clear()
    await a.click(_buttons(a)[0])  # a session value: only A changes
    assert b.conn.props == []
    a.run(lambda: count.set(5))  # an app value set in A's code: both show it
    await settle()
    own_b, shared_b = labels[b.id]
    assert b.sent(shared_b) == ["5"] and b.sent(own_b) == []
    assert _foreign_patches(a, b) == [] and _foreign_patches(b, a) == []


async def test_updates_from_threads_reach_every_session_on_its_loop() -> None:
    @ft.component
    def Shows() -> Any:
        n, _ = skf.use_atom(count)
        return ft.Text(f"count {n}")

    a = await open_session(skf.app(lambda page: page.render(Shows)))
    b = await open_session(skf.app(lambda page: page.render(Shows)))
    app = sk.app_scope()
    thread = threading.Thread(target=app.run, args=(lambda: count.set(42),))
    thread.start()
    thread.join()
    await asyncio.sleep(0.01)
    await settle()
    assert _texts(a, "count")[-1] == "count 42" and _texts(b, "count")[-1] == "count 42"
    assert a.errors() == [] and b.errors() == []


# ---------------------------------------------------------------- closing


async def test_closing_a_session_frees_everything() -> None:
    closed_with: list[int] = []

    @ft.component
    def Shows() -> Any:
        n, _ = skf.use_atom(count)
        return ft.Text(f"count {n}")

    @skf.app
    def main(page: ft.Page) -> None:
        label = ft.Text()
        page.add(label)
        skf.bind(count, label)
        skf.bind(clicks, ft.Text())
        sk.effect(lambda: clicks.value)
        # The user's own on_close, set after statekit attached: it still runs,
        # and it still sees the session's state.
        page.on_close = lambda e: closed_with.append(clicks.value)

    s = await open_session(main)
    other = await open_session(skf.app(lambda page: page.render(Shows)))
    fs = skf.lookup(s.page)
    assert fs is not None
    scope = fs.scope
    app = sk.app_scope()
    assert app.count("session") == 2
    s.run(lambda: clicks.set(3))

    refs = [weakref.ref(x) for x in (s.session, s.page, fs, *s.session.index.values())]
    other_fs = skf.lookup(other.page)
    await s.close()
    await other.close()
    assert closed_with == [3]
    assert scope.disposed and fs.closed and other_fs.closed  # type: ignore[union-attr]
    assert app.count("session") == 0
    count.value = 100  # nothing of the closed sessions runs any more
    await settle()
    del fs, other_fs, scope, s, other
    collect()
    assert [r for r in refs if r() is not None] == []


async def test_a_dropped_session_is_collected_even_without_close() -> None:
    s = await open_session(clicks_main)
    app = sk.app_scope()
    assert app.count("session") == 1
    ref = weakref.ref(s.session)
    del s
    collect()
    await settle()
    assert ref() is None
    assert app.count("session") == 0  # its scope was disposed when it was collected
