"""StateMachine and AsyncStateMachine: the seed API, events, hooks, history, snapshots."""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

import statekit as sk
from statekit.exceptions import InvalidDefinition, TransitionNotAllowed, ValidationError
from statekit.machine import AsyncStateMachine, State, StateMachine, Transition

SEED_TRANSITIONS = {
    "draft": ["review", "archived"],
    "review": ["approved", "rejected", "draft"],
    "approved": ["published", "archived"],
    "rejected": ["draft", "archived"],
    "published": ["archived"],
    "archived": [],
}


@pytest.fixture
def errors() -> Any:
    caught: list[tuple[BaseException, str]] = []
    old = sk.set_error_hook(lambda exc, where: caught.append((exc, where)))
    yield caught
    sk.set_error_hook(old)


# -- the seed's API ---------------------------------------------------------------------


def test_seed_constructor_and_transitions() -> None:
    m = StateMachine(initial_state="draft", transitions=SEED_TRANSITIONS)
    assert m.current_state == "draft"
    assert m.transition("review") == "review"
    assert m.can_transition("approved")
    assert not m.can_transition("published")
    assert not m.can_transition("no-such-state")
    m.transition("approved")
    m.transition("published")
    m.transition("archived")
    assert m.is_final
    assert m.allowed_targets == []


def test_refusal_is_value_error_naming_state_target_and_allowed() -> None:
    m = StateMachine(initial_state="review", transitions=SEED_TRANSITIONS)
    with pytest.raises(ValueError) as info:
        m.transition("published")
    assert isinstance(info.value, TransitionNotAllowed)
    msg = str(info.value)
    assert "'review'" in msg and "'published'" in msg
    assert "'approved', 'rejected', 'draft'" in msg
    assert m.current_state == "review"


def test_refusal_from_final_state() -> None:
    m = StateMachine(initial_state="archived", transitions={"archived": []})
    with pytest.raises(TransitionNotAllowed, match=r"none \(final\)"):
        m.transition("draft")


def test_allowed_lists() -> None:
    m = StateMachine(initial_state="draft", transitions=SEED_TRANSITIONS)
    assert m.allowed_targets == ["review", "archived"]
    assert m.states == tuple(SEED_TRANSITIONS)
    assert m.initial_state == "draft"


# -- events, guards, payload --------------------------------------------------------------


def test_events_with_guard_seeing_payload() -> None:
    m = StateMachine(
        initial_state="locked",
        events={"unlock": {"locked": "closed"}, "open": {"closed": "open"}},
        guards={"unlock": lambda t: t.payload.get("code") == 1234},
    )
    with pytest.raises(TransitionNotAllowed, match="refused by"):
        m.send("unlock", code=1)
    assert m.current_state == "locked"
    assert not m.can_send("unlock", code=1)
    assert m.can_send("unlock", code=1234)
    assert m.send("unlock", code=1234) == "closed"
    assert m.allowed_events == ["open"]


def test_unknown_and_disallowed_events() -> None:
    m = StateMachine(initial_state="a", events={"go": {"a": "b"}, "back": {"b": "a"}})
    with pytest.raises(TransitionNotAllowed, match=r"unknown event 'fly'.*allowed events: 'go'"):
        m.send("fly")
    with pytest.raises(TransitionNotAllowed, match="event 'back' is not allowed in state 'a'"):
        m.send("back")


def test_first_passing_guard_wins() -> None:
    class Router(StateMachine[str]):
        start = State(initial=True)
        small = State(final=True)
        big = State(final=True)
        route = start.to(small, guard=lambda t: t.payload["n"] < 10) | start.to(big)

    assert Router().send("route", n=3) == "small"
    assert Router().route(n=30) == "big"


def test_unless_guard() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b, unless=lambda t: t.payload.get("blocked", False))

    m = M()
    with pytest.raises(TransitionNotAllowed, match="not "):
        m.go(blocked=True)
    assert m.go() == "b"


