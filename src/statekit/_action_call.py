"""The bookkeeping of actions: one scope's status cell and one call's handle.

:class:`Cell` holds the reactive status signals of an action in one scope and
the calls in flight there; :class:`ActionCall` is one call (the awaitable an
async action returns). The policy logic that moves calls between the cell's
collections lives in ``_action.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _engine
from ._engine import ComputedNode, Node, SignalNode
from ._scope import Scope
from .exceptions import StatekitError

if TYPE_CHECKING:
    from ._action import Action

__all__ = [
    "ActionCall",
    "Cell",
    "cancel_task",
    "current_call",
    "refuse_in_computed",
    "resolve",
    "running_loop",
    "task_done",
    "wake",
]

R = TypeVar("R")

_lock = _engine.lock
_BATCH = _engine.Batch()
_write = _engine.write_signal
_ident = threading.get_ident

# The call whose body runs in this context: lets a ``queue`` or ``latest``
# action refuse to call itself (it would wait for, or cancel, itself).
current_call: contextvars.ContextVar[ActionCall[Any] | None] = contextvars.ContextVar(
    "statekit_action_call", default=None
)


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Cell(Node):
    """One scope's status signals and the calls in flight there."""

    __slots__ = (
        "__weakref__",
        "error",
        "holder",
        "landed",
        "live",
        "pending",
        "queued",
        "result",
        "running",
        "seq",
        "waiting",
    )

    def __init__(self, name: str, scope: Scope, initial: Any) -> None:
        super().__init__(0, name, scope)
        self.pending = SignalNode(False, f"{name}.pending", scope, None)
        self.running = SignalNode(0, f"{name}.running", scope, None)
        self.queued = SignalNode(0, f"{name}.queued", scope, None)
        self.result = SignalNode(initial, f"{name}.result", scope, None)
        self.error = SignalNode(None, f"{name}.error", scope, None)
        # Calls that are executing and may still land (insertion ordered).
        self.live: dict[ActionCall[Any], None] = {}
        # ``queue`` policy: calls waiting for their turn, and the call that
        # holds the turn until it has *finished* (even once cancelled, so
        # that a cancelled call's cleanup never overlaps the next call).
        self.waiting: deque[ActionCall[Any]] = deque()
        self.holder: ActionCall[Any] | None = None
        self.seq = 0  # calls admitted so far
        self.landed = 0  # seq of the newest call whose outcome landed

    def signals(self) -> tuple[SignalNode, ...]:
        return (self.pending, self.running, self.queued, self.result, self.error)

    def count(self) -> None:
        """Write the status counters (under the lock, inside a batch).

        Reading ``.value`` first is safe under the engine lock and skips the
        write machinery for the counters that did not move (most of them).
        """
        running, queued = len(self.live), len(self.waiting)
        if self.running.value != running:
            _write(self.running, running)
        if self.queued.value != queued:
            _write(self.queued, queued)
        pending = running + queued > 0
        if self.pending.value is not pending:
            _write(self.pending, pending)


