"""What an action costs over the same job written by hand.

There is no installable peer with the same contract (flet-asp's ``Action``
needs flet < 0.29 and has no policy or status), so each case runs against its
floor: the same job by hand with statekit atoms — a ``loading`` atom set
before the call, ``result``/``error``/``loading`` written in one batch after
it, and for async a plain asyncio task (and, for ``latest``, cancelling the
previous task by hand). The floor has no policy bookkeeping, no per-call
handle and no stale-result guard. Every case first checks that statekit and
the floor compute the same thing, then times both, alternating repeats; the
table gives the medians and the ratio.

Run: ``.venv/bin/python benchmarks/actions.py`` (about 30 s; ``--quick``: 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

try:
    import statekit as sk
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import statekit as sk

Case = tuple[str, int, Callable[[], Any], Callable[[], Any]]


def time_sync(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def time_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    async def loop() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        return (time.perf_counter() - start) / n * 1e6

    return asyncio.run(loop())


class ByHand:
    """The status an action keeps, kept by hand in three atoms."""

    def __init__(self, scope: str = "app") -> None:
        self.loading = sk.atom(False, scope=scope)
        self.result: sk.Atom[Any] = sk.atom(None, scope=scope)
        self.error: sk.Atom[Any] = sk.atom(None, scope=scope)

    def run(self, fn: Callable[[int], int], i: int) -> int:
        self.loading.value = True
        with sk.batch():
            try:
                value = fn(i)
            except Exception as exc:
                self.error.value = exc
                self.loading.value = False
                raise
            self.result.value = value
            self.error.value = None
            self.loading.value = False
        return value

    async def run_async(self, task: Awaitable[int]) -> int:
        self.loading.value = True
        try:
            value = await task
        except Exception as exc:
            with sk.batch():
                self.error.value = exc
                self.loading.value = False
            raise
        with sk.batch():
            self.result.value = value
            self.error.value = None
            self.loading.value = False
        return value


def plain(i: int) -> int:
    return i + 1


def sync_cases() -> list[Case]:
    hand = ByHand()
    cases: list[Case] = []
    for policy in ("parallel", "queue", "latest", "drop"):
        act = sk.action(plain, policy=policy, name=f"sync {policy}")  # type: ignore[call-overload]
        cases.append(
            (f"sync call ({policy})", 1, lambda act=act: act(1), lambda: hand.run(plain, 1))
        )

    watched = sk.action(plain, name="watched")
    watched_hand = ByHand()
    seen: list[bool] = []
    sk.effect(lambda: seen.append(watched.pending))
    sk.effect(lambda: seen.append(watched_hand.loading.value))
    cases.append(
        (
            "sync call, effect on .pending",
            1,
            lambda: watched(1),
            lambda: watched_hand.run(plain, 1),
        )
    )

    session_act = sk.action(plain, name="per session", scope="session")
    session_hand = ByHand("session")
    with sk.session("bench") as session:
        pass
    session.__enter__()  # the scope itself stays current for the rest of the run
    cases.append(
        (
            "sync call (scope='session')",
            1,
            lambda: session_act(1),
            lambda: session_hand.run(plain, 1),
        )
    )
    return cases


def async_cases() -> list[tuple[str, Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]]:
    async def work(i: int) -> int:
        await asyncio.sleep(0)
        return i + 1

    hand = ByHand()

    def task_floor() -> Awaitable[int]:
        return hand.run_async(asyncio.get_running_loop().create_task(work(1)))

    cases = []
    for policy in ("parallel", "queue", "latest", "drop"):
        act = sk.action(work, policy=policy, name=f"async {policy}")  # type: ignore[call-overload]
        cases.append((f"async call+await ({policy})", lambda act=act: act(1), task_floor))

    latest = sk.action(work, policy="latest", name="burst")

    async def burst_statekit() -> int:
        calls = [latest(i) for i in range(100)]
        result = await calls[-1]
        await asyncio.gather(*calls[:-1], return_exceptions=True)
        return result  # type: ignore[no-any-return]

    async def burst_floor() -> int:
        # The hand-written pattern: cancel the previous task on each new one.
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[int]] = []
        for i in range(100):
            if tasks:
                tasks[-1].cancel()
            tasks.append(loop.create_task(work(i)))
        result = await hand.run_async(tasks[-1])
        await asyncio.gather(*tasks[:-1], return_exceptions=True)
        return result

    cases.append(("latest: burst of 100 calls", burst_statekit, burst_floor))
    return cases


def check() -> None:
    """statekit and the floors agree (results and outcomes)."""

    async def main() -> None:
        for _, ours, floor in async_cases():
            assert await ours() == await floor()

    asyncio.run(main())
    for _, _, ours, floor in sync_cases():
        assert ours() == floor()


def measure(
    run: Callable[[], float], floor: Callable[[], float], repeat: int
) -> tuple[float, float]:
    ours_times: list[float] = []
    floor_times: list[float] = []
    for _ in range(repeat):
        ours_times.append(run())
        floor_times.append(floor())
    return statistics.median(ours_times), statistics.median(floor_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    args = parser.parse_args()
    repeat = 3 if args.quick else 5
    n_sync = 5_000 if args.quick else 50_000
    n_async = 1_000 if args.quick else 10_000
    started = time.perf_counter()
    app = sk.new_app_scope("bench")
    app.__enter__()
    check()
    rows: list[tuple[str, float, float]] = []
    for name, _, ours, floor in sync_cases():
        mine, base = measure(
            lambda ours=ours: time_sync(ours, n_sync),
            lambda floor=floor: time_sync(floor, n_sync),
            repeat,
        )
        rows.append((name, base, mine))
    for name, ours_a, floor_a in async_cases():
        count = n_async // 100 if name.startswith("latest: burst") else n_async
        mine, base = measure(
            lambda ours_a=ours_a, count=count: time_async(ours_a, count),
            lambda floor_a=floor_a, count=count: time_async(floor_a, count),
            repeat,
        )
        rows.append((name, base, mine))
    print("| case | floor µs | statekit µs | x floor |\n| --- | --- | --- | --- |")
    for name, base, mine in rows:
        print(f"| {name} | {base:,.2f} | {mine:,.2f} | {mine / base:.1f} |")
    print(
        f"\nfloor: the same job by hand with statekit atoms (see the docstring); "
        f"median of {repeat} alternating repeats; total {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
