"""Hypothesis: random interleavings of calls, completions and cancellations.

Each policy is checked against a small reference model after every step:
which bodies started, how each call ended, the status counters, ``.result``
and ``.error``. The bodies wait on one gate each, so the test decides the
order in which calls finish.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import statekit as sk

# An operation: ("call",), ("finish", n, ok), ("cancel_one", n), ("cancel_all",); ``n``
# picks among the calls made so far (modulo their number), so most ops hit a call.
_call = st.just(("call",))
_finish = st.tuples(st.just("finish"), st.integers(0, 7), st.booleans())
ops_strategy = st.lists(
    st.one_of(
        _call,
        _call,
        _finish,
        _finish,
        _finish,
        st.tuples(st.just("cancel_one"), st.integers(0, 7)),
        st.just(("cancel_all",)),
    ),
    max_size=24,
)


@dataclass
class Model:
    """What the policy says must have happened."""

    policy: str
    state: list[str] = field(default_factory=list)  # per call: waiting/running/...
    started: list[int] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    landed: int = -1
    holder: int | None = None  # queue: the call holding the turn

    def live(self) -> list[int]:
        return [i for i, s in enumerate(self.state) if s == "running"]

    def waiting(self) -> list[int]:
        return [i for i, s in enumerate(self.state) if s == "waiting"]

    def start(self, i: int) -> None:
        self.state[i] = "running"
        self.started.append(i)
        if self.policy == "queue":
            self.holder = i

    def call(self) -> None:
        i = len(self.state)
        self.state.append("new")
        if self.policy == "drop" and self.live():
            self.state[i] = "dropped"
            return
        if self.policy == "latest":
            for j in self.live():
                self.state[j] = "cancelled"
        if self.policy == "queue" and self.holder is not None:
            self.state[i] = "waiting"
            return
        self.start(i)

    def release_turn(self, i: int) -> None:
        if self.policy == "queue" and self.holder == i:
            self.holder = None
            waiting = self.waiting()
            if waiting:
                self.start(waiting[0])

    def finish(self, i: int, ok: bool) -> None:
        if i >= len(self.state) or self.state[i] != "running":
            return
        self.state[i] = "ok" if ok else "failed"
        if i > self.landed:
            self.landed = i
            if ok:
                self.result, self.error = i, None
            else:
                self.error = f"fail {i}"
        self.release_turn(i)

    def cancel(self, indices: list[int]) -> None:
        """Cancel these calls together (as ``cancel()`` does), then let them unwind."""
        for i in indices:
            if i < len(self.state) and self.state[i] in ("running", "waiting"):
                self.state[i] = "cancelled"
        # The body's cleanup has no await: the turn is released as soon as
        # the cancellation is delivered (the test lets the loop run).
        for i in indices:
            if i < len(self.state) and self.state[i] == "cancelled":
                self.release_turn(i)


async def scenario(policy: str, ops: list[tuple[Any, ...]]) -> None:
    gates: list[asyncio.Future[bool]] = []
    started: list[int] = []
    loop = asyncio.get_running_loop()

    @sk.action(policy=policy)  # type: ignore[arg-type]
    async def job(i: int) -> int:
        started.append(i)
        if not await gates[i]:
            raise ValueError(f"fail {i}")
        return i

    model = Model(policy)
    calls: list[sk.ActionCall[int]] = []

    async def settle() -> None:
        for _ in range(6):
            await asyncio.sleep(0)

    for op in ops:
        if op[0] == "call":
            gates.append(loop.create_future())
            calls.append(job(len(calls)))
            model.call()
        elif op[0] == "finish":
            index, ok = op[1] % max(len(gates), 1), op[2]
            if index < len(gates) and not gates[index].done():
                gates[index].set_result(ok)
                # A gate opened for a call that has not started yet (queued)
                # only takes effect once the call starts.
                if model.state[index] == "running":
                    model.finish(index, ok)
        elif op[0] == "cancel_one":
            if calls:
                index = op[1] % len(calls)
                calls[index].cancel()
                model.cancel([index])
        else:
            job.cancel()
            model.cancel(list(range(len(model.state))))
        await settle()
        # Queued calls whose gate was opened before their turn finish on start.
        progressed = True
        while progressed:
            progressed = False
            for i in model.live():
                gate = gates[i]
                if gate.done() and model.state[i] == "running":
                    model.finish(i, gate.result())
                    progressed = True
        await settle()
        check(model, job, started)

    for gate in gates:  # let everything end, then compare outcomes
        if not gate.done():
            gate.set_result(True)
    while model.live():
        for i in model.live():
            model.finish(i, gates[i].result())
    for _ in range(10):
        await settle()
    check(model, job, started)
    for i, call in enumerate(calls):
        assert call.done()
        outcome = call.exception()
        expected = model.state[i]
        if expected == "ok":
            assert outcome is None and call.result() == i
        elif expected == "failed":
            assert isinstance(outcome, ValueError)
        elif expected == "dropped":
            assert isinstance(outcome, sk.ActionDropped)
        else:
            assert expected == "cancelled"
            assert isinstance(outcome, sk.ActionCancelled) and not call.dropped


def check(model: Model, job: Any, started: list[int]) -> None:
    assert started == model.started
    running = len(model.live())
    queued = len(model.waiting())
    assert (job.running, job.queued, job.pending) == (running, queued, running + queued > 0)
    assert job.result == model.result
    error = job.error
    assert (None if error is None else str(error)) == model.error


def run(policy: str, ops: list[tuple[Any, ...]]) -> None:
    with sk.new_app_scope():
        asyncio.run(scenario(policy, ops))


@settings(max_examples=150, deadline=None)
@given(ops_strategy)
def test_latest_matches_the_model(ops: list[tuple[Any, ...]]) -> None:
    run("latest", ops)


@settings(max_examples=150, deadline=None)
@given(ops_strategy)
def test_queue_matches_the_model(ops: list[tuple[Any, ...]]) -> None:
    run("queue", ops)


@settings(max_examples=150, deadline=None)
@given(ops_strategy)
def test_drop_matches_the_model(ops: list[tuple[Any, ...]]) -> None:
    run("drop", ops)


@settings(max_examples=150, deadline=None)
@given(ops_strategy)
def test_parallel_matches_the_model(ops: list[tuple[Any, ...]]) -> None:
    run("parallel", ops)
