"""statekit.compat.flet_asp: flet-asp's API without flet-asp's defects (ANCHORS §1).

Each ``test_defect_*`` names one defect measured in flet-asp 0.3.1 and shows
the façade does not have it. The seed's own examples run in test_flet_seeds.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import pytest

ft = pytest.importorskip("flet")

import statekit as sk  # noqa: E402
import statekit.compat.flet_asp as fa  # noqa: E402
import statekit.flet as skf  # noqa: E402
from flet_harness import collect, open_session, settle  # noqa: E402


@pytest.fixture
def errors() -> Any:
    seen: list[tuple[BaseException, str]] = []
    old = sk.set_error_hook(lambda exc, where: seen.append((exc, where)))
    yield seen
    sk.set_error_hook(old)


def test_imports_and_runs_on_flet_1() -> None:
    # flet-asp 0.3.1 fails here: "No module named 'flet.core'".
    assert ft.__version__.startswith("1.") or ft.__version__ >= "1"
    state = fa.StateManager()
    state.atom("n", 1)
    assert state.get("n") == 1


def test_defect_unknown_keys_are_not_created_by_get_or_set() -> None:
    state = fa.StateManager(name="prefs")
    with pytest.raises(KeyError, match="'prefs' has no atom or selector 'missing'"):
        state.get("missing")
    with pytest.raises(KeyError, match="missing"):
        state.set("missing", 1)
    assert not state.has("missing") and state.keys() == []
    with pytest.raises(sk.InvalidDefinition, match="non-empty str"):
        state.atom("", 0)


def test_defect_reset_restores_the_default_not_none() -> None:
    state = fa.StateManager()
    state.atom("theme", "light")
    state.set("theme", "dark")
    state.reset("theme")
    assert state.get("theme") == "light"
    state.reset("theme", "blue")  # an explicit value becomes the new default
    state.set("theme", "red")
    state.reset("theme")
    assert state.get("theme") == "blue"
    state.add_selector("upper", lambda get: get("theme").upper())
    with pytest.raises(sk.InvalidDefinition, match="'upper' is a selector"):
        state.reset("upper")
    with pytest.raises(sk.InvalidDefinition, match="'upper' is a selector"):
        state.set("upper", "X")
    assert state.get("theme") == "blue"  # refused operations changed nothing


def test_defect_selector_dependencies_follow_a_flag() -> None:
    state = fa.StateManager()
    for key, value in (("flag", True), ("a", "A"), ("b", "B")):
        state.atom(key, value)
    runs: list[str] = []

    @state.selector("pick")
    def pick(get: Any) -> str:
        value = get("a") if get("flag") else get("b")
        runs.append(value)
        return value

    assert state.get("pick") == "A"
    state.set("flag", False)
    assert state.get("pick") == "B"
    state.set("b", "B2")  # flet-asp stays stale here
    assert state.get("pick") == "B2"
    before = len(runs)
    state.set("a", "A2")  # no longer a dependency: no recomputation
    assert state.get("pick") == "B2" and len(runs) == before


def test_defect_in_place_list_mutation_then_set_updates_selectors() -> None:
    state = fa.StateManager()
    state.atom("items", [1, 2])
    state.add_selector("total", lambda get: sum(get("items")))
    items = state.get("items")
    items.append(3)  # a mutable copy: statekit's own value is untouched
    assert state.get("total") == 3
    state.set("items", items)
    assert state.get("total") == 6


def test_defect_no_update_is_dropped() -> None:
    state = fa.StateManager()
    state.atom("n", 0)
    state.atom("clamped", 0)
    state.add_selector("double", lambda get: get("n") * 2)
    # A listener that writes back (flet-asp's non-blocking lock drops this).
    state.listen("clamped", lambda v: state.set("clamped", 10) if v > 10 else None)
    state.set("clamped", 50)
    assert state.get("clamped") == 10
    # Threads: 16 x 2,000 atomic updates, selectors always consistent.
    app = sk.app_scope()

    def bump() -> None:
        for _ in range(2000):
            state.update("n", lambda v: v + 1)

    threads = [threading.Thread(target=app.run, args=(bump,)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.get("n") == 32000 and state.get("double") == 64000


async def test_defect_async_selector_results_land_in_order() -> None:
    state = fa.StateManager()
    state.atom("uid", 1)
    delays = {1: 0.05, 2: 0.08, 3: 0.0}
    seen: list[str] = []

    @state.selector("user")
    async def user(get: Any) -> str:
        uid = get("uid")
        await asyncio.sleep(delays[uid])
        return f"user {uid}"

    state.listen("user", seen.append)
    assert await state.wait("user") == "user 1"
    state.set("uid", 2)
    state.set("uid", 3)
    await asyncio.sleep(0.15)
    assert state.get("user") == "user 3"
    assert "user 2" not in seen  # flet-asp ends showing user 2


async def test_defect_async_selector_errors_are_reported(errors: Any) -> None:
    state = fa.StateManager()
    state.atom("uid", 1)

    @state.selector("user")
    async def user(get: Any) -> str:
        uid = get("uid")
        await asyncio.sleep(0)
        if uid == 2:
            raise LookupError("no user 2")
        return f"user {uid}"

    assert await state.wait("user") == "user 1"
    state.set("uid", 2)
    with pytest.raises(LookupError):
        await state.wait("user")
    assert isinstance(state.error("user"), LookupError)
    assert state.get("user") == "user 1"  # the last good value stays
    assert any(isinstance(e, LookupError) and "'user'" in where for e, where in errors)


def test_defect_a_raising_listener_does_not_stop_the_others(errors: Any) -> None:
    state = fa.StateManager()
    state.atom("n", 0)
    seen: list[int] = []

    def broken(v: int) -> None:
        raise RuntimeError("listener bug")

    state.listen("n", broken)
    state.listen("n", seen.append)
    state.set("n", 1)
    assert seen == [1] and state.get("n") == 1
    assert any(isinstance(e, RuntimeError) for e, _ in errors)


def test_defect_listeners_are_released_by_unlisten_and_delete() -> None:
    state = fa.StateManager()
    state.atom("n", 0)
    seen: list[int] = []

    class Listener:
        def __call__(self, v: int) -> None:
            seen.append(v)

    listener = Listener()
    ref = weakref.ref(listener)
    state.listen("n", listener)
    state.listen("n", listener)  # the same callback once
    state.set("n", 1)
    assert seen == [1]
    state.unlisten("n", listener)
    state.set("n", 2)
    assert seen == [1]
    del listener
    collect()
    assert ref() is None  # really released


def test_defect_delete_selector_stops_it_recomputing() -> None:
    state = fa.StateManager()
    state.atom("n", 1)
    runs: list[int] = []
    state.add_selector("double", lambda get: runs.append(1) or get("n") * 2)
    state.listen("double", lambda v: None)
    assert state.get("double") == 2
    state.delete("double")
    before = len(runs)
    for i in range(5):
        state.set("n", i)
    assert len(runs) == before and not state.has("double")
    with pytest.raises(KeyError):
        state.get("double")


async def test_defect_unbind_really_unbinds_and_controls_are_held_weakly() -> None:
    label, other = ft.Text(), ft.Text()
    s = await open_session(lambda page: page.add(label, other))
    state = s.run(lambda: fa.get_state_manager(s.page))
    s.run(lambda: state.atom("n", 0))
    s.run(lambda: state.bind("n", label))
    s.run(lambda: state.bind("n", other))
    assert state.unbind("n", label) == 1
    s.run(lambda: state.set("n", 5))
    await settle()
    assert label.value == "0" and other.value == "5"
    assert skf.bindings(label) == []
    # a bound control that goes away is not kept alive by the binding
    temp = ft.Text()
    s.run(lambda t=temp: state.bind("n", t))
    ref = weakref.ref(temp)
    del temp
    collect()
    assert ref() is None


def test_defect_atom_with_a_lambda_is_a_computed() -> None:
    state = fa.StateManager()
    state.atom("count", 2)
    state.atom("double", lambda: state.get("count") * 2)  # flet-asp stores the lambda
    assert state.get("double") == 4
    state.set("count", 5)
    assert state.get("double") == 10
    state.atom("triple", lambda get: get("count") * 3)  # selector style
    assert state.get("triple") == 15


# ---------------------------------------------------------------- the rest of the API


async def test_page_managers_are_per_session_and_freed_on_close() -> None:
    labels: dict[str, Any] = {}

    def main(page: ft.Page) -> None:
        fa.get_state_manager(page)
        page.state.atom("count", 0)
        label = ft.Text()
        labels[page.session.id] = label
        page.add(
            label, ft.Button("+", on_click=lambda: page.state.update("count", lambda n: n + 1))
        )
        page.state.bind("count", label)

    a = await open_session(main)
    b = await open_session(main)
    assert fa.get_state_manager(a.page) is a.page.state  # one per page
    plus = next(c for c in a.session.index.values() if isinstance(c, ft.Button))
    await a.click(plus)
    await a.click(plus)
    assert a.page.state.get("count") == 2 and b.page.state.get("count") == 0
    assert a.last(labels[a.id]) == "2" and b.sent(labels[b.id]) == ["0"]
    manager = weakref.ref(a.page.state)
    scope = skf.lookup(a.page).scope  # type: ignore[union-attr]
    await a.close()
    assert scope.disposed
    del a, plus  # the test's own references to the page's controls
    labels.clear()
    collect()
    assert manager() is None


async def test_listeners_of_a_page_manager_run_in_its_session() -> None:
    where: list[Any] = []

    def main(page: ft.Page) -> None:
        fa.get_state_manager(page)
        page.state.atom("n", 0)
        page.state.listen("n", lambda v: where.append((v, sk.current_scope())))

    s = await open_session(main)
    app = sk.app_scope()
    thread = threading.Thread(target=app.run, args=(lambda: s.page.state.set("n", 1),))
    thread.start()
    thread.join()
    await settle()
    assert where == [(1, skf.lookup(s.page).scope)]  # type: ignore[union-attr]


def test_actions_sync_async_and_decorated() -> None:
    state = fa.StateManager()
    state.atom("n", 1)

    @state.action
    def add(get: Any, set_value: Any, by: int) -> int:
        set_value("n", get("n") + by)
        return get("n")

    assert add(2) == 3
    bump = fa.Action(lambda get, set_value, args: set_value("n", get("n") * args))
    bump.run(state, 10)
    assert state.get("n") == 30

    async def slow(get: Any, set_value: Any, args: Any) -> str:
        await asyncio.sleep(0)
        set_value("n", 0)
        return "done"

    assert asyncio.run(fa.Action(slow).run_async(state)) == "done"
    assert state.get("n") == 0


def test_invalidate_clear_and_handles() -> None:
    state = fa.StateManager()
    n = state.atom("n", 1)
    runs: list[int] = []
    state.add_selector("s", lambda get: runs.append(1) or get("n"))
    assert state.get("s") == 1 and len(runs) == 1
    state.invalidate("s")
    assert state.get("s") == 1 and len(runs) == 2
    n.value = 4
    assert isinstance(n, fa.Atom) and state.get("s") == 4
    assert isinstance(state.atom("s"), fa.Selector)
    with pytest.raises(sk.InvalidDefinition, match="already an atom"):
        state.add_selector("n", lambda get: 0)
    state.clear()
    assert state.keys() == []
    with pytest.raises(KeyError):
        state.get("n")


async def test_actions_are_statekit_actions_with_reactive_status() -> None:
    state = fa.StateManager()
    state.atom("user", None)
    gate = asyncio.Event()

    async def login(get: Any, set_value: Any, params: Any) -> str:
        await gate.wait()
        if params["password"] != "123":
            raise PermissionError("bad password")
        set_value("user", params["email"])
        return "ok"

    act = fa.Action(login)
    seen: list[bool] = []
    stop = sk.effect(lambda: seen.append(act.pending))
    call = asyncio.ensure_future(act.run_async(state, {"email": "a@b.c", "password": "123"}))
    await asyncio.sleep(0)
    assert act.pending is True
    gate.set()
    assert await call == "ok"
    assert act.pending is False and act.result == "ok" and state.get("user") == "a@b.c"
    assert seen[0] is False and True in seen and seen[-1] is False
    with pytest.raises(PermissionError):
        await act.run_async(state, {"email": "x", "password": "no"})
    assert isinstance(act.error, PermissionError) and state.get("user") == "a@b.c"
    stop()
