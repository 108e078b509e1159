"""Versions, a bounded patch log and subscriber fan-out, per store copy.

A *copy* is one scope's value of one store (the app's counter, alice's todos,
a session's draft). The hub attaches to each copy's ``on_patch`` stream the
first time the server touches it, so every commit is seen, whoever made it:
a client's ``PATCH``, an action, or Python code in the process. For each copy
it keeps the last ``log_size`` commits (for replay after a reconnect) and the
subscribers to wake.

The interface the server uses, and that a backend (``statekit.backends``) can
stand behind later, is narrow:

- ``copy(store) -> Copy``: the current scope's copy (raises ``ScopeError``
  when the current scope chain cannot have one).
- ``commit(copy, ops, expected_version) -> version``: apply atomically,
  refusing when the version moved; ``await acommit(...)`` is the same for
  event-loop code (a copy bound to a backend awaits the round trip).
- ``read(copy) -> (version, value)``: a consistent snapshot.
- ``replay(copy, after) -> [(version, ops_json), ...] | None``: the commits
  after ``after``, each as the JSON text of its ops, or ``None`` when the log
  no longer reaches back.
- ``subscribe(copy, wake) -> off``: ``wake()`` after each commit (from the
  committing thread; the subscriber marshals it to its own loop).
- ``wait_for(copy, key, after, wake) -> bool``: ``True`` if the copy is
  already past version ``after``; else ``wake()`` once, at the next commit
  (``disarm(copy, key)`` takes it back). What event streams use: a commit
  wakes only the streams waiting for news, not those with news pending.

Example:
    >>> import statekit as sk
    >>> counter = sk.Store({"n": 0}, name="counter")
    >>> hub = Hub(log_size=2)
    >>> copy = hub.copy(counter)
    >>> off = hub.subscribe(copy, lambda: print("woken"))
    >>> hub.commit(copy, [{"op": "replace", "path": "/n", "value": 1}], expected_version=0)
    woken
    1
    >>> counter.set("n", 2)  # Python code in the process: seen too
    woken
    >>> counter.set("n", 3)
    woken
    >>> hub.replay(copy, 1), hub.replay(copy, 0)  # the log keeps 2 commits
    ([(2, '[{"op":"replace","path":"/n","value":2}]'), (3, '[{"op":"replace","path":"/n",\
"value":3}]')], None)

The log keeps each commit's ops as JSON text, not as the op objects: every
event sends that text anyway, and a ``(version, text)`` pair is no work for
Python's cycle collector. Op objects kept for ``log_size`` commits by every
session's copy would pile up in the oldest generation, whose collections
then stop the server for a tenth of a second at a time (benchmarks/RESULTS.md,
session 12).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .. import _patch
from .._scope import _current
from .._store import Store, _StoreState
from ..backends import apatch
from ..exceptions import VersionConflict

__all__ = ["Copy", "Entry", "Hub", "VersionMismatch", "chunk", "encode", "joined"]

Ops = Sequence[Any]
# One logged commit: its version and the JSON text of its ops (a JSON array).
Entry = tuple[int, str]
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_CACHE = 8  # encoded events kept per copy (subscribers usually share one base)


# The C encoder that _encoder.encode makes anew on every call, made once, with
# the arguments JSONEncoder.iterencode passes for _encoder's settings (no
# circular-reference check: a frozen JSON value cannot contain itself).
_c_make = getattr(json.encoder, "c_make_encoder", None)
_c_encode: Any = (
    None
    if _c_make is None
    else _c_make(
        None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)


def encode(value: Any) -> str:
    """Compact JSON text of a (frozen) JSON value.

    Example:
        >>> encode({"a": [1, "é", None]})
        '{"a":[1,"é",null]}'
    """
    if _c_encode is None:  # pragma: no cover - a Python without the _json accelerator
        return _encoder.encode(value)
    if value.__class__ is str:
        return json.encoder.encode_basestring(value)
    return "".join(_c_encode(value, 0))


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk (``Transfer-Encoding: chunked``).

    Example:
        >>> chunk(b"data: 1\\n\\n")
        b'9\\r\\ndata: 1\\n\\n\\r\\n'
    """
    return b"%x\r\n%b\r\n" % (len(data), data)


def joined(entries: Sequence[Entry]) -> str:
    """The ops of consecutive logged commits as one JSON array (applied in order).

    Example:
        >>> joined([(1, '[{"op":"remove","path":"/a"}]'), (2, "[]"), (3, '[1,2]')])
        '[{"op":"remove","path":"/a"},1,2]'
    """
    if len(entries) == 1:
        return entries[0][1]
    return "[" + ",".join(body for _, text in entries if (body := text[1:-1])) + "]"