def test_method_guard_by_name_and_zero_arg_callables() -> None:
    class Door(StateMachine[str]):
        closed = State(initial=True)
        opened = State()
        open = closed.to(opened, guard="has_key")
        close = opened.to(closed, guard=lambda: True)

        def __init__(self, key: bool) -> None:
            self.key = key
            super().__init__()

        def has_key(self) -> bool:
            return self.key

    assert not Door(False).can_send("open")
    d = Door(True)
    assert d.open() == "opened"
    assert d.close() == "closed"


def test_raising_guard_propagates_not_false() -> None:
    def guard(t: Transition) -> bool:
        raise KeyError("oops")

    m = StateMachine(initial_state="a", events={"go": {"a": "b"}}, guards={"go": guard})
    with pytest.raises(KeyError):
        m.send("go")
    assert m.current_state == "a"


def test_transition_along_event_arrow_runs_its_guards() -> None:
    m = StateMachine(
        initial_state="a",
        events={"go": {"a": "b"}},
        guards={"go": lambda t: t.payload.get("ok", False)},
    )
    assert not m.can_transition("b")
    with pytest.raises(TransitionNotAllowed, match="refused"):
        m.transition("b")
    assert m.transition("b", ok=True) == "b"
    assert m.history[-1].event == "go"


# -- hooks --------------------------------------------------------------------------------


def recording_machine(log: list[str]) -> type[StateMachine[str]]:
    def rec(name: str) -> Callable[[StateMachine[str], Transition], None]:
        def hook(self: StateMachine[str], t: Transition) -> None:
            log.append(f"{name}@{self.current_state}")

        return hook

    class Flow(StateMachine[str]):
        idle = State(initial=True, on_exit=lambda t: log.append("state.on_exit"))
        busy = State(on_enter=lambda t: log.append("state.on_enter"))
        done = State(final=True)

        start = idle.to(
            busy,
            guard=lambda t: log.append("guard") is None,
            before=lambda t: log.append("transition.before"),
            on=lambda t: log.append("transition.on"),
            after=lambda t: log.append("transition.after"),
        )
        finish = busy.to(done)

        before_start = rec("before_start")
        on_exit_idle = rec("on_exit_idle")
        on_start = rec("on_start")
        on_enter_busy = rec("on_enter_busy")
        after_start = rec("after_start")

    return Flow


def test_hook_order_is_documented_order() -> None:
    log: list[str] = []
    m = recording_machine(log)()
    m.subscribe(lambda t: log.append(f"listener {t.source}->{t.target}"))
    m.send("start")
    assert log == [
        "guard",
        "transition.before",
        "before_start@idle",
        "state.on_exit",
        "on_exit_idle@idle",
        "transition.on",
        "on_start@idle",
        "state.on_enter",
        "on_enter_busy@busy",
        "transition.after",
        "after_start@busy",
        "listener idle->busy",
    ]


def test_initial_state_entry_hook_runs_at_construction() -> None:
    log: list[str] = []
    StateMachine(initial_state="a", transitions={"a": []}, on_enter={"a": lambda: log.append("in")})
    assert log == ["in"]


@pytest.mark.parametrize("stage", ["before", "exit", "on", "enter", "after"])
def test_failing_hook_rolls_back_and_reraises(stage: str) -> None:
    seen: list[Transition] = []

    def boom(t: Transition) -> None:
        raise RuntimeError(stage)

    kwargs: dict[str, Any] = {
        "before": {"go": boom} if stage == "before" else None,
        "after": {"go": boom} if stage == "after" else None,
        "on_exit": {"a": boom} if stage == "exit" else None,
        "on_enter": {"b": boom} if stage == "enter" else None,
    }
    if stage == "on":

        class M(StateMachine[str]):
            a = State(initial=True)
            b = State(final=True)
            go = a.to(b, on=boom)

        m: StateMachine[str] = M()
    else:
        m = StateMachine(initial_state="a", events={"go": {"a": "b"}}, **kwargs)
    m.subscribe(seen.append)
    with pytest.raises(RuntimeError, match=stage):
        m.send("go")
    assert m.current_state == "a"
    assert m.history == []
    assert seen == []


