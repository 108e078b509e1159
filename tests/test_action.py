"""Actions: policies, reactive status, batching, errors, scopes, cancellation, leaks."""

from __future__ import annotations

import asyncio
import gc
import inspect
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import statekit as sk


@pytest.fixture
def errors() -> Iterator[list[tuple[str, BaseException]]]:
    """Everything that reaches the error hook during the test."""
    seen: list[tuple[str, BaseException]] = []
    old = sk.set_error_hook(lambda exc, where: seen.append((where, exc)))
    yield seen
    sk.set_error_hook(old)


class Gates:
    """One asyncio.Event per call key: the test decides when each call ends."""

    def __init__(self) -> None:
        self.events: dict[Any, asyncio.Event] = {}

    def __getitem__(self, key: Any) -> asyncio.Event:
        return self.events.setdefault(key, asyncio.Event())

    def open(self, key: Any) -> None:
        self[key].set()


async def settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def watch(*reads: Any) -> tuple[list[tuple[Any, ...]], sk.Effect]:
    """An effect recording a tuple of the given reads each time it runs."""
    runs: list[tuple[Any, ...]] = []
    stop = sk.effect(lambda: runs.append(tuple(read() for read in reads)))
    return runs, stop


# --------------------------------------------------------------------------- definition


def test_bare_decorator_and_options_give_sync_and_async_actions() -> None:
    @sk.action
    def plain(x: int) -> int:
        """Doubles."""
        return x * 2

    @sk.action(policy="latest", name="fetcher", scope="session", initial=[])
    async def fetch(q: str) -> list[str]:
        return [q]

    assert isinstance(plain, sk.SyncAction) and isinstance(plain, sk.Action)
    assert isinstance(fetch, sk.AsyncAction) and isinstance(fetch, sk.Action)
    assert plain.policy == "parallel" and plain.scope == "app" and plain.name == "plain"
    assert fetch.policy == "latest" and fetch.scope == "session" and fetch.name == "fetcher"
    assert plain.__doc__ == "Doubles." and plain.__wrapped__.__name__ == "plain"
    assert list(inspect.signature(plain).parameters) == ["x"]
    assert "fetcher" in repr(fetch) and "latest" in repr(fetch)
    with sk.session("s"):
        assert fetch.result == []  # initial, frozen
        assert isinstance(fetch.result, sk.FrozenList)


def test_sync_action_returns_and_lands_result() -> None:
    @sk.action
    def add(a: int, b: int = 1) -> int:
        return a + b

    status = (add.pending, add.running, add.queued, add.result, add.error)
    assert status == (False, 0, 0, None, None)
    assert add(2, b=3) == 5
    assert (add.pending, add.result, add.error) == (False, 5, None)


async def test_async_action_returns_result_and_handle_api() -> None:
    @sk.action
    async def add(a: int, b: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"sum": a + b}

    call = add(1, 2)
    assert isinstance(call, sk.ActionCall)
    assert not call.done() and add.pending and add.running == 1
    assert call.action is add and "running" in repr(call)
    with pytest.raises(asyncio.InvalidStateError):
        call.result()
    assert await call == {"sum": 3}
    assert call.done() and call.result() == {"sum": 3} and call.exception() is None
    assert not call.cancelled and not call.dropped and "done" in repr(call)
    assert add.result == {"sum": 3} and isinstance(add.result, sk.FrozenDict)
    assert not add.pending and add.running == 0


async def test_async_action_accepts_a_function_returning_an_awaitable() -> None:
    async def inner() -> int:
        return 7

    class Caller:
        async def __call__(self) -> int:
            return await inner()

    act = sk.action(Caller(), name="caller")
    assert isinstance(act, sk.AsyncAction)
    assert await act() == 7


# --------------------------------------------------------------------------- policies


async def test_latest_cancels_running_calls_and_only_the_newest_lands() -> None:
    gates = Gates()
    log: list[tuple[str, int]] = []

    @sk.action(policy="latest")
    async def job(i: int) -> int:
        log.append(("start", i))
        try:
            await gates[i].wait()
            log.append(("end", i))
            return i * 10
        finally:
            log.append(("finally", i))

    running_seen: list[int] = []
    off = sk.effect(lambda: running_seen.append(job.running))
    c1 = job(1)
    await settle()
    c2 = job(2)
    await settle()
    c3 = job(3)
    await settle()
    assert job.running == 1 and job.pending
    # the superseded calls' results would be ready now: they must not land
    gates.open(1)
    gates.open(2)
    await settle()
    assert job.result is None
    gates.open(3)
    assert await c3 == 30
    for call in (c1, c2):
        with pytest.raises(sk.ActionCancelled) as info:
            await call
        assert info.value.reason == "superseded" and info.value.action == "job"
        assert call.cancelled and not call.dropped
    assert log == [
        ("start", 1),
        ("finally", 1),
        ("start", 2),
        ("finally", 2),
        ("start", 3),
        ("end", 3),
        ("finally", 3),
    ]
    assert job.result == 30 and job.error is None and not job.pending
    assert running_seen == [0, 1, 0]  # never 2, never a flicker to 0 in between
    off()


