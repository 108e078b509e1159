"""``MemoryBackend``: the default, in one process (copies shared between app scopes)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from .._patch import freeze_json
from ._base import Backend, Commit, apply_ops, conflict

__all__ = ["MemoryBackend"]


class _Copy:
    __slots__ = ("doc", "log", "version")

    def __init__(self, doc: Any, limit: int) -> None:
        self.doc = doc
        self.version = 0
        self.log: deque[Commit] = deque(maxlen=limit)


class MemoryBackend(Backend):
    """Store copies kept in this process's memory, with a bounded commit log.

    The default: nothing is shared with other processes, but every app scope
    attached to one ``MemoryBackend`` shares its documents (handy in tests,
    and what the other backends do across processes).

    Example:
        >>> from statekit.backends import MemoryBackend
        >>> b = MemoryBackend()
        >>> b.commit("app:app", "s", [{"op": "add", "path": "/n", "value": 1}], 0, initial="{}")
        1
        >>> b.load("app:app", "s"), b.history("app:app", "s", 0)
        ((1, {'n': 1}), [(1, [{'op': 'add', 'path': '/n', 'value': 1}])])
    """

    def __init__(self, *, history_limit: int = 1000) -> None:
        super().__init__(history_limit=history_limit)
        self._lock = threading.Lock()
        self._copies: dict[tuple[str, str], _Copy] = {}
        self._deadlines: dict[str, float | None] = {}

    def __repr__(self) -> str:
        return "MemoryBackend()"

    def _live(self, scope: str, now: float) -> None:
        """Drop ``scope`` if its deadline passed (lock held)."""
        deadline = self._deadlines.get(scope)
        if deadline is not None and deadline < now:
            self._drop(scope)

    def _drop(self, scope: str) -> None:
        self._deadlines.pop(scope, None)
        for key in [key for key in self._copies if key[0] == scope]:
            del self._copies[key]

    def load(self, scope: str, store: str) -> tuple[int, Any]:
        with self._lock:
            self._live(scope, time.time())
            copy = self._copies.get((scope, store))
            return (0, None) if copy is None else (copy.version, copy.doc)

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
        now = time.time()
        with self._lock:
            self._live(scope, now)
            copy = self._copies.get((scope, store))
            version = 0 if copy is None else copy.version
            if expected_version is not None and expected_version != version:
                raise conflict(scope, store, expected_version, version)
            base = freeze_json(json.loads(initial)) if copy is None else copy.doc
            doc, applied = apply_ops(base, ops, scope, store)
            if copy is None:
                copy = self._copies[(scope, store)] = _Copy(doc, self.history_limit)
            copy.doc = doc
            copy.version = version = version + 1
            copy.log.append((version, applied))
            self._touch(scope, ttl, now)
        return version

    def history(self, scope: str, store: str, after: int) -> list[Commit] | None:
        with self._lock:
            self._live(scope, time.time())
            copy = self._copies.get((scope, store))
            if copy is None:
                return [] if after == 0 else None
            if after > copy.version:
                return None
            if after == copy.version:
                return []
            if not copy.log or copy.log[0][0] > after + 1:
                return None
            return [entry for entry in copy.log if entry[0] > after]

    def _touch(self, scope: str, ttl: float | None, now: float) -> None:
        if ttl is not None:
            self._deadlines[scope] = now + ttl
        else:
            self._deadlines.setdefault(scope, None)

    def touch(self, scope: str, ttl: float | None) -> None:
        with self._lock:
            now = time.time()
            self._live(scope, now)
            self._touch(scope, ttl, now)

    def scopes(self) -> list[str]:
        now = time.time()
        with self._lock:
            live = {key[0] for key in self._copies} | set(self._deadlines)
            return sorted(
                scope
                for scope in live
                if (deadline := self._deadlines.get(scope)) is None or deadline >= now
            )

    def drop(self, scope: str) -> None:
        with self._lock:
            self._drop(scope)

    def expire(self) -> list[str]:
        now = time.time()
        with self._lock:
            gone = sorted(
                scope
                for scope, deadline in self._deadlines.items()
                if deadline is not None and deadline < now
            )
            for scope in gone:
                self._drop(scope)
        return gone