def test_send_from_hook_runs_after_current_move() -> None:
    log: list[str] = []

    class Chain(StateMachine[str]):
        a = State(initial=True)
        b = State()
        c = State(final=True)
        step1 = a.to(b)
        step2 = b.to(c)

        def on_enter_b(self, t: Transition) -> None:
            assert self.send("step2") == "b"  # queued: still in b
            log.append(f"entered b, state {self.current_state}")

        def after_step1(self) -> None:
            log.append("after step1")

        def on_enter_c(self) -> None:
            log.append("entered c")

    m = Chain()
    assert m.step1() == "c"
    assert log == ["entered b, state b", "after step1", "entered c"]
    assert [t.event for t in m.history] == ["step1", "step2"]


def test_failing_queued_event_propagates_and_keeps_first_move() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b)

        def on_enter_b(self) -> None:
            self.send("go")  # not allowed from b: fails after go committed

    m = M()
    with pytest.raises(TransitionNotAllowed):
        m.go()
    assert m.current_state == "b"


# -- listeners -------------------------------------------------------------------------


def test_listeners_run_outside_the_lock() -> None:
    m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": ["a"]})
    acquired: list[bool] = []

    def listener(t: Transition) -> None:
        # Another thread can take the machine's lock while we run.
        result: list[bool] = []

        def take() -> None:
            got = m._lock.acquire(timeout=2)
            if got:
                m._lock.release()
            result.append(got)

        th = threading.Thread(target=take)
        th.start()
        th.join()
        acquired.append(result[0])

    m.subscribe(listener)
    m.transition("b")
    assert acquired == [True]


def test_listener_errors_go_to_error_hook_and_others_run(errors: Any) -> None:
    m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
    seen: list[str] = []

    def bad(t: Transition) -> None:
        raise RuntimeError("listener failed")

    m.subscribe(bad)
    m.subscribe(lambda t: seen.append(t.target))
    assert m.transition("b") == "b"
    assert seen == ["b"]
    assert str(errors[0][0]) == "listener failed"
    assert "state machine" in errors[0][1]


def test_listener_may_send_and_sees_moves_in_order() -> None:
    m = StateMachine(initial_state=0, events={"inc": {0: 1, 1: 2, 2: 3}})
    seen: list[tuple[Any, Any]] = []

    def listener(t: Transition) -> None:
        seen.append((t.source, t.target))
        if t.target < 3:
            m.send("inc")

    m.subscribe(listener)
    m.send("inc")
    assert seen == [(0, 1), (1, 2), (2, 3)]


def test_unsubscribe() -> None:
    m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": ["a"]})
    seen: list[Any] = []
    off = m.subscribe(seen.append)
    m.transition("b")
    off()
    m.transition("a")
    assert len(seen) == 1


def test_threads_toggle_without_losing_moves() -> None:
    m = StateMachine(
        initial_state="off", events={"toggle": {"off": "on", "on": "off"}}, history=None
    )
    count = [0]
    m.subscribe(lambda t: count.__setitem__(0, count[0] + 1))

    def work() -> None:
        for _ in range(2_000):
            m.send("toggle")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(m.history) == 16_000
    assert count[0] == 16_000
    assert m.current_state == "off"
    # Every recorded move starts where the previous one ended.
    hist = m.history
    assert all(a.target == b.source for a, b in itertools.pairwise(hist))


# -- history, back --------------------------------------------------------------------


