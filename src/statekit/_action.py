"""``action``: sync and async workflows with reactive status, cancellation and
a concurrency policy.

An action is a definition like an atom: its *status* (``pending``,
``running``, ``queued``, ``result``, ``error``) and its concurrency
bookkeeping live in a scope, so a ``scope="session"`` action has one status
per session and two sessions never cancel or queue behind each other.

How a call goes (the bookkeeping of one scope's calls is a :class:`Cell`):

1. *admit*: under the engine lock the policy decides whether the call runs
   now, waits its turn (``queue``), is dropped (``drop``) or supersedes the
   running ones (``latest``); the status signals change in the same step, so
   ``pending`` is true as soon as the call returns its handle.
2. *run*: a sync body runs in one batch; an async body runs in a task, each
   synchronous stretch between two ``await``s in its own batch (a batch is
   per thread, so holding one across an ``await`` would delay other tasks'
   effects).
3. *settle*: the result or error lands in ``.result`` / ``.error`` together
   with the final status, in the same batch as the body's last stretch, and
   only if no newer call has landed already and the call was not cancelled:
   a stale result never wins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from . import _engine
from ._action_call import (
    ActionCall,
    Cell,
    cancel_task,
    current_call,
    refuse_in_computed,
    running_loop,
    task_done,
    wake,
)
from ._definition import Definition
from ._engine import Node
from ._frozen import freeze
from ._scope import Scope
from .exceptions import ActionCancelled, ActionDropped, ActionError, InvalidDefinition

__all__ = ["POLICIES", "Action", "ActionCall", "AsyncAction", "SyncAction", "action"]

P = ParamSpec("P")
R = TypeVar("R")
Policy = Literal["latest", "queue", "drop", "parallel"]
POLICIES: tuple[str, ...] = ("latest", "queue", "drop", "parallel")

_lock = _engine.lock
_BATCH = _engine.Batch()
_write = _engine.write_signal
_read = _engine.read_signal
_ident = threading.get_ident


class Action(Definition, Generic[P, R]):
    """An action's definition: a workflow with a concurrency policy and reactive status.

    Made by :func:`action`; :class:`SyncAction` and :class:`AsyncAction` add
    the call itself. The status below lives in the action's scope (``"app"``
    unless given) and is reactive: read it in computeds and effects.

    Example:
        >>> import statekit as sk
        >>> @sk.action
        ... def double(n: int) -> int:
        ...     return n * 2
        >>> isinstance(double, sk.Action), double.policy
        (True, 'parallel')
        >>> double(21), double.result, double.pending
        (42, 42, False)
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        policy: str,
        name: str | None,
        scope: str,
        initial: R | None,
    ) -> None:
        if not callable(fn):
            raise InvalidDefinition(f"action needs a function, got {fn!r}")
        label = name if name is not None else getattr(fn, "__name__", None)
        if policy not in POLICIES:
            raise InvalidDefinition(
                f"action {label or fn!r}: unknown policy {policy!r}; expected one of "
                + ", ".join(repr(p) for p in POLICIES)
            )
        super().__init__(label, scope, "action")
        self._fn = fn
        self._initial = freeze(initial)
        self.policy: str = policy
        # Look like the function (for introspection, e.g. inspect.signature).
        for attr in ("__module__", "__qualname__", "__doc__"):
            if hasattr(fn, attr):
                setattr(self, attr, getattr(fn, attr))
        self.__wrapped__ = fn
        # Methods: one bound action per instance, keyed by id and dropped
        # when the instance is collected (instances need not be hashable).
        self._bound: dict[int, Action[Any, R]] = {}
        self._bound_lock = threading.Lock()
        self._homes: weakref.WeakSet[Scope] = weakref.WeakSet()  # scopes holding a cell

    # ------------------------------------------------------------ methods

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """``obj.save`` is an action bound to ``obj``, with its own status and concurrency.

        Accessed on the class (``Todo.save``) the action itself is returned.
        """
        if instance is None:
            return self
        key = id(instance)
        bound = self._bound.get(key)
        if bound is not None:
            return bound
        with self._bound_lock:
            bound = self._bound.get(key)
            if bound is None:
                try:
                    weakref.finalize(instance, self._unbind, key)
                except TypeError:
                    raise InvalidDefinition(
                        f"action {self.name!r} is used as a method of "
                        f"{type(instance).__name__}, whose instances do not support weak "
                        "references (add '__weakref__' to its __slots__)"
                    ) from None
                bound = type(self)(
                    _weak_method(self._fn, instance),
                    policy=self.policy,
                    name=self.name,
                    scope=self.scope,
                    initial=self._initial,
                )
                bound.__wrapped__ = self._fn
                self._bound[key] = bound
        return bound

    def _unbind(self, key: int) -> None:
        """The instance is gone: free its bound action's cells in every scope."""
        bound = self._bound.pop(key, None)
        if bound is None:
            return
        for scope in list(bound._homes):
            node = scope._drop(bound)
            if node is not None:
                bound._release(scope, node)

    # ------------------------------------------------------------ cells

    def _make_node(self, scope: Scope) -> Cell:
        self._homes.add(scope)
        return Cell(self.name, scope, self._initial)

    def _cell(self) -> Cell:
        cell: Cell = self._node()
        return cell

    def _release(self, scope: Scope, node: Node) -> None:
        if isinstance(node, Cell):
            with _BATCH, _lock:
                for call in [*node.live, *node.waiting]:
                    self._retire(node, call, "disposed")
            for signal in node.signals():
                _engine.dispose_node(signal)
        super()._release(scope, node)

    # ------------------------------------------------------------ bookkeeping
    # Everything below runs under the engine lock and inside a batch: the
    # status writes of one step are seen together, and effects run after the
    # lock is released (they may call the action again).

    def _check_reentry(self, cell: Cell) -> None:
        if self.policy not in ("queue", "latest"):
            return
        outer = current_call.get()
        if outer is None or outer._cell is not cell or outer.settled:
            return
        if outer.task is not None:
            loop = running_loop()
            same = loop is not None and asyncio.current_task(loop) is outer.task
        else:
            same = outer.thread == _ident()
        if same:
            what = "wait for" if self.policy == "queue" else "cancel"
            raise ActionError(
                f"action {self.name!r} (policy {self.policy!r}) was called from inside its "
                f"own running call: it would {what} itself; call the function it wraps "
                f"({self.name}.__wrapped__) or use policy 'parallel'"
            )

    def _admit(self, cell: Cell, call: ActionCall[Any]) -> bool:
        """Apply the policy to a new call; ``False`` means it was dropped."""
        policy = self.policy
        if policy == "drop" and cell.live:
            call.reason = "dropped"
            call.settled = True
            return False
        if policy == "latest":
            for old in list(cell.live):
                # Counted once below: ``running`` goes 1 -> 1, no flicker.
                self._retire(cell, old, "superseded", count=False)
        cell.seq += 1
        call.seq = cell.seq
        if policy == "queue" and cell.holder is not None:
            call.waiting = True
            call.turn = threading.Event() if call.loop is None else call.loop.create_future()
            cell.waiting.append(call)
        else:
            if policy == "queue":
                cell.holder = call
            cell.live[call] = None
        cell.count()
        return True

    def _retire(
        self, cell: Cell, call: ActionCall[Any], reason: str, *, count: bool = True
    ) -> bool:
        """Cancel ``call`` (it no longer counts and will not land)."""
        if call.settled or call.reason is not None:
            return False
        call.reason = reason
        if call.waiting:
            # It never started: it is finished now. A sync waiter is woken
            # to raise; an async one gets the task's cancellation below.
            call.waiting = False
            call.settled = True
            cell.waiting.remove(call)
            if isinstance(call.turn, threading.Event):
                call.turn.set()
        else:
            cell.live.pop(call, None)
        if call.started and call.task is not None:
            cancel_task(call.task)
        if count:
            cell.count()
        return True

    def _settle(
        self, cell: Cell, call: ActionCall[Any], value: Any, error: BaseException | None
    ) -> None:
        """Record the end of ``call``; its outcome lands if it is the newest.

        The caller holds a batch (the body's last one, normally), so that the
        outcome, the status and the body's last writes are seen together.
        """
        with _lock:
            if call.settled:
                return
            call.settled = True
            cell.live.pop(call, None)
            if call.waiting:
                call.waiting = False
                cell.waiting.remove(call)
            if cell.holder is call:
                cell.holder = None
                if cell.waiting:
                    nxt = cell.waiting.popleft()
                    nxt.waiting = False
                    cell.holder = nxt
                    cell.live[nxt] = None
                    wake(nxt)
            # CancelledError, KeyboardInterrupt and the like are not the
            # action's failure: they never land.
            failed = isinstance(error, Exception)
            lands = call.reason is None and call.seq > cell.landed and (error is None or failed)
            if lands:
                cell.landed = call.seq
                if error is None:
                    _write(cell.result, freeze(value))
                if cell.error.value is not error:
                    _write(cell.error, error)
            elif failed:
                call._unlanded = error
            cell.count()

    # ------------------------------------------------------------ status

    @property
    def pending(self) -> bool:
        """Whether a call is running or queued in this scope (tracked).

        A call that was cancelled or superseded stops counting at once, even
        while its ``finally`` blocks still run.
        """
        return bool(_read(self._cell().pending))

    @property
    def running(self) -> int:
        """How many calls are executing in this scope (tracked)."""
        return int(_read(self._cell().running))

    @property
    def queued(self) -> int:
        """How many calls wait for their turn (``queue`` policy; tracked)."""
        return int(_read(self._cell().queued))

    @property
    def result(self) -> R | None:
        """The result of the newest successful call (``initial`` before one; tracked).

        A failed call leaves it as it was; a cancelled, superseded or stale
        call never changes it.
        """
        return _read(self._cell().result)  # type: ignore[no-any-return]

    @property
    def error(self) -> Exception | None:
        """The exception of the newest finished call, ``None`` if it succeeded (tracked)."""
        return _read(self._cell().error)  # type: ignore[no-any-return]

    def cancel(self) -> int:
        """Cancel every running and queued call in this scope; return how many.

        Each cancelled caller gets :class:`ActionCancelled`; ``pending`` turns
        false at once. A sync call cannot be interrupted: it runs to the end,
        but its result does not land.
        """
        cell = self._cell()
        with _BATCH, _lock:
            calls = [*cell.live, *cell.waiting]
            return sum(self._retire(cell, call, "cancelled") for call in calls)

    def reset(self) -> None:
        """Set ``result`` back to ``initial`` and ``error`` to ``None``; calls go on."""
        cell = self._cell()
        with _BATCH, _lock:
            _write(cell.result, self._initial)
            _write(cell.error, None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} policy={self.policy!r} scope={self.scope!r}>"