class ActionCall(Generic[R]):
    """One call of an async action: await it for the result.

    The call is already running (or queued) when you get it, so calls start
    in the order they are made. ``await call`` returns the result, raises the
    action's exception, or raises :class:`ActionCancelled` if the call was
    superseded (``latest``), cancelled or its scope disposed, or
    :class:`ActionDropped` if the ``drop`` policy ignored it. If the task that
    awaits the call is cancelled, the call is cancelled too and the awaiting
    task sees its own ``asyncio.CancelledError``.

    Example:
        >>> import asyncio, statekit as sk
        >>> @sk.action
        ... async def add(a: int, b: int) -> int:
        ...     await asyncio.sleep(0)
        ...     return a + b
        >>> async def main():
        ...     call = add(1, 2)
        ...     return call.done(), await call, call.done()
        >>> asyncio.run(main())
        (False, 3, True)
    """

    __slots__ = (
        "__weakref__",
        "_action",
        "_cell",
        "_future",
        "_seen",
        "_unlanded",
        "loop",
        "reason",
        "seq",
        "settled",
        "started",
        "task",
        "thread",
        "turn",
        "waiting",
    )

    def __init__(
        self, action: Action[Any, R], cell: Cell, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self._action = action
        self._cell = cell
        self.loop = loop
        self.thread = _ident()
        self.seq = 0
        self.reason: str | None = None  # why statekit cancelled it, if it did
        self.settled = False
        self.waiting = False
        self.started = False  # its task has begun (async)
        self.task: asyncio.Task[R] | None = None
        self.turn: asyncio.Future[None] | threading.Event | None = None
        self._future: asyncio.Future[R] | None = None
        self._seen = loop is None  # a sync caller always sees the outcome
        self._unlanded: BaseException | None = None

    # ------------------------------------------------------------ awaiting

    def __await__(self) -> Generator[Any, None, R]:
        self._seen = True
        assert self._future is not None
        return self._future.__await__()

    def done(self) -> bool:
        """Whether the call has finished (with a result, an error or cancelled)."""
        return self._future is not None and self._future.done()

    def result(self) -> R:
        """The result of a finished call (raises like ``await`` would).

        Raises ``asyncio.InvalidStateError`` if the call has not finished.
        """
        self._seen = True
        assert self._future is not None
        return self._future.result()

    def exception(self) -> BaseException | None:
        """The exception a finished call raises to its awaiter, or ``None``."""
        self._seen = True
        assert self._future is not None
        if self._future.cancelled():
            return asyncio.CancelledError()
        return self._future.exception()

    def add_done_callback(self, fn: Callable[[ActionCall[R]], Any]) -> None:
        """Call ``fn(call)`` on the loop once the call has finished."""
        assert self._future is not None
        self._future.add_done_callback(lambda _: fn(self))

    # ------------------------------------------------------------ status

    @property
    def dropped(self) -> bool:
        """Whether the ``drop`` policy ignored this call (it never ran)."""
        return self.reason == "dropped"

    @property
    def cancelled(self) -> bool:
        """Whether statekit cancelled this call (superseded, ``cancel()``, disposed, dropped)."""
        return self.reason is not None

    @property
    def action(self) -> Action[Any, R]:
        """The action this call belongs to."""
        return self._action

    def cancel(self) -> bool:
        """Cancel this call if it is still running or queued; return whether it was.

        Its caller gets :class:`ActionCancelled`; its result never lands.
        """
        cell = self._cell
        with _BATCH, _lock:
            return self._action._retire(cell, self, "cancelled")

    def __repr__(self) -> str:
        if self.reason is not None:
            state = self.reason
        elif self.settled:
            state = "done"
        elif self.waiting:
            state = "queued"
        else:
            state = "running"
        return f"<ActionCall {self._action.name!r} #{self.seq} {state}>"

    def __del__(self) -> None:
        # An error that reached neither an awaiter nor ``.error`` (a stale
        # parallel call, a cancelled call whose cleanup raised) must not be
        # lost silently: hand it to the error hook, like asyncio's
        # "exception never retrieved" but through statekit's hook.
        error = self._unlanded
        if error is not None and not self._seen:
            self._unlanded = None
            with contextlib.suppress(Exception):  # interpreter shutdown
                _engine.report(error, f"action {self._action.name!r} (a call nobody awaited)")


def refuse_in_computed(name: str) -> None:
    node = _engine.active_node()
    if isinstance(node, ComputedNode):
        raise StatekitError(
            f"computed {node.name!r} called action {name!r}: computed values must not "
            "have side effects (call actions from effects, event handlers or other actions)"
        )


def cancel_task(task: asyncio.Task[Any]) -> None:
    loop = task.get_loop()
    if running_loop() is loop:
        task.cancel()
        return
    with contextlib.suppress(RuntimeError):  # a closed loop never runs the task again
        loop.call_soon_threadsafe(task.cancel)


def resolve(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


def wake(call: ActionCall[Any]) -> None:
    """Tell a queued call its turn has come (or that it was cancelled)."""
    turn = call.turn
    if isinstance(turn, threading.Event):
        turn.set()
    elif turn is not None:
        loop = turn.get_loop()
        if running_loop() is loop:
            resolve(turn)
        else:
            with contextlib.suppress(RuntimeError):  # its loop is closed
                loop.call_soon_threadsafe(resolve, turn)


def task_done(
    call: ActionCall[Any], coro: Coroutine[Any, Any, Any], task: asyncio.Task[Any]
) -> None:
    if task.cancelled():
        if not call.settled:
            # Cancelled before its first step (its awaiter was cancelled at
            # once): ``_run`` never ran, so settle and close here.
            coro.close()
            with _BATCH:
                call._action._settle(call._cell, call, None, asyncio.CancelledError())
        return
    # The outcome reaches the awaiter, ``.error`` or the error hook (see
    # ActionCall.__del__); keep asyncio from logging it a second time.
    task.exception()
