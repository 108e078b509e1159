"""The event streams' shared clock: deadlines rounded up to a tick, one loop timer per tick."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from statekit.server._clock import TICK, Clock, clock_of

pytestmark = pytest.mark.timeout(30)


def _count_timers(loop: asyncio.AbstractEventLoop) -> list[Any]:
    """Record the callbacks of every timer the loop is asked for from now on."""
    made: list[Any] = []
    call_at = loop.call_at

    def counting(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(callback)
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting  # type: ignore[method-assign]
    return made


async def test_callbacks_due_in_one_tick_share_one_loop_timer() -> None:
    loop = asyncio.get_running_loop()
    made = _count_timers(loop)
    clock = Clock(loop)
    fired: list[tuple[int, float]] = []
    when = loop.time() + 0.02
    for i in range(50):
        clock.at(when + (i % 2) * TICK / 4, lambda i=i: fired.append((i, loop.time())))
    assert len(made) <= 2  # a tick boundary may fall between the two deadlines
    await asyncio.sleep(0.1)
    assert sorted(i for i, _ in fired) == list(range(50))  # each once
    assert all(at >= when for _, at in fired)  # never before the deadline


async def test_deadlines_in_other_ticks_fire_in_order() -> None:
    loop = asyncio.get_running_loop()
    clock = clock_of(loop)
    assert clock_of(loop) is clock  # one per loop
    fired: list[str] = []
    now = loop.time()
    clock.at(now + 0.03, lambda: fired.append("late"))
    clock.at(now + 0.01, lambda: fired.append("early"))
    clock.at(now - 1.0, lambda: fired.append("past"))  # already due: on the next tick
    for _ in range(200):
        if len(fired) == 3:
            break
        await asyncio.sleep(0.01)
    assert fired == ["past", "early", "late"]


def test_each_loop_has_its_own_clock() -> None:
    clocks = []
    for _ in range(2):
        loop = asyncio.new_event_loop()
        try:
            clocks.append(clock_of(loop))
            assert clock_of(loop) is clocks[-1]
        finally:
            loop.close()
    assert clocks[0] is not clocks[1]