def _weak_method(fn: Callable[..., Any], instance: Any) -> Callable[..., Any]:
    """``fn`` bound to ``instance`` without keeping it alive (a running call does)."""
    ref = weakref.ref(instance)

    def method(*args: Any, **kwargs: Any) -> Any:
        obj = ref()
        if obj is None:  # pragma: no cover - the bound action dies with its instance
            raise ReferenceError(f"the instance {fn.__name__!r} was bound to is gone")
        return fn(obj, *args, **kwargs)

    return method


class SyncAction(Action[P, R]):
    """An action around a plain function; calling it runs the function now.

    The body runs untracked (an effect calling the action does not depend on
    what the action reads) and in one batch, together with the final status.
    The start is announced before the body runs, so an effect can show a
    spinner while a slow sync action runs in a worker thread.

    Policies across threads: ``queue`` runs calls one after another in the
    order they arrived; ``drop`` raises :class:`ActionDropped` at once to a
    call made while one runs; ``latest`` cannot interrupt a running sync call,
    so the superseded call finishes and returns to its caller, but its result
    never lands in ``.result``.

    Example:
        >>> import statekit as sk
        >>> total = sk.atom(0, name="total")
        >>> @sk.action(policy="queue")
        ... def add(n: int) -> int:
        ...     return total.update(lambda t: t + n)
        >>> add(2), add(3), add.result, total.value
        (2, 5, 5, 5)
    """

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        name = self.name
        refuse_in_computed(name)
        cell = self._cell()
        self._check_reentry(cell)
        call: ActionCall[R] = ActionCall(self, cell, None)
        with _BATCH, _lock:
            admitted = self._admit(cell, call)
        if not admitted:
            raise ActionDropped(name)
        turn = call.turn
        if isinstance(turn, threading.Event):
            turn.wait()
            if call.reason is not None:
                raise ActionCancelled(name, call.reason)
        token = current_call.set(call)
        try:
            with _BATCH:
                try:
                    value: R = _engine.untracked_call(lambda: self._fn(*args, **kwargs))
                except BaseException as exc:
                    self._settle(cell, call, None, exc)
                    raise
                self._settle(cell, call, value, None)
        finally:
            current_call.reset(token)
        return value


