"""Binding store copies to a backend: load on creation, commit through it, follow it.

A store copy created under an app scope that has a backend attached gets a
:class:`_Link`. The link

* loads the copy's document and version from the backend when the copy is
  made (so a copy's version *is* the backend's version);
* commits every local change through the backend, under the copy's lock,
  with the copy's version as the expected one. When another process got
  there first the backend refuses, the link brings the copy up to date from
  the backend's log, and the store runs the change again on the fresh
  document (``update(fn)`` re-reads, a ``test`` op re-tests): no lost
  updates and no distributed lock;
* applies commits made elsewhere (heard as notices) to the copy, in version
  order, replaying the log and falling back to a snapshot when the log no
  longer reaches back; they reach ``listen``/``on_patch`` listeners like
  local ones and are never pushed back.

:func:`apatch` and :func:`aupdate` are the async twins of ``Store.patch`` /
``Store.update`` for event-loop code: the round trip is awaited, and the
writers of one copy in one process queue up and go out together as one
commit per round trip (group commit), so they never race each other, only
other processes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import _patch, _paths
from .._scope import Scope
from .._store import _BATCH, Store, _StoreState
from ..exceptions import PatchError, PathError, VersionConflict
from ._base import Backend, dumps, scope_key

__all__ = ["Binder", "apatch", "aupdate"]

_Change = Callable[[Any], tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]]
_MAX_RETRIES = 1000


class Binder:
    """What an attached app scope holds: makes a :class:`_Link` for each new copy."""

    __slots__ = ("backend",)

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def bind_store(self, store: Store, scope: Scope, state: _StoreState) -> None:
        link = _Link(self.backend, store, scope, state)
        link.load()
        state.link = link
        state.patch_listeners.append(link.committed)
        self.backend._register(link)


class _Link:
    """One store copy's tie to the backend (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "backend",
        "initial",
        "key",
        "name",
        "pushed",
        "queues",
        "state",
        "store",
        "ttl",
    )

    def __init__(self, backend: Backend, store: Store, scope: Scope, state: _StoreState) -> None:
        self.backend = backend
        self.store = store
        self.state = state
        self.key = scope_key(scope)
        self.name = store.name
        self.ttl = scope.ttl
        self.initial = dumps(store._initial)
        self.pushed = -1  # the version of the last commit this copy made
        self.queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------ loading

    def load(self) -> None:
        """Start the (new, unshared) copy from the backend's document and version."""
        version, doc = self.backend.load(self.key, self.name)
        if self.ttl is not None:
            self.backend.touch(self.key, self.ttl)
        if version:
            self._reset(version, doc)

    def _reset(self, version: int, doc: Any) -> None:
        document = self.store._initial if doc is None else _patch.freeze_json(doc)
        self.store._receive(
            self.state, [{"op": "replace", "path": "", "value": document}], version, force=True
        )

    def _apply(self, log: list[tuple[int, list[dict[str, Any]]]] | None) -> bool:
        """Apply logged commits to the copy; False if they do not fit (reload instead)."""
        if log is None:
            return False
        for version, ops in log:
            try:
                self.store._receive(self.state, ops, version)
            except (PathError, PatchError):
                return False  # the copy had drifted: a snapshot sets it right
        return True

    def catch_up(self) -> None:
        """Bring the copy up to the backend's current version (sync)."""
        with _BATCH, self.state.lock:
            if not self._apply(self.backend.history(self.key, self.name, self.state.version)):
                self._reset(*self.backend.load(self.key, self.name))
        # Listeners of what came in run now that the lock is released (a
        # no-op when called from ``push``, whose caller still holds it).
        self.store._after_commit(self.state)

    async def acatch_up(self) -> None:
        """Bring the copy up to the backend's current version (async)."""
        log = await self.backend.ahistory(self.key, self.name, self.state.version)
        if not self._apply(log):
            self._reset(*await self.backend.aload(self.key, self.name))

    def follow(self, version: int | None) -> None:
        """A notice: the backend is at ``version`` (None: unknown, after a gap)."""
        if version is not None and self.state.version >= version:
            return  # already here (our own commit, or heard twice)
        with _BATCH, self.state.lock:
            if version is not None and self.state.version >= version:
                return
            self.catch_up()
        self.store._after_commit(self.state)

    # ------------------------------------------------------------ committing

    def push(self, ops: list[dict[str, Any]], version: int) -> int | None:
        """The store's commit hook (copy lock held): commit, or catch up and say retry."""
        try:
            new = self.backend._write(
                self.key, self.name, ops, version, initial=self.initial, ttl=self.ttl
            )
        except VersionConflict:
            self.catch_up()
            return None
        self.pushed = new
        return new

    def committed(self, ops: list[dict[str, Any]], version: int) -> None:
        """on_patch listener (outside locks): announce our own commits to other local copies."""
        if version == self.pushed:
            self.backend._announce(self.key, self.name, version)

    def close(self) -> None:
        self.backend._unregister(self)

    async def awrite(self, change: _Change, expected: int | None) -> int:
        """Run ``change`` on the copy's document and commit it; return the version.

        Writers of this copy on one event loop form a queue drained by one
        task: whatever queued up while a commit was in flight goes out as the
        next commit, all in one script call (group commit). Each writer's
        change still runs on the document as the previous one left it, and
        fails alone; a write with an expected version goes first in its
        commit, so it sees exactly that version.
        """
        loop = asyncio.get_running_loop()
        queue = self.queues.get(loop)
        if queue is None:
            queue = self.queues[loop] = _Queue()
        job = _Job(change, expected, loop.create_future())
        queue.jobs.append(job)
        if not queue.draining:
            # No commit in flight: this writer drains the queue itself (no
            # task to schedule for the common, uncontended case).
            await self._drain(queue, loop)
        return await job.future

    async def _drain(self, queue: _Queue, loop: asyncio.AbstractEventLoop) -> None:
        queue.draining = True
        try:
            while queue.jobs:
                jobs = queue.jobs
                size = 1
                while size < len(jobs) and jobs[size].expected is None:
                    size += 1
                batch = jobs[:size]
                del jobs[:size]
                try:
                    await self._commit_batch(batch)
                except BaseException as exc:
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
        finally:
            queue.draining = False
            if queue.jobs:
                # Cancelled mid-drain: hand the rest to a task of their own.
                task = loop.create_task(self._drain(queue, loop))
                _DRAINERS.add(task)
                task.add_done_callback(_DRAINERS.discard)

    async def _commit_batch(self, batch: list[_Job]) -> None:
        store, state = self.store, self.state
        for _attempt in range(_MAX_RETRIES):
            base, version = state.root.value, state.version
            doc, ops, live = base, [], []
            for job in batch:
                if job.future.done():
                    continue  # its writer was cancelled before it went out
                if job.expected is not None and job.expected != version:
                    job.future.set_exception(
                        VersionConflict(
                            f"store {store.name!r}: expected version {job.expected}, "
                            f"the current one is {version}"
                        )
                    )
                    continue
                try:
                    new, more, inverse = job.change(doc)
                    if new is not doc:
                        if not isinstance(new, dict):
                            raise PatchError(
                                f"the document must stay an object, not become "
                                f"{_paths.type_name(new)}"
                            )
                        if store._schema is not None:
                            new, more, inverse = store._schema_checked(doc, new, more, inverse)
                except (PathError, PatchError) as exc:
                    job.future.set_exception(store._named(exc))
                    continue
                except Exception as exc:  # the caller's fn, or a schema refusal
                    job.future.set_exception(exc)
                    continue
                doc = new
                ops.extend(more)
                live.append(job)
            if doc is base:
                for job in live:
                    job.future.set_result(version)
                return
            try:
                new_version = await self.backend._awrite(
                    self.key, self.name, ops, version, initial=self.initial, ttl=self.ttl
                )
            except VersionConflict:
                await self.acatch_up()
                continue
            self.pushed = new_version
            # Ignored if the notice of this very commit got here first.
            store._receive(state, ops, new_version)
            for job in live:
                if not job.future.done():
                    job.future.set_result(new_version)
            return
        raise VersionConflict(
            f"store {store.name!r}: gave up after {_MAX_RETRIES} attempts; "
            "the backend kept changing under this write"
        )


