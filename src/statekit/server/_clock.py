"""Shared timers for the event streams of one event loop.

A waiting event stream has deadlines: the end of its event interval, its
next heartbeat, the next check that the server is not shutting down. A
``loop.call_later`` per wait makes a timer handle, pushes it on the loop's
timer heap and cancels it again, for nearly every event of every stream.
Streams' deadlines fall close together (a commit wakes them all at once, so
their intervals end together too), so :class:`Clock` rounds each deadline
up to the next tick and keeps one loop timer per tick, whatever the number
of callbacks due then. A callback fires at its deadline or less than one
tick later, never earlier.

Example:
    >>> import asyncio
    >>> async def main() -> list[str]:
    ...     loop = asyncio.get_running_loop()
    ...     clock, fired = clock_of(loop), []
    ...     for name in ("a", "b", "c"):
    ...         clock.at(loop.time() + 0.01, lambda name=name: fired.append(name))
    ...     await asyncio.sleep(0.05)
    ...     return fired
    >>> asyncio.run(main())
    ['a', 'b', 'c']
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

__all__ = ["TICK", "Clock", "clock_of"]

TICK = 0.001  # seconds: what a deadline may be rounded up by

_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Clock] = weakref.WeakKeyDictionary()


class Clock:
    """Callbacks at deadlines, one loop timer per tick (see the module docstring)."""

    __slots__ = ("_due", "_loop", "_tick")

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = TICK) -> None:
        self._loop = loop
        self._tick = tick
        self._due: dict[int, list[Callable[[], None]]] = {}

    def at(self, when: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the loop at ``when`` (loop time) or up to a tick later."""
        slot = -int(-when // self._tick)  # rounded up: never before the deadline
        waiting = self._due.get(slot)
        if waiting is None:
            self._due[slot] = [callback]
            self._loop.call_at(slot * self._tick, self._fire, slot)
        else:
            waiting.append(callback)

    def _fire(self, slot: int) -> None:
        for callback in self._due.pop(slot, ()):
            callback()


def clock_of(loop: asyncio.AbstractEventLoop) -> Clock:
    """The clock of ``loop`` (made on first use, gone with the loop)."""
    clock = _clocks.get(loop)
    if clock is None:
        clock = _clocks[loop] = Clock(loop)
    return clock
