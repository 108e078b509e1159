"""The backend interface: where store copies live when one process is not enough.

A backend keeps, per **scope key** (``"app:app/session:s1"``, see
:func:`scope_key`) and store name, one JSON document and its version, a
bounded log of the commits that made it, and a registry of live scopes with
their idle deadline. Every change is one atomic commit: the ops apply to the
stored document only if its version is the expected one (or unconditionally,
when no version is given, against whatever is current), the version goes up
by one, the commit is logged, and other processes hear a notice
``(scope, store, version)``.

The interface has a sync and an async face. Subclasses implement the sync
methods; the async ones default to running them in a worker thread, and
:class:`~statekit.backends.RedisBackend` overrides them with redis-py's
asyncio client.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _engine
from .._scope import Scope

if TYPE_CHECKING:
    from ._binding import _Link

__all__ = ["Backend", "Commit", "Notice", "dumps", "scope_key"]

_HEARD = 100_000  # copies whose last announced version is remembered

#: One logged commit: its version and the ops that made it from the one before.
Commit = tuple[int, list[dict[str, Any]]]
#: A change notice: scope key, store name, new version.
Notice = Callable[[str, str, int], Any]


def dumps(value: Any) -> str:
    """Compact JSON (frozen documents are ``dict``/``list`` subclasses)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def scope_key(scope: Scope) -> str:
    """The backend key of a scope: its chain of ``level:id``, ids percent-quoted.

    Two processes that open the same scopes (the same app name, user and
    session ids) get the same key, so they share the values stored there.

    Example:
        >>> import statekit as sk
        >>> from statekit.backends import scope_key
        >>> with sk.user("alice"), sk.session("tab/1") as s:
        ...     scope_key(s)
        'app:app/user:alice/session:tab%2F1'
    """
    parts = []
    for level, node in zip(("app", "user", "session", "request"), scope.chain, strict=True):
        if node is not None:
            parts.append(f"{level}:{urllib.parse.quote(node.id, safe='')}")
    return "/".join(parts)