def test_bounded_history_previous_and_back() -> None:
    m = StateMachine(
        initial_state=0, transitions={0: [1], 1: [2], 2: [3], 3: [4], 4: []}, history=2
    )
    assert m.previous() is None
    for n in range(1, 5):
        m.transition(n)
    assert [(t.source, t.target) for t in m.history] == [(2, 3), (3, 4)]
    assert m.previous() == 3
    assert m.back() == 3
    assert m.back() == 2
    with pytest.raises(TransitionNotAllowed, match="no earlier state"):
        m.back()
    assert m.current_state == 2


def test_back_runs_exit_and_entry_hooks() -> None:
    log: list[str] = []
    m = StateMachine(
        initial_state="a",
        transitions={"a": ["b"], "b": []},
        on_enter={"a": lambda t: log.append(f"enter a from {t.source}")},
        on_exit={"b": lambda t: log.append("exit b")},
    )
    log.clear()
    m.transition("b")
    m.back()
    assert log == ["exit b", "enter a from b"]
    assert m.history == []


def test_history_zero_keeps_nothing() -> None:
    m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": []}, history=0)
    m.transition("b")
    assert m.history == [] and m.previous() is None
    with pytest.raises(ValueError):
        StateMachine(initial_state="a", transitions={"a": []}, history=-1)


# -- enum states ------------------------------------------------------------------------


class Light(enum.Enum):
    RED = "red"
    GREEN = "green"
    YELLOW = "yellow"


def test_enum_states_constructor_form() -> None:
    m = StateMachine(
        initial_state=Light.RED,
        transitions={
            Light.RED: [Light.GREEN],
            Light.GREEN: [Light.YELLOW],
            Light.YELLOW: [Light.RED],
        },
    )
    m.transition(Light.GREEN)
    assert m.current_state is Light.GREEN
    snap = m.snapshot()
    assert snap["state"] == "GREEN"
    json.dumps(snap)
    with pytest.raises(TransitionNotAllowed, match="'GREEN' to 'RED'"):
        m.transition(Light.RED)
    assert "GREEN" in m.to_mermaid()


def test_enum_states_class_syntax() -> None:
    class Signal(StateMachine[Light]):
        red = State(Light.RED, initial=True)
        green = State(Light.GREEN)
        yellow = State(Light.YELLOW)
        cycle = red.to(green) | green.to(yellow) | yellow.to(red)

    s = Signal()
    assert s.cycle() is Light.GREEN
    restored = Signal(snapshot=json.dumps(s.snapshot()))
    assert restored.current_state is Light.GREEN


# -- definition errors ---------------------------------------------------------------------


def _no_initial() -> None:
    class M(StateMachine[str]):
        a = State()
        b = State(final=True)
        go = a.to(b)


def _two_initial() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(initial=True, final=True)
        go = a.to(b)


def _unreachable() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        island = State(final=True)
        go = a.to(b)


def _ambiguous() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        c = State(final=True)
        go = a.to(b) | a.to(c)


def _shadowed() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        c = State(final=True)
        go = a.to(b) | a.to(c, guard=lambda t: True)


def _foreign_state() -> None:
    elsewhere = State("x")

    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b) | a.to(elsewhere, guard=lambda t: True)


def _final_with_exit() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b)
        again = b.to(a)


def _dead_end() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State()
        go = a.to(b)


def _hook_typo() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b)

        def on_enter_bb(self) -> None: ...


def _missing_guard_method() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b, guard="nope")


def _event_hides_api() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        send = a.to(b)


def _async_hook_in_sync() -> None:
    async def hook() -> None: ...

    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True, on_enter=hook)
        go = a.to(b)


def _same_state_ids() -> None:
    class E(enum.Enum):
        a = 1

    StateMachine(initial_state="a", transitions={"a": [E.a], E.a: []})


