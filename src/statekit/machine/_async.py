"""The asyncio twin, :class:`AsyncStateMachine`: async guards and hooks, run-to-completion."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Mapping
from typing import Any, TypeVar

from ._base import BACK, EVENT, START, TARGET, MachineBase, report
from ._definition import Call, Edge
from ._spec import EMPTY_PAYLOAD, Transition

__all__ = ["AsyncStateMachine"]

S = TypeVar("S")

_Request = tuple[int, Any, Mapping[str, Any], "asyncio.Future[Any]"]


class AsyncStateMachine(MachineBase[S]):
    """A state machine for asyncio: guards, hooks and listeners may be ``async``.

    It is described exactly like :class:`StateMachine` (constructor or class
    syntax) and runs hooks in the same order; ``send``, ``transition``,
    ``back``, ``can_send`` and ``can_transition`` are coroutines.

    **Run-to-completion**: requests from any number of tasks are queued and
    run one at a time, in the order they were made; a move's hooks all finish
    (awaits included) before the next move starts. An event sent from a hook
    runs right after the current move, before other tasks' requests. The
    initial state's entry hooks run at :meth:`start` or before the first
    request, whichever comes first. Use a machine from one event loop.

    Example:
        >>> import asyncio
        >>> from statekit.machine import AsyncStateMachine, State
        >>> class Job(AsyncStateMachine[str]):
        ...     queued = State(initial=True)
        ...     running = State()
        ...     done = State(final=True)
        ...     run = queued.to(running)
        ...     finish = running.to(done)
        ...     async def on_enter_running(self, t):
        ...         await asyncio.sleep(0)
        >>> async def main():
        ...     job = Job()
        ...     await job.run()
        ...     return await job.send("finish")
        >>> asyncio.run(main())
        'done'
    """

    _is_async = True
    _statekit_base = True

    def _prepare(self) -> None:
        self._queue: deque[_Request] = deque()
        self._processor: asyncio.Task[Any] | None = None

    def _ready(self, restored: bool) -> None:
        # Entry hooks are async here: ``start()`` (or the first event) runs them.
        self._started = restored

    # -- moving ---------------------------------------------------------------

    async def start(self) -> S:
        """Run the initial state's entry hooks (once); return the current state.

        Example:
            >>> import asyncio
            >>> from statekit.machine import AsyncStateMachine
            >>> m = AsyncStateMachine(initial_state="a", transitions={"a": []},
            ...                       on_enter={"a": lambda: print("entered a")})
            >>> asyncio.run(m.start())
            entered a
            'a'
        """
        return await self._submit(START, None, EMPTY_PAYLOAD)

    async def send(self, event: str, /, **payload: Any) -> S:
        """Send ``event`` with a payload; return the state once it has run.

        Example:
            >>> import asyncio
            >>> from statekit.machine import AsyncStateMachine
            >>> m = AsyncStateMachine(initial_state="off",
            ...                       events={"toggle": {"off": "on", "on": "off"}})
            >>> asyncio.run(m.send("toggle"))
            'on'
        """
        return await self._submit(EVENT, event, payload)

    async def transition(self, target: S, /, **payload: Any) -> S:
        """Move to ``target`` if an arrow leads there; see :meth:`StateMachine.transition`.

        Example:
            >>> import asyncio
            >>> from statekit.machine import AsyncStateMachine
            >>> m = AsyncStateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
            >>> asyncio.run(m.transition("b"))
            'b'
        """
        return await self._submit(TARGET, target, payload)

    async def back(self) -> S:
        """Undo the last move; see :meth:`StateMachine.back`.

        Example:
            >>> import asyncio
            >>> from statekit.machine import AsyncStateMachine
            >>> m = AsyncStateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
            >>> async def main():
            ...     await m.transition("b")
            ...     return await m.back()
            >>> asyncio.run(main())
            'a'
        """
        return await self._submit(BACK, None, EMPTY_PAYLOAD)

    async def can_send(self, event: str, /, **payload: Any) -> bool:
        """Whether ``event`` would be allowed now (guards run, nothing moves).

        Example:
            >>> import asyncio
            >>> from statekit.machine import AsyncStateMachine
            >>> m = AsyncStateMachine(initial_state="a", events={"go": {"a": "b"}})
            >>> asyncio.run(m.can_send("go"))
            True
        """
        return await self._can(EVENT, event, payload)

    async def can_transition(self, target: S, /, **payload: Any) -> bool:
        """Whether a move to ``target`` would be allowed now (guards run, nothing moves).

        Example:
            >>> import asyncio
            >>> from statekit.machine import AsyncStateMachine
            >>> m = AsyncStateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
            >>> asyncio.run(m.can_transition("a"))
            False
        """
        return await self._can(TARGET, target, payload)

    # -- machinery ----------------------------------------------------------------

    async def _submit(self, kind: int, key: Any, payload: Mapping[str, Any]) -> S:
        task = asyncio.current_task()
        if self._processor is not None and task is self._processor:
            # Sent from one of our own hooks or listeners: run after the
            # current move, before anyone else's (awaiting here would deadlock).
            self._internal.append((kind, key, payload))
            return self._state
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((kind, key, payload, future))
        if self._processor is None:
            await self._drain()
        result: S = await future
        return result

    async def _drain(self) -> None:
        # The task that finds the machine idle runs the queue for everyone,
        # so an uncontended request costs no extra task.
        self._processor = asyncio.current_task()
        try:
            while self._queue:
                kind, key, payload, future = self._queue.popleft()
                if future.done():  # its caller was cancelled while waiting
                    continue
                try:
                    if not self._started:
                        await self._enter_initial()
                    self._running = True
                    try:
                        await self._step(kind, key, payload)
                        while self._internal:
                            await self._step(*self._internal.popleft())
                    finally:
                        self._running = False
                except asyncio.CancelledError:
                    self._internal.clear()
                    future.cancel()
                    raise
                except BaseException as exc:
                    self._internal.clear()
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(self._state)
                await self._deliver()
        finally:
            self._processor = None
            if self._queue:
                # We were cancelled with requests still waiting: hand them on.
                asyncio.get_running_loop().create_task(self._drain())

    async def _enter_initial(self) -> None:
        t = Transition(None, self._state, None)
        for fn in self._def.enter[self._state]:
            await _call(fn, self, t)
        self._started = True

    async def _can(self, kind: int, key: Any, payload: Mapping[str, Any]) -> bool:
        table = self._events if kind == EVENT else self._targets
        edges = table[self._state].get(key)
        if edges is None:
            return False
        for edge in edges:
            if await self._passes(edge, Transition(self._state, edge.target, edge.event, payload)):
                return True
        return False

    async def _passes(self, edge: Edge, t: Transition) -> bool:
        for guard in edge.guards:
            if not await _call(guard, self, t):
                return False
        return True

    async def _step(self, kind: int, key: Any, payload: Mapping[str, Any]) -> None:
        source = self._state
        if kind == START:
            return
        if kind == BACK:
            await self._step_back(source)
            return
        refused: list[str] = []
        for edge in self._edges(kind, key):
            t = Transition(source, edge.target, edge.event, payload)
            for guard, name in zip(edge.guards, edge.guard_names, strict=True):
                if not await _call(guard, self, t):
                    refused.append(name)
                    break
            else:
                break
        else:
            raise self._refused(kind, key, refused)
        try:
            for fn in edge.before:
                await _call(fn, self, t)
            for fn in edge.exits:
                await _call(fn, self, t)
            for fn in edge.on:
                await _call(fn, self, t)
            self._state = edge.target
            for fn in edge.enters:
                await _call(fn, self, t)
            for fn in edge.after:
                await _call(fn, self, t)
        except BaseException:
            self._state = source
            raise
        self._history.append((edge.event, source, edge.target))
        if self._listeners:
            self._pending.append(t)

    async def _step_back(self, source: S) -> None:
        if not self._history:
            raise self._no_history()
        _, previous, _ = self._history[-1]
        t = Transition(source, previous, None)
        try:
            for fn in self._def.exit[source]:
                await _call(fn, self, t)
            self._state = previous
            for fn in self._def.enter[previous]:
                await _call(fn, self, t)
        except BaseException:
            self._state = source
            raise
        self._history.pop()
        if self._listeners:
            self._pending.append(t)

    async def _deliver(self) -> None:
        while self._pending:
            t = self._pending.popleft()
            for fn in self._listeners:
                try:
                    result = fn(t)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    report(exc, f"listener {fn!r} of state machine {self.name!r}")


async def _call(fn: Call, machine: Any, t: Transition) -> Any:
    result = fn(machine, t)
    if inspect.isawaitable(result):
        result = await result
    return result
