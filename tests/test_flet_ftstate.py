"""statekit.compat.ftstate: the seed's FtState on statekit, in real offline Flet sessions."""

from __future__ import annotations

import weakref
from typing import Any

import pytest

ft = pytest.importorskip("flet")

import statekit as sk  # noqa: E402
import statekit.flet as skf  # noqa: E402
from flet_harness import OfflineSession, collect, open_session  # noqa: E402
from statekit.compat.ftstate import FtState, StateRegistry  # noqa: E402


def _texts(s: OfflineSession, prefix: str) -> list[str]:
    return [
        p.value for p in s.conn.props if isinstance(p.value, str) and p.value.startswith(prefix)
    ]


def _button(s: OfflineSession, text: str) -> Any:
    return next(
        c for c in s.session.index.values() if isinstance(c, ft.Button) and c.content == text
    )


@ft.observable
class Observed(FtState):
    count: int = 0


class Plain(FtState):
    count: int = 0
    tags: list[str] = []


def test_errors_are_worded_as_the_seed_words_them() -> None:
    with pytest.raises(ValueError) as used:
        Plain.use_state()
    assert str(used.value) == (
        "State Plain not registered. Did you call State.initialize() in your root component?"
    )
    with pytest.raises(RuntimeError) as got:
        Plain.get_state()
    assert str(got.value) == (
        "State Plain not initialized. "
        "Make sure State.initialize() was called in your root component."
    )
    with pytest.raises(RuntimeError, match="must run in a Flet session"):
        FtState.initialize()


def test_classes_register_themselves_and_observable_changes_nothing() -> None:
    assert Observed in StateRegistry._registered_state_classes
    assert Plain in StateRegistry._registered_state_classes
    assert FtState not in StateRegistry._registered_state_classes
    assert Observed.model_fields["count"].default == 0  # Flet did not rebuild the model
    with sk.session("s"):
        made = FtState.initialize()
        assert made["Observed"] is Observed.get_state() and made["Plain"] is Plain.get_state()
        state = Plain.get_state()
        with pytest.raises(sk.ValidationError, match="count"):
            state.count = "many"  # validate_assignment, as the seed's model_config says
        assert state.count == 0
        state.extra_note = "allowed"  # extra="allow"
        assert state.extra_note == "allowed"


@pytest.mark.parametrize("kind", [Observed, Plain], ids=["with ft.observable", "without"])
async def test_use_state_re_renders_and_sessions_are_isolated(kind: type[FtState]) -> None:
    @ft.component
    def Counter() -> Any:
        state = kind.use_state()
        return ft.Column(
            [
                ft.Text(f"Count: {state.count}"),
                ft.Button("+", on_click=lambda: state.update("count", lambda n: n + 1)),
            ]
        )

    def main(page: ft.Page) -> None:
        FtState.initialize()  # plain ft main: FtState attaches the session itself
        page.render(Counter)

    a = await open_session(main)
    b = await open_session(main)
    await a.click(_button(a, "+"))
    await a.click(_button(a, "+"))
    assert _texts(a, "Count") == ["Count: 0", "Count: 1", "Count: 2"]
    assert _texts(b, "Count") == ["Count: 0"]
    assert a.errors() == [] and b.errors() == []


async def test_flets_own_use_state_on_an_ftstate_re_renders() -> None:
    # The seed's StateRegistry called ft.use_state(instance): FtState is an
    # ft.Observable, so Flet's own hook subscribes and re-renders.
    @ft.component
    def Counter() -> Any:
        state, _ = ft.use_state(Plain.get_state())
        return ft.Column(
            [
                ft.Text(f"Tags: {len(state.tags)}"),
                ft.Button("tag", on_click=lambda: setattr(state, "tags", [*state.tags, "x"])),
            ]
        )

    def main(page: ft.Page) -> None:
        FtState.initialize()
        page.render(Counter)

    s = await open_session(main)
    await s.click(_button(s, "tag"))
    assert _texts(s, "Tags") == ["Tags: 0", "Tags: 1"]


async def test_closing_the_session_frees_its_states() -> None:
    def main(page: ft.Page) -> None:
        FtState.initialize()

    s = await open_session(main)
    state = weakref.ref(s.run(Plain.get_state))
    scope = skf.lookup(s.page).scope  # type: ignore[union-attr]
    await s.close()
    assert scope.disposed
    del s
    collect()
    assert state() is None
