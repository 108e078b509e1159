"""Async computed values: ``@computed async def ...``.

Each scope's value is a small cell: three signals (value, loading, error)
and a watcher that starts a run whenever a dependency changes. Dependencies
are the values read before the coroutine's first ``await`` (like Vue's
``watchEffect``): the coroutine's first step runs inside the watcher, the rest
in an asyncio task. A new run cancels the previous one and a run id decides
whose result lands, so a stale result never wins.
"""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

from . import _engine
from ._definition import Definition
from ._engine import Node, SignalNode, WatcherNode
from ._scope import Scope
from ._subscribe import scope_runner, subscribe_node

__all__ = ["AsyncComputed"]

T = TypeVar("T")


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Generator[Any, Any, Any]:
    """Continue a coroutine already stepped once, forwarding what it yields.

    The task that awaits this sees the same futures the coroutine yields, so
    sleeping, cancellation and exceptions behave exactly as if the task had
    run the coroutine from the start.
    """
    yielded = first
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # cancellation and thrown errors go in
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


class _Cell(Node):
    """The per-scope state of an async computed."""

    __slots__ = ("error", "loading", "lock", "run_id", "task", "value", "watcher")

    def __init__(self, name: str, scope: Scope, initial: Any) -> None:
        super().__init__(0, name, scope)
        self.value = SignalNode(initial, f"{name}.value", scope, None)
        self.loading = SignalNode(True, f"{name}.loading", scope, None)
        self.error = SignalNode(None, f"{name}.error", scope, None)
        self.watcher: WatcherNode | None = None
        self.task: asyncio.Task[Any] | None = None
        self.run_id = 0
        self.lock = threading.Lock()

    def settle(self, run_id: int, value: Any, error: BaseException | None) -> None:
        if run_id != self.run_id:
            return  # a newer run started: this result is stale
        with _engine.Batch():
            if error is None:
                _engine.write_signal(self.value, value)
            _engine.write_signal(self.error, error)
            _engine.write_signal(self.loading, False)

    def dispose(self) -> None:
        if self.watcher is not None:
            _engine.dispose_watcher(self.watcher)
        task = self.task
        if task is not None and not task.done():
            task.get_loop().call_soon_threadsafe(task.cancel)
        for node in (self.value, self.loading, self.error):
            _engine.dispose_node(node)


class AsyncComputed(Definition, Generic[T]):
    """A value computed by a coroutine, re-run when what it read changes.

    ``.value`` is the latest settled value (``initial`` before the first),
    ``.loading`` is true while a run is in flight, ``.error`` holds the last
    run's exception (``None`` on success), and ``await .wait()`` gives the
    settled value of the current run. Without a running event loop, a run
    completes synchronously on first read.

    Example:
        >>> import asyncio, statekit as sk
        >>> uid = sk.atom(1)
        >>> @sk.computed
        ... async def user() -> dict:
        ...     current = uid.value  # read before the first await: tracked
        ...     await asyncio.sleep(0)
        ...     return {"id": current}
        >>> async def main():
        ...     first = await user.wait()
        ...     uid.value = 2
        ...     return first, await user.wait()
        >>> asyncio.run(main())
        ({'id': 1}, {'id': 2})
    """

    __slots__ = ("_equals", "_fn", "_initial")

    def __init__(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        name: str | None = None,
        scope: str | None = None,
        equals: Callable[[T, T], bool] | None = None,
        initial: T | None = None,
    ) -> None:
        super().__init__(name or getattr(fn, "__name__", None), scope or "app", "async computed")
        self._fn = fn
        self._equals = equals
        self._initial = initial

    def _make_node(self, scope: Scope) -> _Cell:
        return _Cell(self.name, scope, self._initial)

    def _release(self, scope: Scope, node: Node) -> None:
        if isinstance(node, _Cell):
            node.dispose()
        super()._release(scope, node)

    def _cell(self) -> _Cell:
        cell: _Cell = self._node()
        if cell.watcher is None:
            with cell.lock:
                if cell.watcher is None:
                    scope = cell.owner
                    assert isinstance(scope, Scope)
                    watcher = WatcherNode(
                        lambda: self._start(cell), f"{self.name} runner", scope, scope_runner(scope)
                    )
                    cell.watcher = watcher
                    _engine.start_watcher(watcher)
        return cell

    def _start(self, cell: _Cell) -> None:
        """Begin a run (inside the watcher, so the first step is tracked)."""
        cell.run_id += 1
        run_id = cell.run_id
        previous = cell.task
        cell.task = None
        if previous is not None and not previous.done():
            previous.get_loop().call_soon_threadsafe(previous.cancel)
        _engine.write_signal(cell.loading, True)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            # No loop in this thread: run the whole coroutine here, tracked.
            try:
                result = asyncio.run(_as_coroutine(self._fn()))
            except Exception as exc:
                cell.settle(run_id, None, exc)
            else:
                cell.settle(run_id, result, None)
            return
        coro = self._fn()
        if not isinstance(coro, Coroutine):
            cell.settle(run_id, coro, None)
            return
        try:
            first = coro.send(None)
        except StopIteration as stop:
            cell.settle(run_id, stop.value, None)
            return
        except Exception as exc:
            cell.settle(run_id, None, exc)
            return
        cell.task = loop.create_task(self._finish(cell, run_id, coro, first))

    async def _finish(
        self, cell: _Cell, run_id: int, coro: Coroutine[Any, Any, Any], first: Any
    ) -> None:
        try:
            result = await _resume(coro, first)
        except asyncio.CancelledError:
            return
        except Exception as exc:
            cell.settle(run_id, None, exc)
        else:
            cell.settle(run_id, result, None)

    @property
    def value(self) -> T:
        """The latest settled value (``initial`` until the first run ends)."""
        return _engine.read_signal(self._cell().value)  # type: ignore[no-any-return]

    def get(self) -> T:
        """Like ``.value``."""
        return self.value

    def peek(self) -> T:
        """The latest settled value, untracked."""
        return self._cell().value.value  # type: ignore[no-any-return]

    @property
    def loading(self) -> bool:
        """Whether a run is in flight."""
        return bool(_engine.read_signal(self._cell().loading))

    @property
    def error(self) -> BaseException | None:
        """The exception of the last settled run, or ``None``."""
        return _engine.read_signal(self._cell().error)  # type: ignore[no-any-return]

    async def wait(self) -> T:
        """Wait for the current run (and any run it triggers) to settle; return its value.

        Raises the run's exception if it failed.
        """
        cell = self._cell()
        while True:
            task = cell.task
            if task is None or task.done():
                if cell.loading.value and task is not None:
                    await asyncio.sleep(0)
                    continue
                break
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        error = cell.error.value
        if error is not None:
            raise error
        return cell.value.value  # type: ignore[no-any-return]

    def refresh(self) -> None:
        """Start a new run now, even if nothing changed."""
        cell = self._cell()
        assert cell.watcher is not None
        self._start(cell)

    def subscribe(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Call ``callback(value)`` after each settled change; return ``off``."""
        return subscribe_node(self._cell().value, _engine.read_signal, callback)


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
