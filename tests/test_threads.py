"""Threads and asyncio tasks.

Threads do not inherit the current scope (``contextvars``), so every worker
thread here runs inside the test's scope via ``scope.run``. Every wait is
bounded by a timeout: a deadlock fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import statekit as sk

JOIN_TIMEOUT = 20.0


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads often, so that races have a chance to show."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def start_threads(n: int, target: Callable[..., Any], *args: Any) -> list[threading.Thread]:
    scope = sk.current_scope()
    errors: list[BaseException] = []

    def wrapped(*a: Any) -> None:
        try:
            scope.run(target, *a)
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [
        threading.Thread(target=wrapped, args=(i, *args), daemon=True, name=f"worker-{i}")
        for i in range(n)
    ]
    for t in threads:
        t.start()
    threads_errors[id(threads)] = errors
    return threads


threads_errors: dict[int, list[BaseException]] = {}


def join_all(threads: list[threading.Thread], timeout: float = JOIN_TIMEOUT) -> None:
    for t in threads:
        t.join(timeout)
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads still running (deadlock?): {alive}"
    errors = threads_errors.pop(id(threads), [])
    assert not errors, f"worker raised: {errors!r}"


# --------------------------------------------------------------------------
# atomic update


@pytest.mark.slow
def test_16_threads_x_10k_updates_lose_nothing(fast_switching: None) -> None:
    counter = sk.atom(0, name="counter")
    barrier = threading.Barrier(16, timeout=JOIN_TIMEOUT)

    def work(_i: int) -> None:
        barrier.wait()
        for _ in range(10_000):
            counter.update(lambda n: n + 1)

    join_all(start_threads(16, work))
    assert counter.value == 160_000


def test_update_returns_each_intermediate_value_once(fast_switching: None) -> None:
    counter = sk.atom(0, name="counter")
    results: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8, timeout=JOIN_TIMEOUT)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(2_000):
            results[i].append(counter.update(lambda n: n + 1))

    join_all(start_threads(8, work))
    every = sorted(v for r in results for v in r)
    assert every == list(range(1, 16_001))  # each new value handed out exactly once


def test_listener_counts_every_change_under_contention(fast_switching: None) -> None:
    counter = sk.atom(0, name="counter")
    seen: list[int] = []
    lock = threading.Lock()

    def listener(v: int) -> None:
        with lock:
            seen.append(v)

    off = counter.subscribe(listener)

    def work(_i: int) -> None:
        for _ in range(1_000):
            counter.update(lambda n: n + 1)

    join_all(start_threads(8, work))
    off()
    assert counter.value == 8_000
    assert max(seen) == 8_000
    assert len(set(seen)) == len(seen)  # no value reported twice
    assert len(seen) <= 8_000


# --------------------------------------------------------------------------
# no torn reads


def test_concurrent_readers_never_see_torn_values(fast_switching: None) -> None:
    x = sk.atom(0, name="x")
    pos = sk.computed(lambda: x.value, name="pos")
    neg = sk.computed(lambda: -x.value, name="neg")
    pair = sk.computed(lambda: (pos.value, neg.value), name="pair")
    total = sk.computed(lambda: pair.value[0] + pair.value[1], name="total")
    effect_seen: list[tuple[int, int]] = []
    stop = sk.effect(lambda: effect_seen.append(pair.value))
    stop_writing = threading.Event()
    problems: list[str] = []

    def writer(_i: int) -> None:
        for _ in range(3_000):
            x.update(lambda n: n + 1)

    def reader(_i: int) -> None:
        last = -1
        reads = 0
        while not stop_writing.is_set() or reads < 100:
            p, n = pair.value
            reads += 1
            if p != -n:
                problems.append(f"torn pair {(p, n)}")
            if p < last:
                problems.append(f"went back from {last} to {p}")
            last = p
            if total.value != 0:
                problems.append("total != 0")
            if pos.value < p:
                problems.append("pos older than a pair read before it")

    readers = start_threads(6, reader)
    writers = start_threads(4, writer)
    join_all(writers)
    stop_writing.set()
    join_all(readers)
    assert problems == []
    assert x.value == 12_000
    assert pair.value == (12_000, -12_000)
    assert all(p == -n for p, n in effect_seen)
    assert effect_seen[-1] == (12_000, -12_000)  # the last run saw the last write
    stop()


def test_batches_are_per_thread() -> None:
    a = sk.atom(0, name="a")
    b = sk.atom(0, name="b")
    seen_b: list[int] = []
    stop = sk.effect(lambda: seen_b.append(b.value))
    inside = threading.Event()
    release = threading.Event()

    def batcher(_i: int) -> None:
        with sk.batch():
            a.value = 1
            inside.set()
            assert release.wait(JOIN_TIMEOUT)

    threads = start_threads(1, batcher)
    assert inside.wait(JOIN_TIMEOUT)
    b.value = 5  # this thread is not in a batch: its effect runs now
    assert seen_b == [0, 5]
    release.set()
    join_all(threads)
    assert a.value == 1
    stop()


def test_another_threads_batch_does_not_delay_my_listener() -> None:
    a = sk.atom(0, name="a")
    calls: list[int] = []
    off = a.subscribe(calls.append)
    inside = threading.Event()
    release = threading.Event()

    def batcher(_i: int) -> None:
        with sk.batch():
            a.value = 1  # queued in *this* thread's batch
            inside.set()
            assert release.wait(JOIN_TIMEOUT)

    threads = start_threads(1, batcher)
    try:
        assert inside.wait(JOIN_TIMEOUT)
        a.value = 2  # the main thread is not in a batch: deliver now
        assert calls == [2], f"listener delayed by another thread's batch: {calls}"
    finally:
        release.set()
        join_all(threads)
    assert a.value == 2
    assert calls == [2]
    off()


def test_another_threads_batch_does_not_delay_my_effect() -> None:
    a = sk.atom(0, name="a")
    b = sk.atom(0, name="b")
    seen: list[tuple[int, int]] = []
    stop = sk.effect(lambda: seen.append((a.value, b.value)))
    inside = threading.Event()
    release = threading.Event()

    def batcher(_i: int) -> None:
        with sk.batch():
            a.value = 1
            inside.set()
            assert release.wait(JOIN_TIMEOUT)

    threads = start_threads(1, batcher)
    try:
        assert inside.wait(JOIN_TIMEOUT)
        b.value = 5
        assert seen[-1][1] == 5, f"effect delayed by another thread's batch: {seen}"
    finally:
        release.set()
        join_all(threads)
    assert seen[-1] == (1, 5)
    stop()


# --------------------------------------------------------------------------
# listeners and effects run outside the lock


def test_listener_that_joins_a_writing_thread_does_not_deadlock() -> None:
    a = sk.atom(0, name="a")
    b = sk.atom(0, name="b")
    scope = sk.current_scope()
    outcome: list[str] = []

    def listener(v: int) -> None:
        t = threading.Thread(target=scope.run, args=(b.set, v * 10), daemon=True)
        t.start()
        t.join(5.0)
        outcome.append("joined" if not t.is_alive() else "deadlocked")

    off = a.subscribe(listener)
    a.value = 3
    assert outcome == ["joined"]
    assert b.value == 30
    off()


def test_effect_that_joins_a_writing_thread_does_not_deadlock() -> None:
    a = sk.atom(0, name="a")
    b = sk.atom(0, name="b")
    scope = sk.current_scope()
    outcome: list[str] = []
    b_seen: list[int] = []
    stop_b = sk.effect(lambda: b_seen.append(b.value))

    def watch() -> None:
        v = a.value
        t = threading.Thread(target=scope.run, args=(b.set, v + 100), daemon=True)
        t.start()
        t.join(5.0)
        outcome.append("joined" if not t.is_alive() else "deadlocked")

    stop = sk.effect(watch)
    a.value = 1
    assert outcome == ["joined", "joined"]
    assert b.value == 101
    assert b_seen[-1] == 101
    stop()
    stop_b()


def test_computed_subscriber_that_reads_from_another_thread() -> None:
    a = sk.atom(1, name="a")
    double = sk.computed(lambda: a.value * 2, name="double")
    scope = sk.current_scope()
    got: list[Any] = []

    def listener(v: int) -> None:
        box: list[int] = []
        t = threading.Thread(
            target=scope.run, args=(lambda: box.append(double.value),), daemon=True
        )
        t.start()
        t.join(5.0)
        got.append((v, box[0] if box else "blocked"))

    off = double.subscribe(listener)
    a.value = 4
    assert got == [(8, 8)]
    off()


# --------------------------------------------------------------------------
# asyncio: each task in its own session


async def test_1000_tasks_in_1000_sessions_see_only_their_own_values() -> None:
    mine = sk.atom(-1, name="mine", scope="session")
    doubled = sk.computed(lambda: mine.value * 2, name="doubled")
    shared = sk.atom(0, name="shared")  # app level: one value for everyone
    problems: list[str] = []

    async def task(i: int) -> int:
        with sk.session(f"s{i}") as s:
            assert s.level == "session"
            if mine.value != -1:
                problems.append(f"s{i} saw another session's value {mine.value}")
            mine.value = i
            await asyncio.sleep(0)
            if doubled.value != 2 * i:
                problems.append(f"s{i}: doubled {doubled.value} != {2 * i}")
            shared.update(lambda n: n + 1)
            await asyncio.sleep(0)
            if mine.value != i:
                problems.append(f"s{i}: mine {mine.value} != {i}")
            mine.update(lambda n: n + 1000)
            await asyncio.sleep(0)
            if sk.current_scope() is not s:
                problems.append(f"s{i}: current scope changed under the task")
            return doubled.value

    results = await asyncio.wait_for(asyncio.gather(*(task(i) for i in range(1000))), 60)
    assert problems == []
    assert results == [2 * (i + 1000) for i in range(1000)]
    assert shared.value == 1000
    with pytest.raises(sk.ScopeError):
        mine.value
    assert sk.app_scope().count("session") == 1000
    with sk.session("s500"):
        assert mine.value == 1500
        assert doubled.value == 3000


async def test_tasks_inherit_the_scope_they_were_created_in() -> None:
    mine = sk.atom("-", name="mine", scope="session")

    async def read() -> str:
        await asyncio.sleep(0)
        return str(mine.value)

    with sk.session("a"):
        mine.value = "A"
        ta = asyncio.ensure_future(read())
    with sk.session("b"):
        mine.value = "B"
        tb = asyncio.ensure_future(read())
    assert await asyncio.wait_for(asyncio.gather(ta, tb), 10) == ["A", "B"]


def test_threads_in_their_own_sessions(fast_switching: None) -> None:
    mine = sk.atom(0, name="mine", scope="session")
    problems: list[str] = []

    def work(i: int) -> None:
        with sk.session(f"t{i}"):
            for k in range(500):
                mine.value = i * 10_000 + k
                if mine.value != i * 10_000 + k:
                    problems.append(f"t{i}: read {mine.value}")

    join_all(start_threads(8, work))
    assert problems == []
    for i in range(8):
        with sk.session(f"t{i}"):
            assert mine.value == i * 10_000 + 499


def test_threads_do_not_inherit_the_current_scope() -> None:
    got: list[Any] = []
    with sk.session("outer") as s:
        t = threading.Thread(target=lambda: got.append(sk.current_scope()), daemon=True)
        t.start()
        t.join(JOIN_TIMEOUT)
    assert not t.is_alive()
    assert got and got[0] is not s
    assert got[0].level == "app"