DEFINITION_ERRORS: list[tuple[str, Callable[[], Any], str]] = [
    ("no initial state", _no_initial, "no initial state"),
    ("two initial states", _two_initial, "more than one initial"),
    ("unreachable state", _unreachable, "'island' cannot be reached"),
    ("ambiguous unguarded", _ambiguous, "ambiguous"),
    ("unguarded shadows guarded", _shadowed, "ambiguous"),
    ("state of another class", _foreign_state, "not a state of this class"),
    ("final with exit", _final_with_exit, "final state 'b' has outgoing"),
    ("dead end not final", _dead_end, "'b' has no way out"),
    ("hook for no state", _hook_typo, "'on_enter_bb' names no state"),
    ("guard method missing", _missing_guard_method, "'nope' names no method"),
    ("event hides API", _event_hides_api, "would hide"),
    ("async hook in sync machine", _async_hook_in_sync, "AsyncStateMachine"),
    ("same state ids", _same_state_ids, "same name"),
    (
        "args: initial not a state",
        lambda: StateMachine(initial_state="x", transitions={"a": []}),
        "initial state 'x'",
    ),
    (
        "args: unknown target",
        lambda: StateMachine(initial_state="a", transitions={"a": ["b"]}),
        "not one of its states",
    ),
    (
        "args: unreachable",
        lambda: StateMachine(initial_state="a", transitions={"a": [], "b": []}),
        "cannot be reached",
    ),
    (
        "args: targets not a list",
        lambda: StateMachine(initial_state="a", transitions={"a": "b", "b": []}),
        "must be a list",
    ),
    ("args: nothing", lambda: StateMachine(initial_state="a"), "give transitions"),
    ("args: none at all", StateMachine, "needs initial_state"),
    (
        "args: guard for no event",
        lambda: StateMachine(initial_state="a", transitions={"a": []}, guards={"go": bool}),
        "not an event",
    ),
    (
        "args: hook for no state",
        lambda: StateMachine(initial_state="a", transitions={"a": []}, on_enter={"z": print}),
        "'z', which is not one of its states",
    ),
    (
        "args: string hook",
        lambda: StateMachine(initial_state="a", events={"go": {"a": "b"}}, guards={"go": "m"}),
        "has no methods",
    ),
    (
        "args: unhashable state",
        lambda: StateMachine(initial_state="a", events={"go": [("a", ["b"])]}),
        "not hashable",
    ),
]


@pytest.mark.parametrize(
    ("make", "message"),
    [pytest.param(make, msg, id=name) for name, make, msg in DEFINITION_ERRORS],
)
def test_invalid_definitions_raise_at_definition_time(
    make: Callable[[], Any], message: str
) -> None:
    with pytest.raises(InvalidDefinition, match=message):
        make()


def test_invalid_definition_is_type_error() -> None:
    with pytest.raises(TypeError):
        _no_initial()


def test_class_machine_refuses_constructor_definition() -> None:
    class M(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b)

    with pytest.raises(InvalidDefinition, match="declares its states"):
        M(initial_state="a")  # type: ignore[call-arg]


def test_subclass_inherits_and_extends_definition() -> None:
    class Base(StateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b)

    class Child(Base):
        def on_enter_b(self) -> None:
            self.entered = True

    c = Child()
    c.go()
    assert c.entered


# -- snapshot / restore ------------------------------------------------------------------------


class Order(StateMachine[str]):
    pending = State(initial=True)
    paid = State()
    packed = State()
    shipped = State()
    delivered = State(final=True)
    cancelled = State(final=True)

    pay = pending.to(paid, guard=lambda t: t.payload.get("amount", 0) > 0)
    pack = paid.to(packed)
    ship = packed.to(shipped)
    deliver = shipped.to(delivered)
    cancel = pending.to(cancelled) | paid.to(cancelled) | packed.to(cancelled)
    undo_pack = packed.to(paid)

    def __init__(self, **kwargs: Any) -> None:
        self.log: list[str] = []
        super().__init__(**kwargs)

    def on_enter_pending(self, t: Transition) -> None:
        self.log.append("enter pending")

    def on_enter_paid(self, t: Transition) -> None:
        self.log.append(f"enter paid via {t.event}")

    def on_enter_shipped(self) -> None:
        self.log.append("enter shipped")