class VersionMismatch(Exception):
    """``commit`` saw another version than expected; ``current`` is the one it saw."""

    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


class Copy:
    """One scope's copy of one store, as the hub sees it."""

    __slots__ = (
        "__weakref__",
        "_state",
        "armed",
        "cache",
        "floor",
        "lock",
        "log",
        "name_json",
        "store",
        "subscribers",
    )

    def __init__(self, store: Store, state: _StoreState, log_size: int) -> None:
        self.store = store
        self.name_json = encode(store.name)  # in every event: encoded once
        # Weak: the hub must not keep a session's copy (and its scope) alive.
        self._state: weakref.ref[_StoreState] = weakref.ref(state)
        self.log: deque[Entry] = deque(maxlen=log_size)
        self.floor = state.version  # the log reaches back to here
        self.lock = threading.Lock()
        self.subscribers: dict[int, Callable[[], None]] = {}
        self.armed: dict[int, Callable[[], None]] = {}  # one-shot: the next commit only
        # (base, version) -> encoded "patch" event data, the whole event as a
        # one-store stream sends it, and that event framed as a chunk: shared
        # by every subscriber.
        self.cache: dict[tuple[int, int], list[Any]] = {}

    @property
    def name(self) -> str:
        """The store's name."""
        return self.store.name

    def state(self) -> _StoreState:
        """The store's node in its scope (alive while anyone can reach the copy)."""
        state = self._state()
        if state is None:  # pragma: no cover - the scope went away under a live request
            raise LookupError(f"the copy of store {self.store.name!r} was disposed")
        return state

    def _on_patch(self, ops: Ops, version: int) -> None:
        text = encode(ops)  # before the lock: streams take it to replay
        with self.lock:
            if self.log and version <= self.log[-1][0]:
                return  # pragma: no cover - on_patch delivers each version once, in order
            self.log.append((version, text))
            wakers = list(self.subscribers.values())
            if self.armed:
                wakers.extend(self.armed.values())
                self.armed = {}
        for wake in wakers:
            wake()

    def head(self) -> int:
        """The last version in the log (or the version the log starts after)."""
        with self.lock:
            return self.log[-1][0] if self.log else self.floor

    def _cached(self, base: int, version: int, entries: Sequence[Entry]) -> list[Any]:
        key = (base, version)
        entry = self.cache.get(key)
        if entry is None:
            data = (
                f'{{"store":{self.name_json},"base":{base},'
                f'"version":{version},"ops":{joined(entries)}}}'
            )
            entry = [data, None, None]
            if len(self.cache) >= _CACHE:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = entry
        return entry

    def patch_data(self, base: int, version: int, entries: Sequence[Entry]) -> str:
        """The JSON of the ``patch`` event of ``entries`` (from ``base`` to ``version``).

        Encoded once for every subscriber.
        """
        data: str = self._cached(base, version, entries)[0]
        return data

    def patch_event(
        self, base: int, version: int, entries: Sequence[Entry], *, chunked: bool = False
    ) -> bytes:
        """The whole ``patch`` event of a stream of this store alone, encoded once.

        Its id is ``name=version``, the same for every such stream, so the
        bytes are shared too (a stream of several stores builds its own id).
        ``chunked``: framed as one HTTP/1.1 chunk, as the streams that write
        to their transport themselves send it (framed once for all of them).
        """
        entry = self._cached(base, version, entries)
        event: bytes | None = entry[1]
        if event is None:
            event = entry[1] = (
                f"event: patch\nid: {self.store.name}={version}\ndata: {entry[0]}\n\n".encode()
            )
        if not chunked:
            return event
        framed: bytes | None = entry[2]
        if framed is None:
            framed = entry[2] = chunk(event)
        return framed