async def test_latest_stale_result_never_lands_even_if_cancellation_is_swallowed() -> None:
    gates = Gates()

    @sk.action(policy="latest")
    async def stubborn(i: int) -> int:
        try:
            await gates[i].wait()
        except asyncio.CancelledError:
            await gates["late"].wait()  # keeps running after being superseded
            return -1
        return i

    c1 = stubborn(1)
    await settle()
    c2 = stubborn(2)
    gates.open(2)
    assert await c2 == 2
    gates.open("late")
    with pytest.raises(sk.ActionCancelled):
        await c1
    assert stubborn.result == 2


async def test_queue_runs_calls_one_after_another_in_call_order() -> None:
    gates = Gates()
    log: list[tuple[str, int]] = []
    active = 0
    peak = 0

    @sk.action(policy="queue")
    async def job(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        log.append(("start", i))
        await gates[i].wait()
        log.append(("end", i))
        active -= 1
        return i

    calls = [job(i) for i in range(4)]
    await settle()
    assert (job.running, job.queued, job.pending) == (1, 3, True)
    assert log == [("start", 0)]
    for i in (3, 2, 1):  # opening later gates first changes nothing
        gates.open(i)
    await settle()
    assert log == [("start", 0)]
    gates.open(0)
    assert [await c for c in calls] == [0, 1, 2, 3]
    assert log == [(kind, i) for i in range(4) for kind in ("start", "end")]
    assert peak == 1
    assert (job.running, job.queued, job.pending, job.result) == (0, 0, False, 3)


async def test_queue_cancelled_holder_finishes_its_cleanup_before_the_next_starts() -> None:
    gates = Gates()
    log: list[str] = []

    @sk.action(policy="queue")
    async def job(i: int) -> int:
        log.append(f"start {i}")
        try:
            await gates[i].wait()
        finally:
            log.append(f"cleanup {i}")
            await gates[f"cleanup {i}"].wait()
            log.append(f"cleaned {i}")
        return i

    c0, c1 = job(0), job(1)
    await settle()
    assert c0.cancel() is True and c0.cancel() is False
    await settle()
    # c0 no longer counts (pending is c1 waiting), but still holds the turn
    assert (job.running, job.queued, job.pending) == (0, 1, True)
    assert log == ["start 0", "cleanup 0"]
    gates.open("cleanup 0")
    await settle()
    assert log == ["start 0", "cleanup 0", "cleaned 0", "start 1"]
    gates.open(1)
    gates.open("cleanup 1")
    assert await c1 == 1
    with pytest.raises(sk.ActionCancelled) as info:
        await c0
    assert info.value.reason == "cancelled"


async def test_queue_cancelling_a_waiting_call_skips_it() -> None:
    gates = Gates()
    ran: list[int] = []

    @sk.action(policy="queue")
    async def job(i: int) -> int:
        ran.append(i)
        await gates[i].wait()
        return i

    c0, c1, c2 = job(0), job(1), job(2)
    await settle()
    assert c1.cancel()
    assert (job.running, job.queued) == (1, 1)
    gates.open(0)
    gates.open(2)
    assert await c0 == 0 and await c2 == 2
    with pytest.raises(sk.ActionCancelled):
        await c1
    assert ran == [0, 2] and job.result == 2


async def test_drop_ignores_calls_while_one_runs() -> None:
    gates = Gates()
    ran: list[int] = []

    @sk.action(policy="drop")
    async def save(i: int) -> int:
        ran.append(i)
        await gates[i].wait()
        return i

    c1 = save(1)
    c2 = save(2)
    await settle()
    c3 = save(3)
    assert c2.dropped and c3.dropped and c2.cancelled and c2.done()
    assert not c1.dropped and "dropped" in repr(c2)
    assert save.running == 1
    for call in (c2, c3):
        with pytest.raises(sk.ActionDropped) as info:
            await call
        assert isinstance(info.value, sk.ActionCancelled) and info.value.reason == "dropped"
        assert isinstance(call.exception(), sk.ActionDropped)
    gates.open(1)
    assert await c1 == 1
    c4 = save(4)  # nothing runs now: accepted
    gates.open(4)
    assert await c4 == 4
    assert ran == [1, 4] and save.result == 4 and not save.pending


async def test_parallel_runs_concurrently_and_the_newest_call_wins_result() -> None:
    gates = Gates()
    active = 0
    peak = 0

    @sk.action(policy="parallel")
    async def fetch(uid: int) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gates[uid].wait()
        active -= 1
        return f"user {uid}"

    calls = {uid: fetch(uid) for uid in (1, 2, 3)}
    await settle()
    assert (fetch.running, peak) == (3, 3)
    gates.open(3)  # the newest finishes first...
    assert await calls[3] == "user 3"
    assert fetch.running == 2 and fetch.pending and fetch.result == "user 3"
    gates.open(1)  # ...older ones finish later: they must not win
    gates.open(2)
    assert await calls[1] == "user 1" and await calls[2] == "user 2"
    assert fetch.result == "user 3" and fetch.running == 0 and not fetch.pending


async def test_parallel_results_land_in_call_order_when_they_finish_in_order() -> None:
    gates = Gates()

    @sk.action
    async def fetch(uid: int) -> int:
        await gates[uid].wait()
        return uid

    seen: list[int | None] = []
    off = fetch_subscribe = sk.effect(lambda: seen.append(fetch.result))
    calls = [fetch(uid) for uid in (1, 2, 3)]
    for uid in (1, 2, 3):
        gates.open(uid)
        await calls[uid - 1]
    assert seen == [None, 1, 2, 3]
    off()
    del fetch_subscribe


# --------------------------------------------------------------------------- reactive status


def test_sync_status_transitions_seen_by_an_effect() -> None:
    @sk.action
    def work(n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return n

    runs, stop = watch(lambda: work.pending, lambda: work.result, lambda: work.error)
    work(1)
    with pytest.raises(ValueError) as info:
        work(-1)
    assert runs == [
        (False, None, None),
        (True, None, None),  # the start is announced before the body runs
        (False, 1, None),  # result and status land together
        (True, 1, None),
        (False, 1, info.value),  # a failure keeps the last result
    ]
    stop()


async def test_async_status_transitions_seen_by_an_effect() -> None:
    gates = Gates()

    @sk.action
    async def work(n: int) -> int:
        await gates[n].wait()
        if n < 0:
            raise ValueError("negative")
        return n

    runs, stop = watch(lambda: work.pending, lambda: work.running, lambda: work.result)
    first = work(1)
    assert runs[-1] == (True, 1, None)  # pending as soon as the call returns
    second = work(2)
    gates.open(1)
    await first
    gates.open(2)
    await second
    assert runs == [
        (False, 0, None),
        (True, 1, None),
        (True, 2, None),
        (True, 1, 1),
        (False, 0, 2),
    ]
    stop()


async def test_status_is_readable_in_a_computed() -> None:
    gates = Gates()

    @sk.action
    async def load() -> str:
        await gates[0].wait()
        return "data"

    label = sk.computed(lambda: "loading" if load.pending else f"ready: {load.result}")
    assert label.value == "ready: None"
    call = load()
    assert label.value == "loading"
    gates.open(0)
    await call
    assert label.value == "ready: data"


# --------------------------------------------------------------------------- batching


def test_sync_action_writes_are_one_batch() -> None:
    a, b = sk.atom(0, name="a"), sk.atom(0, name="b")
    runs, stop = watch(lambda: a.value, lambda: b.value)

    @sk.action
    def both(n: int) -> None:
        a.value = n
        assert runs[-1] == (0, 0)  # effects wait for the end of the action
        b.value = n

    both(5)
    assert runs == [(0, 0), (5, 5)]
    stop()


async def test_async_action_batches_each_stretch_and_the_last_with_its_status() -> None:
    a, b = sk.atom(0, name="a"), sk.atom(0, name="b")
    gates = Gates()

    @sk.action
    async def steps() -> str:
        a.value = 1
        b.value = 1
        await gates[0].wait()
        a.value = 2
        b.value = 2
        return "done"

    runs, stop = watch(lambda: a.value, lambda: b.value, lambda: steps.pending)
    call = steps()
    await settle()
    gates.open(0)
    await call
    assert runs == [
        (0, 0, False),
        (0, 0, True),  # the call starts
        (1, 1, True),  # first stretch, one batch
        (2, 2, False),  # last stretch and status, one batch
    ]
    stop()


async def test_no_batch_is_held_across_an_await() -> None:
    other = sk.atom(0, name="other")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(other.value))
    gates = Gates()

    @sk.action
    async def slow() -> None:
        await gates[0].wait()

    call = slow()
    await settle()
    other.value = 1  # another task writes while the action waits
    assert seen == [0, 1]  # its effect ran at once: no batch left open
    gates.open(0)
    await call
    stop()


def test_action_body_is_untracked_inside_an_effect() -> None:
    source = sk.atom(1, name="source")
    trigger = sk.atom(0, name="trigger")

    @sk.action
    def read_source() -> int:
        return source.value

    runs: list[int] = []
    stop = sk.effect(lambda: runs.append(trigger.value + read_source()))
    source.value = 2  # read only inside the action: the effect does not depend on it
    trigger.value = 1
    assert runs == [1, 3]
    stop()


# --------------------------------------------------------------------------- errors


async def test_async_exception_reaches_caller_and_error_and_is_never_logged(
    errors: list[tuple[str, BaseException]],
) -> None:
    @sk.action
    async def login(password: str) -> str:
        await asyncio.sleep(0)
        if password != "ok":
            raise PermissionError(f"bad password {password!r}")
        return "token"

    assert await login("ok") == "token"
    with pytest.raises(PermissionError) as info:
        await login("nope")
    assert login.error is info.value and login.result == "token" and not login.pending
    assert await login("ok") == "token"
    assert login.error is None  # a later success clears the error
    gc.collect()
    assert errors == []


def test_sync_exception_reaches_caller_and_error(errors: list[tuple[str, BaseException]]) -> None:
    @sk.action
    def parse(text: str) -> int:
        return int(text)

    with pytest.raises(ValueError) as info:
        parse("x")
    assert parse.error is info.value and parse.result is None and not parse.pending
    assert parse("4") == 4 and parse.error is None
    assert errors == []


async def test_unawaited_failing_call_lands_in_error() -> None:
    @sk.action
    async def boom() -> None:
        raise RuntimeError("boom")

    boom()  # fire and forget
    await settle()
    assert isinstance(boom.error, RuntimeError)


async def test_fire_and_forget_failures_are_not_logged_by_asyncio(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @sk.action
    async def boom(i: int) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(f"boom {i}")

    @sk.action(policy="latest")
    async def superseded(i: int) -> None:
        await asyncio.sleep(0)

    with caplog.at_level("DEBUG"):
        for i in range(10):
            boom(i)
            superseded(i)
        await settle(10)
        gc.collect()
        await settle()
    assert str(boom.error) == "boom 9"
    assert [(r.name, r.getMessage()) for r in caplog.records] == []


async def test_failure_nobody_sees_goes_to_the_error_hook(
    errors: list[tuple[str, BaseException]],
) -> None:
    gates = Gates()

    @sk.action
    async def fetch(i: int) -> int:
        await gates[i].wait()
        if i == 1:
            raise LookupError("old call failed")
        return i

    fetch(1)  # nobody awaits it, and it will be stale: only the hook can tell
    newer = fetch(2)
    gates.open(2)
    await newer
    gates.open(1)
    await settle()
    assert fetch.error is None  # stale: did not land
    gc.collect()
    assert [(where, type(exc)) for where, exc in errors] == [
        ("action 'fetch' (a call nobody awaited)", LookupError)
    ]


async def test_cancelled_call_whose_cleanup_raises_chains_the_error() -> None:
    gates = Gates()

    @sk.action(policy="latest")
    async def job(i: int) -> int:
        try:
            await gates[i].wait()
        finally:
            if i == 1:
                raise OSError("cleanup failed")
        return i

    c1 = job(1)
    await settle()
    c2 = job(2)
    gates.open(2)
    assert await c2 == 2
    with pytest.raises(sk.ActionCancelled) as info:
        await c1
    assert isinstance(info.value.__cause__, OSError)
    assert job.error is None and job.result == 2


async def test_keyboard_interrupt_like_errors_propagate_without_landing() -> None:
    class Stop(BaseException):
        pass

    @sk.action
    def halt() -> None:
        raise Stop

    with pytest.raises(Stop):
        halt()
    assert halt.error is None and not halt.pending


# --------------------------------------------------------------------------- scopes


async def test_session_scoped_status_and_concurrency_are_per_session() -> None:
    owner = sk.atom("", name="owner", scope="session")
    start = asyncio.Event()

    @sk.action(policy="latest", scope="session")
    async def login(sid: str) -> str:
        owner.value = f"{sid} (before)"
        await start.wait()
        await asyncio.sleep(0)
        owner.value = sid  # lands in the caller's session
        return sid

    sessions = [f"s{i}" for i in range(100)]
    seen_pending: dict[str, bool] = {}
    results: dict[str, str] = {}

    async def run(sid: str) -> None:
        with sk.session(sid):
            call = login(sid)
            await asyncio.sleep(0)
            seen_pending[sid] = login.pending and login.running == 1
            results[sid] = await call  # raises ActionCancelled if sessions interfered

    tasks = [asyncio.create_task(run(sid)) for sid in sessions]
    await settle(10)
    assert all(seen_pending.values()) and len(seen_pending) == 100
    start.set()
    await asyncio.gather(*tasks)
    assert results == {sid: sid for sid in sessions}
    for sid in sessions:
        with sk.session(sid):
            assert (login.result, login.pending, login.error) == (sid, False, None)
            assert owner.value == sid
    with sk.session("nobody"):
        assert login.result is None and owner.value == ""


async def test_writes_of_an_async_action_land_in_the_callers_session() -> None:
    cart = sk.atom((), name="cart", scope="session")
    gates = Gates()

    @sk.action  # an app-level action: one status, but writes follow the caller
    async def add(item: str) -> None:
        await gates[item].wait()
        cart.update(lambda items: (*items, item))

    with sk.session("a"):
        ca = add("apple")
    with sk.session("b"):
        cb = add("bread")
    gates.open("bread")
    gates.open("apple")
    await asyncio.gather(ca, cb)
    with sk.session("a"):
        assert cart.value == ("apple",)
    with sk.session("b"):
        assert cart.value == ("bread",)


def test_session_scoped_action_without_a_session_raises_and_changes_nothing() -> None:
    calls: list[int] = []

    @sk.action(scope="session")
    def act() -> None:
        calls.append(1)

    with pytest.raises(sk.ScopeError, match="'act' lives in a 'session' scope"):
        act()
    assert calls == []


async def test_disposing_the_scope_cancels_its_calls() -> None:
    gates = Gates()
    cleaned: list[str] = []

    @sk.action(scope="session")
    async def job() -> None:
        try:
            await gates[0].wait()
        finally:
            cleaned.append("done")

    with sk.session("doomed") as scope:
        call = job()
    await settle()
    scope.dispose()
    with pytest.raises(sk.ActionCancelled) as info:
        await call
    assert info.value.reason == "disposed" and cleaned == ["done"]


# --------------------------------------------------------------------------- cancellation


async def test_cancel_runs_finally_and_clears_pending_at_once() -> None:
    gates = Gates()
    log: list[str] = []

    @sk.action(policy="parallel", initial="none")
    async def job(i: int) -> str:
        try:
            await gates[i].wait()
            return f"r{i}"
        finally:
            log.append(f"finally {i}")

    runs, stop = watch(lambda: job.pending)
    calls = [job(1), job(2)]
    await settle()
    assert job.cancel() == 2
    assert not job.pending and job.running == 0  # at once, before the cleanups ran
    for call in calls:
        with pytest.raises(sk.ActionCancelled) as info:
            await call
        assert info.value.reason == "cancelled"
    assert sorted(log) == ["finally 1", "finally 2"]
    assert job.result == "none" and job.error is None
    assert runs == [(False,), (True,), (False,)]
    assert job.cancel() == 0
    stop()


async def test_cancelling_the_awaiting_task_cancels_the_call() -> None:
    gates = Gates()
    log: list[str] = []

    @sk.action
    async def job() -> str:
        try:
            await gates[0].wait()
            return "never"
        finally:
            log.append("finally")

    async def caller() -> str:
        return await job()

    task = asyncio.create_task(caller())
    await settle()
    assert job.pending
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # the caller sees its own cancellation, not an ActionCancelled
    assert log == ["finally"] and not job.pending and job.result is None and job.error is None


async def test_awaiter_cancelled_before_the_call_started_still_settles() -> None:
    @sk.action
    async def job() -> int:
        return 1

    async def caller() -> int:
        return await job()

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)  # caller made the call; the call's task has not run
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    assert not job.pending and job.running == 0


async def test_cancel_before_the_task_starts_gives_action_cancelled() -> None:
    ran: list[int] = []

    @sk.action(policy="latest")
    async def job(i: int) -> int:
        ran.append(i)
        return i

    first = job(1)
    second = job(2)  # supersedes the first before it ever ran
    assert await second == 2
    with pytest.raises(sk.ActionCancelled):
        await first
    assert ran == [2]


def test_reset_restores_initial_result_and_clears_error() -> None:
    @sk.action(initial=0)
    def act(n: int) -> int:
        if n < 0:
            raise ValueError(n)
        return n

    act(3)
    with pytest.raises(ValueError):
        act(-1)
    act.reset()
    assert act.result == 0 and act.error is None


# --------------------------------------------------------------------------- threads


def test_sync_queue_across_threads_never_overlaps() -> None:
    active = 0
    peak = 0
    done: list[int] = []
    guard = threading.Lock()

    @sk.action(policy="queue")
    def work(i: int) -> int:
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        time.sleep(0.001)
        with guard:
            active -= 1
            done.append(i)
        return i

    app = sk.current_scope()
    threads = [threading.Thread(target=app.run, args=(work, i)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1 and sorted(done) == list(range(16))
    assert (work.pending, work.running, work.queued) == (False, 0, 0)
    assert work.result == done[-1]  # the last to run was the last admitted


def test_sync_drop_across_threads() -> None:
    inside = threading.Event()
    release = threading.Event()
    outcomes: list[str] = []

    @sk.action(policy="drop")
    def work() -> str:
        inside.set()
        release.wait(5)
        return "ran"

    app = sk.current_scope()

    def call() -> None:
        try:
            outcomes.append(app.run(work))
        except sk.ActionDropped:
            outcomes.append("dropped")

    first = threading.Thread(target=call)
    first.start()
    assert inside.wait(5)
    others = [threading.Thread(target=call) for _ in range(5)]
    for t in others:
        t.start()
    for t in others:
        t.join()
    release.set()
    first.join()
    assert sorted(outcomes) == ["dropped"] * 5 + ["ran"]
    assert work.result == "ran" and not work.pending


def test_sync_latest_across_threads_older_result_does_not_land() -> None:
    inside = threading.Event()
    release = threading.Event()

    @sk.action(policy="latest")
    def work(i: int) -> int:
        if i == 1:
            inside.set()
            release.wait(5)
        return i

    app = sk.current_scope()
    out: list[int] = []
    slow = threading.Thread(target=lambda: out.append(app.run(work, 1)))
    slow.start()
    assert inside.wait(5)
    assert work(2) == 2
    release.set()
    slow.join()
    assert out == [1]  # a sync call can't be interrupted: it returns to its caller
    assert work.result == 2  # but its stale result never lands


def test_sync_cancel_wakes_a_waiting_thread() -> None:
    inside = threading.Event()
    release = threading.Event()

    @sk.action(policy="queue")
    def work(i: int) -> int:
        if i == 0:
            inside.set()
            release.wait(5)
        return i

    app = sk.current_scope()
    outcomes: list[object] = []

    def call(i: int) -> None:
        try:
            outcomes.append(app.run(work, i))
        except sk.ActionCancelled as exc:
            outcomes.append(exc.reason)

    holder = threading.Thread(target=call, args=(0,))
    holder.start()
    assert inside.wait(5)
    waiter = threading.Thread(target=call, args=(1,))
    waiter.start()
    deadline = time.monotonic() + 5
    while work.queued != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert work.cancel() == 2
    waiter.join(5)
    assert outcomes == ["cancelled"]
    release.set()
    holder.join(5)
    assert outcomes == ["cancelled", 0] and work.result is None  # cancelled: no landing


async def test_submit_from_a_thread_runs_on_the_loop_in_the_threads_session() -> None:
    where = sk.atom("", name="where", scope="session")

    @sk.action
    async def mark(label: str) -> str:
        await asyncio.sleep(0)
        where.value = label
        return sk.current_scope().id

    loop = asyncio.get_running_loop()
    app = sk.current_scope()
    futures = []

    def worker() -> None:
        with app, sk.session("thread-session"):
            futures.append(mark.submit(loop, "from thread"))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert await asyncio.wrap_future(futures[0]) == "thread-session"
    with sk.session("thread-session"):
        assert where.value == "from thread"


async def test_submit_forwards_errors_and_refusals() -> None:
    @sk.action(policy="drop")
    async def fail(gate: asyncio.Event) -> None:
        await gate.wait()
        raise KeyError("k")

    loop = asyncio.get_running_loop()
    gate = asyncio.Event()
    first = fail.submit(loop, gate)
    await settle()
    second = fail.submit(loop, gate)
    await settle()
    gate.set()
    with pytest.raises(KeyError):
        await asyncio.wrap_future(first)
    with pytest.raises(sk.ActionDropped):
        await asyncio.wrap_future(second)
    bad = fail.submit(loop)  # wrong arguments: raised by the call on the loop
    with pytest.raises(TypeError):
        await asyncio.wrap_future(bad)


# --------------------------------------------------------------------------- leaks


async def test_ten_thousand_calls_leave_no_task_or_call_alive() -> None:
    @sk.action(policy="latest")
    async def latest(i: int) -> int:
        await asyncio.sleep(0)
        return i

    @sk.action(policy="queue")
    async def queued(i: int) -> int:
        await asyncio.sleep(0)
        return i

    @sk.action(policy="drop")
    async def dropped(i: int) -> int:
        await asyncio.sleep(0)
        return i

    @sk.action
    async def failing(i: int) -> int:
        await asyncio.sleep(0)
        raise ValueError(i)

    refs: list[weakref.ref[Any]] = []
    for batch in range(25):
        calls = []
        for i in range(100):
            calls.extend((latest(i), queued(i), dropped(i), failing(i)))
        refs.extend(weakref.ref(call) for call in calls)
        refs.extend(weakref.ref(call.task) for call in calls if call.task is not None)
        await asyncio.gather(*calls, return_exceptions=True)
        del calls
        assert batch >= 0
    await settle()  # let gather's last callbacks run
    failing.reset()  # drop the last error (its traceback holds frames)
    gc.collect()
    assert len(refs) > 10_000
    assert [r for r in refs if r() is not None] == []
    assert asyncio.all_tasks() == {asyncio.current_task()}
    for act in (latest, queued, dropped, failing):
        cell = act._cell()
        assert not cell.live and not cell.waiting and cell.holder is None
        assert (act.pending, act.running, act.queued) == (False, 0, 0)


def test_disposed_session_frees_its_action_state() -> None:
    @sk.action(scope="session")
    def act() -> list[int]:
        return [1]

    with sk.session("gone") as scope:
        act()
        cell = weakref.ref(act._cell())
    scope.dispose()
    del scope
    gc.collect()
    assert cell() is None


# --------------------------------------------------------------------------- bad input


def test_unknown_policy_is_refused_naming_it() -> None:
    with pytest.raises(sk.InvalidDefinition, match="unknown policy 'newest'") as info:

        @sk.action(policy="newest")  # type: ignore[arg-type]
        def act() -> None: ...

    assert "'act'" in str(info.value) and "'latest'" in str(info.value)


def test_non_callable_and_bad_scope_are_refused() -> None:
    with pytest.raises(sk.InvalidDefinition, match="needs a function"):
        sk.action(42)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="unknown scope level 'galaxy'"):
        sk.action(lambda: None, scope="galaxy")


def test_async_action_without_a_running_loop_is_a_clear_error() -> None:
    @sk.action
    async def fetch() -> None: ...

    with pytest.raises(sk.ActionError, match=r"action 'fetch' is async and needs a running"):
        fetch()
    assert not fetch.pending


def test_async_action_returning_a_non_awaitable_is_refused() -> None:
    class Liar:
        async def __call__(self) -> int:
            return 1

    liar = Liar()
    act = sk.action(liar, name="liar")
    act._fn = lambda: 5  # a function that turned out not to be async after all

    async def main() -> None:
        with pytest.raises(sk.ActionError, match="returned int, not an awaitable"):
            act()

    asyncio.run(main())
    assert not act.pending


async def test_wrong_arguments_raise_at_the_call_and_change_nothing() -> None:
    @sk.action
    async def fetch(uid: int) -> int:
        return uid

    with pytest.raises(TypeError):
        fetch(1, 2)  # type: ignore[call-arg]
    assert (fetch.pending, fetch.running, fetch.error) == (False, 0, None)


def test_calling_an_action_inside_a_computed_is_refused() -> None:
    @sk.action
    def act() -> int:
        return 1

    def calls_action() -> int:
        return act()

    bad = sk.computed(calls_action, name="bad")
    with pytest.raises(sk.StatekitError, match="computed 'bad' called action 'act'"):
        bad.value
    assert act.result is None


def test_sync_queue_action_calling_itself_is_refused() -> None:
    @sk.action(policy="queue")
    def recurse(n: int) -> int:
        return n if n == 0 else recurse(n - 1)

    with pytest.raises(sk.ActionError, match="called from inside its own running call"):
        recurse(2)
    assert not recurse.pending and isinstance(recurse.error, sk.ActionError)

    @sk.action(policy="parallel")
    def fine(n: int) -> int:
        return n if n == 0 else fine(n - 1) + 1

    assert fine(3) == 3


async def test_async_latest_action_calling_itself_is_refused() -> None:
    @sk.action(policy="latest")
    async def recurse(n: int) -> int:
        if n == 0:
            return 0
        return await recurse(n - 1)

    with pytest.raises(sk.ActionError, match="it would cancel itself"):
        await recurse(1)

    @sk.action(policy="queue")
    async def spawner() -> str:
        # a call from a background task it starts is not a call from itself
        async def later() -> str:
            return "ok"

        asyncio.get_running_loop().create_task(later())
        return "spawned"

    assert await spawner() == "spawned"


async def test_drop_action_calling_itself_is_dropped() -> None:
    @sk.action(policy="drop")
    async def once() -> str:
        inner = once()
        assert inner.dropped
        return "outer"

    assert await once() == "outer"


# --------------------------------------------------------------------------- example


def test_the_search_example_runs_and_never_shows_a_stale_result() -> None:
    script = Path(__file__).parent.parent / "examples" / "actions_search.py"
    out = subprocess.run(
        [sys.executable, str(script)], check=True, capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    for who, final in (("ann", "['blueberry']"), ("bob", "['apricot']")):
        mine = [line for line in out if line.startswith(f"[{who}]")]
        assert mine == [
            f"[{who}] []",
            f"[{who}] searching...",
            f"[{who}] superseded: <ActionCall 'search' #1 superseded>",
            f"[{who}] superseded: <ActionCall 'search' #2 superseded>",
            f"[{who}] {final}",
        ]


# --------------------------------------------------------------------------- methods


async def test_an_action_on_a_method_is_bound_per_instance() -> None:
    gates = Gates()

    class Todo:
        def __init__(self, title: str) -> None:
            self.title = title
            self.saved = 0

        @sk.action(policy="latest")
        async def save(self, suffix: str) -> str:
            await gates[self.title].wait()
            self.saved += 1
            return self.title + suffix

    a, b = Todo("a"), Todo("b")
    assert a.save is a.save and a.save is not b.save
    assert isinstance(Todo.save, sk.AsyncAction) and Todo.save.name == "save"
    ca, cb = a.save("!"), b.save("?")  # different instances: no cancelling each other
    assert a.save.pending and b.save.pending and not Todo.save.pending
    gates.open("a")
    assert await ca == "a!"
    assert not a.save.pending and b.save.pending
    gates.open("b")
    assert await cb == "b?"
    assert (a.save.result, b.save.result, a.saved, b.saved) == ("a!", "b?", 1, 1)
    assert list(inspect.signature(a.save.__wrapped__).parameters) == ["self", "suffix"]


def test_a_bound_action_is_freed_with_its_instance() -> None:
    class Item:
        @sk.action
        def touch(self) -> int:
            return 1

    item = Item()
    assert item.touch() == 1
    bound = weakref.ref(item.touch)
    cell = weakref.ref(item.touch._cell())
    del item
    gc.collect()
    assert bound() is None and cell() is None and Item.touch._bound == {}


def test_a_method_action_needs_weakref_able_instances() -> None:
    class Slotted:
        __slots__ = ()

        @sk.action
        def go(self) -> None: ...

    with pytest.raises(sk.InvalidDefinition, match="instances do not support weak references"):
        Slotted().go


def test_async_queue_shared_by_event_loops_in_several_threads_never_overlaps() -> None:
    active = 0
    peak = 0
    done: list[tuple[int, int]] = []
    guard = threading.Lock()

    @sk.action(policy="queue")
    async def work(worker: int, i: int) -> int:
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        await asyncio.sleep(0)
        await asyncio.sleep(0.0005)
        with guard:
            active -= 1
            done.append((worker, i))
        return i

    app = sk.current_scope()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        async def main() -> None:
            results = await asyncio.gather(*(work(n, i) for i in range(25)))
            assert results == list(range(25))

        try:
            with app:
                asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and peak == 1 and len(done) == 100
    for n in range(4):  # each loop's calls ran in its own call order
        assert [i for w, i in done if w == n] == list(range(25))
    assert (work.pending, work.running, work.queued) == (False, 0, 0)


async def test_latest_call_on_one_loop_cancels_a_call_running_on_another() -> None:
    started = threading.Event()
    outcome: list[object] = []

    @sk.action(policy="latest")
    async def job(i: int) -> int:
        if i == 1:
            started.set()
            await asyncio.sleep(30)  # only cancellation ends it
        return i

    app = sk.current_scope()

    def other_loop() -> None:
        async def main() -> None:
            try:
                outcome.append(await job(1))
            except sk.ActionCancelled as exc:
                outcome.append(exc.reason)

        with app:
            asyncio.run(main())

    thread = threading.Thread(target=other_loop)
    thread.start()
    assert await asyncio.to_thread(started.wait, 10)
    assert await job(2) == 2
    await asyncio.to_thread(thread.join, 10)
    assert outcome == ["superseded"] and job.result == 2 and not job.pending