def test_snapshot_restore_midway_continues_identically() -> None:
    first = Order()
    first.pay(amount=5)
    first.pack()
    first.undo_pack()
    first.pack()
    snap = json.loads(json.dumps(first.snapshot()))  # through real JSON

    second = Order(snapshot=snap)
    assert second.log == []  # no entry hook re-ran, not even the initial one
    assert second.current_state == first.current_state == "packed"
    assert second.history == first.history
    assert second.previous() == first.previous()

    first.log.clear()
    for m in (first, second):
        m.ship()
        m.deliver()
    assert first.log == second.log == ["enter shipped"]
    assert first.history == second.history
    assert first.snapshot() == second.snapshot()
    # back() works across the restore too.
    assert first.back() == second.back() == "shipped"


def test_restore_on_existing_machine_runs_no_hooks_or_listeners() -> None:
    src = Order()
    src.pay(amount=1)
    dst = Order()
    seen: list[Any] = []
    dst.subscribe(seen.append)
    dst.log.clear()
    dst.restore(src.snapshot())
    assert dst.current_state == "paid"
    assert dst.log == [] and seen == []


@pytest.mark.parametrize(
    "bad",
    [
        {"format": "nope"},
        {"format": "statekit.machine/1", "state": "mars"},
        {"format": "statekit.machine/1", "state": "paid", "history": [["pay", "pending"]]},
        {"format": "statekit.machine/1", "state": "paid", "history": "x"},
        "[1, 2]",
    ],
)
def test_restore_refuses_foreign_snapshots(bad: Any) -> None:
    m = Order()
    with pytest.raises(ValidationError):
        m.restore(bad)
    assert m.current_state == "pending"


# -- mermaid ---------------------------------------------------------------------------------


def test_to_mermaid_highlights_current_state() -> None:
    m = Order()
    m.pay(amount=1)
    text = m.to_mermaid()
    assert text.startswith("stateDiagram-v2\n")
    assert "    [*] --> pending" in text
    assert (
        "    pending --> paid : pay [Order.<lambda>]".replace("<", "\u2039").replace(">", "\u203a")
        in text
        or "pending --> paid : pay [" in text
    )
    assert "    delivered --> [*]" in text
    assert text.rstrip().endswith("class paid current")


def test_to_mermaid_sanitises_ids() -> None:
    m = StateMachine(initial_state="in review", transitions={"in review": ["3 done"], "3 done": []})
    text = m.to_mermaid()
    assert 'state "in review" as in_review' in text
    assert 'state "3 done" as s_3_done' in text
    assert "in_review --> s_3_done" in text


# -- the async twin --------------------------------------------------------------------------


class Counter(AsyncStateMachine[str]):
    """Each increment's hooks await between steps; interleaving would show in the log."""

    idle = State(initial=True)
    counting = State()
    inc = idle.to(counting) | counting.to(counting)
    stop = counting.to(idle)

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.count = 0
        super().__init__(history=None)

    async def before_inc(self, t: Transition) -> None:
        self.log.append(("before", t.payload["n"]))
        await asyncio.sleep(0)

    async def on_inc(self, t: Transition) -> None:
        await asyncio.sleep(0)
        self.count += 1
        self.log.append(("on", t.payload["n"]))

    async def after_inc(self, t: Transition) -> None:
        await asyncio.sleep(0)
        self.log.append(("after", t.payload["n"]))