class Hub:
    """The in-memory hub: one :class:`Copy` per store copy, a bounded log each."""

    def __init__(self, log_size: int = 1000) -> None:
        if log_size < 1:
            raise ValueError("log_size is at least 1")
        self.log_size = log_size
        self._copies: weakref.WeakKeyDictionary[_StoreState, Copy] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._ids = 0

    def copy(self, store: Store) -> Copy:
        """The current scope chain's copy of ``store`` (``ScopeError`` if it has none)."""
        state = store._state()
        found = self._copies.get(state)
        if found is not None:
            return found
        with self._lock, state.lock:
            found = self._copies.get(state)
            if found is None:
                # Under the store's lock: no commit slips between the floor and the listener.
                found = Copy(store, state, self.log_size)
                store.on_patch(found._on_patch)
                self._copies[state] = found
            return found

    def version(self, copy: Copy) -> int:
        """The copy's committed version."""
        return copy.state().version

    def read(self, copy: Copy) -> tuple[int, Any]:
        """``(version, value)`` of the copy, consistent with each other."""
        state = copy.state()
        with state.lock:  # a transaction on another thread holds it until it commits
            return state.version, state.root.value

    def commit(self, copy: Copy, ops: Ops, expected_version: int | None = None) -> int:
        """Apply ``ops`` atomically; return the new version (the same one if nothing changed).

        Raises :class:`VersionMismatch` when ``expected_version`` is given and
        is not the current version, and the store's errors (``PathError``,
        ``PatchError``, ``PatchTestFailed``, ``ValidationError``) when the
        patch does not apply. Either way nothing changed.
        """
        state = copy.state()
        result: list[int] = []

        def change(doc: Any) -> Any:
            if expected_version is not None and state.version != expected_version:
                raise VersionMismatch(state.version)
            new, applied, inverse = _patch.apply_with_inverse(doc, ops)
            # The store bumps the version by one for a change, under this same lock.
            result.append(state.version + (new is not doc))
            return new, applied, inverse

        owner = state.owner
        if _current.get() is owner:
            # The server's requests commit from inside the copy's own scope
            # already: only its idle clock needs what entering would do.
            owner.touch()
            copy.store._commit(change)
        else:
            with owner:  # the copy's own scope, wherever the caller is
                copy.store._commit(change)
        return result[-1]

    async def acommit(self, copy: Copy, ops: Ops, expected_version: int | None = None) -> int:
        """:meth:`commit` for event-loop code: the same result and errors.

        A copy bound to a backend commits through
        :func:`statekit.backends.apatch`: the backend's round trip is awaited
        instead of blocking the event loop, and the copy's concurrent writers
        in this process go out together (group commit). A copy without a
        backend commits at once, as :meth:`commit` does.
        """
        state = copy.state()
        if state.link is None:
            return self.commit(copy, ops, expected_version)
        with state.owner:  # the copy's own scope, wherever the caller is
            try:
                return await apatch(copy.store, ops, expected_version=expected_version)
            except VersionConflict:
                if expected_version is not None and state.version != expected_version:
                    raise VersionMismatch(state.version) from None
                raise

    def replay(self, copy: Copy, after: int) -> list[Entry] | None:
        """The commits after version ``after``, or ``None`` when the log cannot say.

        Each commit is ``(version, ops_json)``: the JSON text of its ops.

        A copy bound to a backend (``statekit.backends``) falls back to the
        backend's log: a client that saw ``after`` in another server process
        resumes here without a snapshot.
        """
        found = self._replay_local(copy, after)
        if found is None:
            found = _replay_backend(copy, after)
        return found

    def _replay_local(self, copy: Copy, after: int) -> list[Entry] | None:
        with copy.lock:
            log = copy.log
            head = log[-1][0] if log else copy.floor
            if after == head:
                return []
            if after > head:
                # Committed but not yet logged (another thread is delivering),
                # or a version this copy never had.
                return [] if after <= copy.state().version else None
            oldest_base = log[0][0] - 1 if log else copy.floor
            if after < oldest_base:
                return None
            found: list[Entry] = []
            for entry in reversed(log):
                if entry[0] <= after:
                    break
                found.append(entry)
            found.reverse()
            return found

    def wait_for(self, copy: Copy, key: int, after: int, wake: Callable[[], None]) -> bool:
        """``True`` if ``copy`` is past version ``after``; else call ``wake()`` at its next commit.

        One-shot: ``wake`` is called once, then forgotten (arm again to hear
        the next). ``key`` names the waiter; arming twice with one key keeps
        one waker. Checked and armed under the copy's lock, so no commit
        falls between the check and the arming.
        """
        with copy.lock:
            log = copy.log
            if (log[-1][0] if log else copy.floor) > after:
                return True
            copy.armed[key] = wake
            return False

    def disarm(self, copy: Copy, key: int) -> None:
        """Take back the waker armed under ``key`` (if it is still armed)."""
        with copy.lock:
            copy.armed.pop(key, None)

    def subscribe(self, copy: Copy, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` after each commit of ``copy``; return ``off``."""
        with self._lock:
            self._ids += 1
            key = self._ids
        with copy.lock:
            copy.subscribers[key] = wake

        def off() -> None:
            with copy.lock:
                copy.subscribers.pop(key, None)

        return off


def _replay_backend(copy: Copy, after: int) -> list[Entry] | None:
    """The backend's commits after ``after`` up to the copy's version (what it can send)."""
    state = copy.state()
    link = state.link
    if link is None:
        return None
    top = state.version
    log = link.backend.history(link.key, link.name, after)  # type: ignore[attr-defined]
    if log is None:
        return None
    found = [(version, encode(ops)) for version, ops in log if version <= top]
    return found if (found[-1][0] if found else after) == top else None