class _Job:
    """One queued async write: its change, its expected version, its caller's future."""

    __slots__ = ("change", "expected", "future")

    def __init__(self, change: _Change, expected: int | None, future: asyncio.Future[int]) -> None:
        self.change = change
        self.expected = expected
        self.future = future


class _Queue:
    """The async writers of one copy on one event loop, and the task draining them."""

    __slots__ = ("draining", "jobs")

    def __init__(self) -> None:
        self.jobs: list[_Job] = []
        self.draining = False


_DRAINERS: set[asyncio.Task[None]] = set()  # kept alive until done


def _link_of(store: Store) -> tuple[_StoreState, _Link | None]:
    state = store._state()
    return state, state.link  # type: ignore[return-value]


async def apatch(
    store: Store, ops: Sequence[Mapping[str, Any]], *, expected_version: int | None = None
) -> int:
    """Apply RFC 6902 ``ops`` to the current scope's copy of ``store``; return the new version.

    The async twin of ``store.patch(ops)``: with a backend attached, the
    commit's round trip is awaited instead of blocking the event loop.
    ``expected_version`` makes it a compare-and-set (``If-Match``):
    :class:`~statekit.VersionConflict` if the copy moved on, and nothing
    changes.

    Example:
        >>> import asyncio, statekit as sk
        >>> from statekit.backends import MemoryBackend, apatch
        >>> s = sk.Store({"xs": []}, name="xs")
        >>> app = MemoryBackend().attach(sk.new_app_scope())
        >>> async def main():
        ...     with app:
        ...         v = await apatch(s, [{"op": "add", "path": "/xs/-", "value": 1}])
        ...         return v, s.get("xs")
        >>> asyncio.run(main())
        (1, [1])
    """
    return await _awrite(store, lambda doc: _patch.apply_with_inverse(doc, ops), expected_version)