@types.coroutine
def _drive(
    action: Action[Any, Any], cell: Cell, call: ActionCall[Any], coro: Coroutine[Any, Any, Any]
) -> Generator[Any, Any, Any]:
    """Run ``coro`` to its end, each synchronous stretch in its own batch.

    The task awaiting this sees the futures ``coro`` yields, so sleeping,
    cancellation and exceptions behave as if the task ran ``coro`` itself.
    The last stretch and the call's settlement share one batch: the action's
    final writes and its status change are seen together.
    """
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        with _BATCH:
            try:
                if thrown is None:
                    yielded = coro.send(sent)
                else:
                    error, thrown = thrown, None
                    yielded = coro.throw(error)
            except StopIteration as stop:
                action._settle(cell, call, stop.value, None)
                return stop.value
            except BaseException as exc:
                action._settle(cell, call, None, exc)
                raise
        try:
            sent = yield yielded
        except BaseException as exc:  # cancellation and thrown errors go in
            thrown = exc
            sent = None


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class AsyncAction(Action[P, R]):
    """An action around an ``async def``: a call starts a task and returns an :class:`ActionCall`.

    Call it on a running event loop (``await login(...)``); from another
    thread use :meth:`submit`. The task runs in a copy of the caller's
    context, so it sees the caller's scope (session, user): its writes land
    in the caller's session. Each synchronous stretch between two ``await``s
    is one batch; the last one is batched with the final status change.

    - ``latest``: a new call cancels the running one; the cancelled caller
      gets :class:`ActionCancelled` (``reason="superseded"``), its ``finally``
      blocks run, and its result never lands even if it swallows the
      cancellation.
    - ``queue``: calls run one at a time in call order (a cancelled call's
      cleanup finishes before the next starts).
    - ``drop``: a call made while one runs never starts; awaiting it raises
      :class:`ActionDropped`.
    - ``parallel``: calls run concurrently; ``.result`` follows the newest
      call that finished, never an older one that finished later.

    Example:
        >>> import asyncio, statekit as sk
        >>> @sk.action(policy="latest")
        ... async def search(q: str) -> str:
        ...     await asyncio.sleep(0.01)
        ...     return q.upper()
        >>> async def main():
        ...     first, second = search("a"), search("ab")
        ...     try:
        ...         await first
        ...     except sk.ActionCancelled as exc:
        ...         print(exc)
        ...     return await second, search.result
        >>> asyncio.run(main())
        call to action 'search' was superseded by a newer call
        ('AB', 'AB')
    """

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> ActionCall[R]:
        name = self.name
        refuse_in_computed(name)
        loop = running_loop()
        if loop is None:
            raise ActionError(
                f"action {name!r} is async and needs a running event loop: call it from "
                f"async code (`await {name}(...)`), or from a thread with "
                f"`{name}.submit(loop, ...)`"
            )
        cell = self._cell()
        self._check_reentry(cell)
        made = self._fn(*args, **kwargs)  # a wrong signature raises here, changing nothing
        if isinstance(made, Coroutine):
            coro: Coroutine[Any, Any, R] = made
        elif inspect.isawaitable(made):
            coro = _as_coroutine(made)
        else:
            raise ActionError(
                f"action {name!r} is async but its function returned {type(made).__name__}, "
                "not an awaitable"
            )
        call: ActionCall[R] = ActionCall(self, cell, loop)
        with _BATCH, _lock:
            admitted = self._admit(cell, call)
        if admitted:
            # A ``latest`` call or ``cancel()`` from another thread may retire
            # this call before its task exists: ``_run`` checks first thing.
            call.task = loop.create_task(self._run(cell, call, coro), name=f"action {name}")
        else:
            coro.close()
            future: asyncio.Future[R] = loop.create_future()
            future.set_exception(ActionDropped(name))
            future.exception()  # retrieved: a dropped call is not an error to log
            call._future = future
            return call
        call._future = call.task
        call.task.add_done_callback(functools.partial(task_done, call, coro))
        return call

    async def _run(self, cell: Cell, call: ActionCall[R], coro: Coroutine[Any, Any, R]) -> R:
        current_call.set(call)  # the task's own copy of the context
        with _lock:
            # From here on a retirement cancels the task; before, it only
            # marks the call (cancelling a task that has not started would
            # skip this coroutine, and the awaiter would get a bare
            # CancelledError instead of ActionCancelled).
            call.started = True
            retired = call.reason is not None
        try:
            if retired:
                raise asyncio.CancelledError
            turn = call.turn
            if isinstance(turn, asyncio.Future):
                await turn
        except asyncio.CancelledError:
            coro.close()
            with _BATCH:
                self._settle(cell, call, None, None)
            if call.reason is not None:
                raise ActionCancelled(self.name, call.reason) from None
            raise
        try:
            value: R = await _drive(self, cell, call, coro)
        except asyncio.CancelledError:
            if call.reason is not None:
                raise ActionCancelled(self.name, call.reason) from None
            raise
        except BaseException as exc:
            if call.reason is not None:
                raise ActionCancelled(self.name, call.reason) from exc
            raise
        if call.reason is not None:  # the body swallowed the cancellation
            raise ActionCancelled(self.name, call.reason)
        return value

    def submit(
        self, loop: asyncio.AbstractEventLoop, /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]:
        """Call the action on ``loop`` from any thread; return a concurrent future.

        The call runs in a copy of the submitting thread's context (its
        scope). The future gets the result, the exception, or
        :class:`ActionCancelled` / :class:`ActionDropped`.

        Example:
            >>> import asyncio, threading, statekit as sk
            >>> @sk.action
            ... async def ping() -> str:
            ...     return "pong"
            >>> async def main():
            ...     loop = asyncio.get_running_loop()
            ...     out = []
            ...     worker = threading.Thread(target=lambda: out.append(ping.submit(loop)))
            ...     worker.start(); worker.join()
            ...     return await asyncio.wrap_future(out[0])
            >>> asyncio.run(main())
            'pong'
        """
        context = contextvars.copy_context()
        out: concurrent.futures.Future[R] = concurrent.futures.Future()

        def start() -> None:
            if not out.set_running_or_notify_cancel():
                return
            try:
                call = self(*args, **kwargs)
            except BaseException as exc:
                out.set_exception(exc)
                return
            call._seen = True

            def done(finished: asyncio.Future[R]) -> None:
                if finished.cancelled():
                    out.set_exception(asyncio.CancelledError())
                elif (error := finished.exception()) is not None:
                    out.set_exception(error)
                else:
                    out.set_result(finished.result())

            assert call._future is not None
            call._future.add_done_callback(done)

        loop.call_soon_threadsafe(start, context=context)
        return out