async def test_async_100_concurrent_senders_run_to_completion() -> None:
    m = Counter()
    seen: list[int] = []
    m.subscribe(lambda t: seen.append(t.payload["n"]))

    async def sender(n: int) -> str:
        await asyncio.sleep(0)
        return await m.send("inc", n=n)

    results = await asyncio.gather(*(sender(n) for n in range(100)))
    assert results == ["counting"] * 100
    assert m.count == 100
    # Run-to-completion: each move's hooks are contiguous, never interleaved.
    for i in range(0, 300, 3):
        n = m.log[i][1]
        assert m.log[i : i + 3] == [("before", n), ("on", n), ("after", n)]
    order = [m.log[i][1] for i in range(0, 300, 3)]
    # Requests run in the order they were made (the senders started in order).
    assert order == list(range(100))
    assert seen == order
    assert len(m.history) == 100


async def test_async_guard_hooks_and_rollback() -> None:
    async def allow(t: Transition) -> bool:
        await asyncio.sleep(0)
        return bool(t.payload.get("ok"))

    async def fail(t: Transition) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("enter failed")

    m = AsyncStateMachine(
        initial_state="a",
        events={"go": {"a": "b"}, "crash": {"a": "c"}},
        guards={"go": allow},
        on_enter={"c": fail},
    )
    assert not await m.can_send("go")
    assert await m.can_send("go", ok=True)
    with pytest.raises(TransitionNotAllowed):
        await m.send("go")
    with pytest.raises(RuntimeError, match="enter failed"):
        await m.send("crash")
    assert m.current_state == "a" and m.history == []
    assert await m.send("go", ok=True) == "b"
    assert await m.back() == "a"
    assert await m.transition("b", ok=True) == "b"
    assert await m.can_transition("b") is False


async def test_async_unless_guard_is_awaited() -> None:
    async def blocked(t: Transition) -> bool:
        return bool(t.payload.get("blocked"))

    class M(AsyncStateMachine[str]):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b, unless=blocked)

    m = M()
    with pytest.raises(TransitionNotAllowed):
        await m.go(blocked=True)
    assert await m.go() == "b"


async def test_async_send_from_hook_runs_before_other_callers() -> None:
    order: list[str] = []

    class M(AsyncStateMachine[str]):
        a = State(initial=True)
        b = State()
        c = State()
        step = a.to(b) | b.to(c) | c.to(a)

        async def on_enter_b(self) -> None:
            await self.send("step")  # internal: queued, returns at once
            order.append("b entered")

        def on_enter_c(self) -> None:
            order.append("c entered")

        def on_enter_a(self) -> None:
            order.append("a entered")

    m = M()
    await m.start()
    order.clear()
    r1, r2 = await asyncio.gather(m.step(), m.step())
    assert order == ["b entered", "c entered", "a entered"]
    assert (r1, r2) == ("c", "a")


async def test_async_initial_entry_runs_once_before_first_event() -> None:
    log: list[str] = []
    m = AsyncStateMachine(
        initial_state="a",
        transitions={"a": ["b"], "b": []},
        on_enter={"a": lambda: log.append("a")},
    )
    assert log == []
    await m.transition("b")
    assert log == ["a"]
    assert await m.start() == "b"
    assert log == ["a"]


async def test_async_cancelled_processor_hands_queue_on() -> None:
    gate = asyncio.Event()

    class M(AsyncStateMachine[int]):
        s0 = State(0, initial=True)
        s1 = State(1)
        s2 = State(2)
        inc = s0.to(s1) | s1.to(s2) | s2.to(s0)

        async def on_enter_s1(self) -> None:
            await gate.wait()

    m = M()
    first = asyncio.create_task(m.inc())
    await asyncio.sleep(0.01)
    second = asyncio.create_task(m.inc())
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # The waiting request still runs (handed on to a new processor).
    gate.set()
    assert await asyncio.wait_for(second, 2) == 1
    # The interrupted move was rolled back: only the second one happened.
    assert [(t.source, t.target) for t in m.history] == [(0, 1)]


async def test_async_snapshot_restore() -> None:
    m = Counter()
    await m.inc(n=1)
    twin = Counter()
    twin.restore(m.snapshot())
    assert twin.current_state == "counting"
    assert await twin.stop() == "idle"