class Backend(ABC):
    """Where store copies load from and commit to (subclass to add a store).

    A backend is attached to an app scope (:meth:`attach`); every store copy
    then created under that app (in any user, session or request) loads its
    document and version from the backend, commits every change through it
    (so versions are the backend's), and follows changes other processes
    make. Use one backend object per process and per database.

    Example:
        >>> import statekit as sk
        >>> from statekit.backends import MemoryBackend
        >>> backend = MemoryBackend()
        >>> counter = sk.Store({"n": 0}, name="counter")
        >>> one, two = sk.new_app_scope(), sk.new_app_scope()
        >>> _ = backend.attach(one), backend.attach(two)
        >>> with one:
        ...     counter.update("n", lambda n: n + 1)
        1
        >>> with two:   # another app on the same backend sees it
        ...     counter.get("n"), counter.version
        (1, 1)
    """

    #: How many commits per store copy the log keeps for replay.
    history_limit: int

    def __init__(self, *, history_limit: int = 1000) -> None:
        if isinstance(history_limit, bool) or not isinstance(history_limit, int):
            raise TypeError("history_limit= is a number of commits")
        if history_limit < 1:
            raise ValueError(f"history_limit= must be at least 1, not {history_limit}")
        self.history_limit = history_limit
        self._links: dict[tuple[str, str], weakref.WeakSet[_Link]] = {}
        self._links_lock = threading.Lock()
        self._listeners: list[Notice] = []
        # The last version each copy was announced at, so that listeners hear
        # a commit once although it may arrive twice (locally and by pub/sub).
        self._heard: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._closed = False

    # ------------------------------------------------------------ storage (sync)

    @abstractmethod
    def load(self, scope: str, store: str) -> tuple[int, Any]:
        """``(version, document)`` of a store copy; ``(0, None)`` if none is stored."""

    def commit(
        self,
        scope: str,
        store: str,
        ops: Sequence[Mapping[str, Any]],
        expected_version: int | None,
        *,
        initial: str,
        ttl: float | None = None,
    ) -> int:
        """Apply ``ops`` atomically; return the new version.

        ``expected_version`` is the version the ops were made against
        (:class:`~statekit.VersionConflict` if it is not current, and nothing
        changes); ``None`` applies them to whatever is current. ``initial``
        is the store's initial document as JSON, used when nothing is stored
        yet (version 0). ``ttl`` (seconds) refreshes the scope's idle
        deadline. A bad op raises :class:`~statekit.PatchError` /
        :class:`~statekit.PathError` and nothing is written. Store copies of
        this process that follow the backend hear of it before this returns.
        """
        version = self._write(scope, store, ops, expected_version, initial=initial, ttl=ttl)
        self._announce(scope, store, version)
        return version

    @abstractmethod
    def _write(
        self,
        scope: str,
        store: str,
        ops: Sequence[Mapping[str, Any]],
        expected_version: int | None,
        *,
        initial: str,
        ttl: float | None,
    ) -> int:
        """:meth:`commit` without the local announcement (a copy's link announces its
        own commits once it has released the copy's lock)."""

    @abstractmethod
    def history(self, scope: str, store: str, after: int) -> list[Commit] | None:
        """The commits after version ``after``, oldest first; ``None`` if the log
        no longer reaches back that far (or ``after`` is newer than the copy)."""

    @abstractmethod
    def touch(self, scope: str, ttl: float | None) -> None:
        """Mark ``scope`` as used now; with ``ttl`` it expires after that many idle seconds."""

    @abstractmethod
    def scopes(self) -> list[str]:
        """The keys of the scopes that hold values and have not expired, sorted."""

    @abstractmethod
    def drop(self, scope: str) -> None:
        """Delete everything stored for ``scope`` (its stores, log and registry entry)."""

    def expire(self) -> list[str]:
        """Delete the scopes whose idle deadline passed; return their keys.

        Backends whose storage expires keys by itself (Redis) return ``[]``.
        """
        return []

    def close(self) -> None:
        """Release connections and threads (the backend cannot be used after)."""
        self._closed = True

    # ------------------------------------------------------------ storage (async)

    async def aload(self, scope: str, store: str) -> tuple[int, Any]:
        """Async :meth:`load`."""
        return await asyncio.to_thread(self.load, scope, store)

    async def acommit(
        self,
        scope: str,
        store: str,
        ops: Sequence[Mapping[str, Any]],
        expected_version: int | None,
        *,
        initial: str,
        ttl: float | None = None,
    ) -> int:
        """Async :meth:`commit`."""
        version = await self._awrite(scope, store, ops, expected_version, initial=initial, ttl=ttl)
        self._announce(scope, store, version)
        return version

    async def _awrite(
        self,
        scope: str,
        store: str,
        ops: Sequence[Mapping[str, Any]],
        expected_version: int | None,
        *,
        initial: str,
        ttl: float | None,
    ) -> int:
        return await asyncio.to_thread(
            lambda: self._write(scope, store, ops, expected_version, initial=initial, ttl=ttl)
        )

    async def ahistory(self, scope: str, store: str, after: int) -> list[Commit] | None:
        """Async :meth:`history`."""
        return await asyncio.to_thread(self.history, scope, store, after)

    async def atouch(self, scope: str, ttl: float | None) -> None:
        """Async :meth:`touch`."""
        await asyncio.to_thread(self.touch, scope, ttl)

    async def ascopes(self) -> list[str]:
        """Async :meth:`scopes`."""
        return await asyncio.to_thread(self.scopes)

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await asyncio.to_thread(self.close)

    # ------------------------------------------------------------ notices

    def subscribe(self, callback: Notice) -> Callable[[], None]:
        """Call ``callback(scope, store, version)`` after each commit, from any process.

        Commits made in this process are announced right after they are made;
        commits of other processes as soon as the backend hears of them (on
        a background thread). Returns ``off``.
        """
        with self._links_lock:
            self._listeners.append(callback)
            first = len(self._listeners) == 1
        if first:
            self._start_listening()

        def off() -> None:
            with self._links_lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return off

    def _start_listening(self) -> None:  # noqa: B027 (a hook: most backends need none)
        """Start hearing other processes' commits (a thread, a pub/sub connection)."""

    def _announce(self, scope: str, store: str, version: int) -> None:
        """A commit happened (here or elsewhere): bring local copies and listeners up to date."""
        with self._links_lock:
            links = list(self._links.get((scope, store), ()))
            listeners = list(self._listeners)
            if listeners:
                key = (scope, store)
                if self._heard.get(key, 0) >= version:
                    listeners = []
                else:
                    self._heard[key] = version
                    self._heard.move_to_end(key)
                    if len(self._heard) > _HEARD:
                        self._heard.popitem(last=False)
        for link in links:
            try:
                link.follow(version)
            except Exception as exc:
                _engine.report(exc, f"store {store!r} in {scope!r} following the backend")
        for listener in listeners:
            try:
                listener(scope, store, version)
            except Exception as exc:
                _engine.report(exc, "backend change listener")

    def _resync(self) -> None:
        """After a gap in notices (a lost connection): every local copy catches up."""
        with self._links_lock:
            links = [link for group in self._links.values() for link in group]
        for link in links:
            try:
                link.follow(None)
            except Exception as exc:
                _engine.report(exc, "store copy resyncing with the backend")

    # ------------------------------------------------------------ binding

    def attach(self, app: Scope | None = None) -> Scope:
        """Make the store copies of ``app`` (default: the current app scope) live here.

        Copies that already exist in that app keep living in the process;
        attach before the first read. Returns the app scope.
        """
        from .._scope import app_scope

        target = app_scope() if app is None else app
        if target.level != "app":
            raise ValueError(f"attach() takes an app scope, not {target!r}")
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        from ._binding import Binder

        target.backend = Binder(self)
        return target

    def _register(self, link: _Link) -> None:
        with self._links_lock:
            self._links.setdefault((link.key, link.name), weakref.WeakSet()).add(link)
        self._start_listening()

    def _unregister(self, link: _Link) -> None:
        with self._links_lock:
            group = self._links.get((link.key, link.name))
            if group is not None:
                group.discard(link)
                if not group:
                    del self._links[(link.key, link.name)]


def apply_ops(
    doc: Any, ops: Sequence[Mapping[str, Any]], scope: str, store: str
) -> tuple[Any, list[dict[str, Any]]]:
    """``_patch.apply`` with errors that name the store and scope (nothing is applied)."""
    from .._patch import apply
    from ..exceptions import PatchError, PathError

    where = f"store {store!r} in scope {scope!r}"
    try:
        new, applied = apply(doc, ops)
    except PathError as exc:
        raise PathError(exc.path, exc.part, f"{exc.reason} in {where}") from None
    except PatchError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    if not isinstance(new, dict):
        raise PatchError(f"{where}: the document must stay an object")
    return new, applied


def conflict(scope: str, store: str, expected: int, current: int) -> Exception:
    """The error for a commit made against a version that is no longer current."""
    from ..exceptions import VersionConflict

    return VersionConflict(
        f"store {store!r} in scope {scope!r}: expected version {expected}, "
        f"the current one is {current}"
    )