class _Decorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncAction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> SyncAction[P, R]: ...


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


@overload
def action(  # type: ignore[overload-overlap]
    fn: Callable[P, Coroutine[Any, Any, R]],
    /,
    *,
    policy: Policy = ...,
    name: str | None = ...,
    scope: str = ...,
    initial: R | None = ...,
) -> AsyncAction[P, R]: ...


@overload
def action(
    fn: Callable[P, R],
    /,
    *,
    policy: Policy = ...,
    name: str | None = ...,
    scope: str = ...,
    initial: R | None = ...,
) -> SyncAction[P, R]: ...


@overload
def action(
    fn: None = None,
    /,
    *,
    policy: Policy = ...,
    name: str | None = ...,
    scope: str = ...,
    initial: Any = ...,
) -> _Decorator: ...


def action(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    policy: Policy = "parallel",
    name: str | None = None,
    scope: str = "app",
    initial: Any = None,
) -> Any:
    """Define an action: a sync or async workflow with a policy and reactive status.

    Use it bare (``@sk.action``) or with options. ``policy`` says what a call
    made while another runs does: ``"parallel"`` (default: both run),
    ``"latest"`` (the new one cancels the running one), ``"queue"`` (it waits
    its turn) or ``"drop"`` (it is ignored). ``scope`` is the level the
    status and the concurrency live at: with ``scope="session"`` each session
    has its own ``pending``/``result`` and its own queue. ``initial`` is
    ``.result`` before the first success.

    An ``async def`` gives an :class:`AsyncAction` (calling it returns an
    awaitable :class:`ActionCall`), anything else a :class:`SyncAction`.
    Exceptions reach the caller and ``.error``; they are never swallowed.

    Example:
        >>> import asyncio, statekit as sk
        >>> user = sk.atom(None, name="user")
        >>> @sk.action(policy="drop")
        ... async def login(email: str) -> dict:
        ...     await asyncio.sleep(0)
        ...     user.value = {"email": email}
        ...     return user.value
        >>> async def main():
        ...     first = login("a@b.c")
        ...     second = login("x@y.z")  # dropped: the first is still running
        ...     print(login.pending, second.dropped)
        ...     await first
        ...     return login.pending, login.result
        >>> asyncio.run(main())
        True True
        (False, {'email': 'a@b.c'})
    """

    def make(target: Callable[..., Any]) -> Action[Any, Any]:
        kind = AsyncAction if _is_async(target) else SyncAction
        return kind(target, policy=policy, name=name, scope=scope, initial=initial)

    if fn is None:
        return make
    return make(fn)
