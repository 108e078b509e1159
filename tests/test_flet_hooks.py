"""use_atom / use_store in @ft.component, rendered in real offline Flet sessions."""

from __future__ import annotations

from typing import Any

import pytest

ft = pytest.importorskip("flet")

import statekit as sk  # noqa: E402
import statekit.flet as skf  # noqa: E402
from flet_harness import OfflineSession, open_session, settle  # noqa: E402


def _texts(s: OfflineSession, prefix: str = "") -> list[str]:
    return [
        p.value for p in s.conn.props if isinstance(p.value, str) and p.value.startswith(prefix)
    ]


def _button(s: OfflineSession, label: str) -> Any:
    return next(
        c for c in s.session.index.values() if isinstance(c, ft.Button) and c.content == label
    )


def _live_effects(s: OfflineSession) -> int:
    fs = skf.lookup(s.page)
    assert fs is not None
    return len(fs.scope._effects)


async def test_use_atom_re_renders_and_its_setter_takes_values_and_functions() -> None:
    count = sk.atom(0, name="count", scope="session")

    @ft.component
    def Counter() -> Any:
        n, set_n = skf.use_atom(count)
        return ft.Column(
            [
                ft.Text(f"Count: {n}"),
                ft.Button("inc", on_click=lambda: set_n(lambda v: v + 1)),
                ft.Button("reset", on_click=lambda: set_n(0)),
            ]
        )

    s = await open_session(skf.app(lambda page: page.render(Counter)))
    assert _texts(s, "Count") == ["Count: 0"]
    await s.click(_button(s, "inc"))
    await s.click(_button(s, "inc"))
    assert s.run(lambda: count.value) == 2
    await s.click(_button(s, "reset"))
    assert _texts(s, "Count") == ["Count: 0", "Count: 1", "Count: 2", "Count: 0"]
    s.run(lambda: count.set(9))  # a change made outside the component re-renders it too
    await settle()
    assert _texts(s, "Count")[-1] == "Count: 9"
    assert s.errors() == []


async def test_use_store_follows_one_path() -> None:
    todos = sk.Store({"todo": [], "filter": "all"}, name="todos", scope="session")
    renders: list[int] = []

    @ft.component
    def Todos() -> Any:
        items, set_items = skf.use_store(todos, "todo")
        renders.append(len(items))
        return ft.Column(
            [
                ft.Text(f"{len(items)} to do"),
                ft.Button("add", on_click=lambda: set_items(lambda old: [*old, "milk"])),
            ]
        )

    s = await open_session(skf.app(lambda page: page.render(Todos)))
    await s.click(_button(s, "add"))
    assert s.run(lambda: todos.get("todo")) == ["milk"]
    assert _texts(s)[-1] == "1 to do"
    before = len(renders)
    s.run(lambda: todos.set("filter", "done"))  # another path: no re-render
    await settle()
    assert len(renders) == before


async def test_unmount_stops_the_subscription() -> None:
    count = sk.atom(0, name="count")
    shown = sk.atom(True, name="shown", scope="session")

    @ft.component
    def Child() -> Any:
        n, _ = skf.use_atom(count)
        return ft.Text(f"child {n}")

    @ft.component
    def Parent() -> Any:
        visible, set_visible = skf.use_atom(shown)
        return ft.Column(
            [
                *([Child()] if visible else []),
                ft.Button("hide", on_click=lambda: set_visible(False)),
            ]
        )

    s = await open_session(skf.app(lambda page: page.render(Parent)))
    with_child = _live_effects(s)
    await s.click(_button(s, "hide"))
    await settle()
    assert _live_effects(s) == with_child - 1  # the child's subscription stopped
    s.clear()
    s.run(lambda: count.set(5))
    await settle()
    assert _texts(s, "child") == []


async def test_session_scoped_hook_values_are_per_session() -> None:
    name = sk.atom("guest", name="name", scope="session")

    @ft.component
    def Hello() -> Any:
        who, set_who = skf.use_atom(name)
        return ft.Column(
            [ft.Text(f"Hello {who}"), ft.Button("me", on_click=lambda: set_who("ann"))]
        )

    a = await open_session(skf.app(lambda page: page.render(Hello)))
    b = await open_session(skf.app(lambda page: page.render(Hello)))
    await a.click(_button(a, "me"))
    assert _texts(a, "Hello")[-1] == "Hello ann" and _texts(b, "Hello") == ["Hello guest"]


async def test_a_change_between_render_and_subscription_is_not_missed() -> None:
    count = sk.atom(0, name="count")

    @ft.component
    def Shows() -> Any:
        n, _ = skf.use_atom(count)
        return ft.Text(f"n={n}")

    def main(page: ft.Page) -> None:
        skf.session(page)
        page.render(Shows)
        count.value = 1  # after the render, before Flet runs the effect setup

    s = await open_session(main)
    await settle()
    assert _texts(s, "n=")[-1] == "n=1"


async def test_hook_errors_are_clear() -> None:
    double = sk.computed(lambda: 2, name="double")
    caught: list[BaseException] = []

    @ft.component
    def ReadOnly() -> Any:
        value, set_value = skf.use_atom(double)

        def click() -> None:
            try:
                set_value(3)
            except sk.InvalidDefinition as exc:
                caught.append(exc)

        return ft.Column([ft.Text(f"v={value}"), ft.Button("set", on_click=click)])

    s = await open_session(skf.app(lambda page: page.render(ReadOnly)))
    await s.click(_button(s, "set"))
    assert caught and "double" in str(caught[0]) and "read-only" in str(caught[0])
    with pytest.raises(sk.ScopeError, match=r"inside an @ft\.component"):
        skf.use_atom(double)