async def aupdate(store: Store, path: str | Sequence[str], fn: Callable[[Any], Any]) -> Any:
    """Atomically replace the value at ``path`` by ``fn(old)``; return the new value.

    The async twin of ``store.update``: safe across processes sharing a
    backend (``fn`` runs again on the fresh value when another process
    committed first, so keep it free of side effects).

    Example:
        >>> import asyncio, statekit as sk
        >>> from statekit.backends import MemoryBackend, aupdate
        >>> s = sk.Store({"n": 0}, name="n")
        >>> app = MemoryBackend().attach(sk.new_app_scope())
        >>> async def main():
        ...     with app:
        ...         return await aupdate(s, "n", lambda n: n + 1)
        >>> asyncio.run(main())
        1
    """
    parts = store._parse(path)
    pointer = _paths.format(parts)
    result: list[Any] = []

    def change(doc: Any) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
        try:
            old = _paths.get(doc, parts)
        except PathError as exc:
            raise PathError(exc.path, exc.part, f"{exc.reason} (update)") from None
        new = _patch.freeze_json(fn(old), pointer)
        result.append(new)
        return _patch.replace_one(doc, parts, new)

    await _awrite(store, change, None)
    return result[-1]


async def _awrite(store: Store, change: _Change, expected: int | None) -> int:
    state, link = _link_of(store)
    if link is not None:
        return await link.awrite(change, expected)
    # No backend: the store's own commit, with the version checked under its lock.
    with state.lock:
        if expected is not None and expected != state.version:
            raise VersionConflict(
                f"store {store.name!r}: expected version {expected}, "
                f"the current one is {state.version}"
            )
        store._commit(change)
        return state.version
