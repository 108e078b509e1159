"""``RedisBackend``: store copies in Redis, shared by any number of processes and hosts.

Layout, with the scope key as a hash tag so that one scope lives in one
Redis Cluster slot (``P`` is the key prefix, default ``statekit``):

* ``P:{scope}:h`` — one hash per scope: ``d:<store>`` the JSON document and
  ``v:<store>`` its version, one pair per store;
* ``P:{scope}:x:<store>`` — a capped stream per store copy, entry id
  ``0-<version>``, field ``o`` the ops of that commit: the replay log;
* channel ``P:n`` — a small notice ``scope\\nstore\\nversion`` per commit.

Each commit is ONE call of one Lua script (``commit.lua``): check the
expected version, apply and validate the RFC 6902 ops, bump the version,
refresh the sliding TTL, append to the stream and publish — one round trip,
no lock, nothing written unless every op applied. JSON only. Each backend
object holds one explicitly sized connection pool (per event loop for the
asyncio client) and ONE pub/sub connection, on a thread that fans notices out
to the process's copies and listeners; after a lost connection it reconnects
with backoff and every copy catches up from the streams. No ``CONFIG SET``
or other admin command is used, so managed Redis works.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import os
import threading
import urllib.parse
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .. import _engine
from ..exceptions import PatchError, PatchTestFailed, PathError, StatekitError
from ._base import Backend, Commit, conflict, dumps

__all__ = ["BackendUnavailable", "RedisBackend"]

_SCRIPT = importlib.resources.files(__package__).joinpath("commit.lua").read_text("utf-8")
_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class BackendUnavailable(StatekitError, ConnectionError):
    """The backend's server cannot be reached (the message names it).

    Example:
        >>> from statekit.backends import BackendUnavailable
        >>> issubclass(BackendUnavailable, ConnectionError)
        True
    """


def _shown(url: str) -> str:
    """``url`` without its password, for error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + netloc))


class RedisBackend(Backend):
    """Store copies in Redis: every process and host with the same URL shares them.

    ``pool_size`` caps the connections of this backend object (per event
    loop for async calls); callers wait for a free one rather than opening
    more. ``prefix`` namespaces the keys (several apps on one database).

    Example (needs a Redis server)::

        from statekit.backends import RedisBackend
        backend = RedisBackend("redis://127.0.0.1:6379/0", pool_size=32)
        app = backend.attach(sk.new_app_scope())
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "statekit",
        pool_size: int = 32,
        history_limit: int = 1000,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(history_limit=history_limit)
        if not prefix or any(c in prefix for c in "{}\n"):
            raise ValueError(f"prefix= must be non-empty and free of '{{', '}}': {prefix!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size= must be a number of connections >= 1, not {pool_size!r}")
        self.url = url
        self.prefix = prefix
        self.pool_size = pool_size
        self._timeout = timeout
        self._channel = f"{prefix}:n"
        # No automatic retries: a commit whose reply was lost may have been
        # applied, and sending it again could apply it twice.
        options: dict[str, Any] = {
            "max_connections": pool_size,
            "timeout": timeout,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        self._options = options
        try:
            self._pool = redis.BlockingConnectionPool.from_url(url, **options)
        except ValueError as exc:
            raise ValueError(f"RedisBackend({_shown(url)!r}): {exc}") from None
        self._client = redis.Redis(connection_pool=self._pool)
        self._script = self._client.register_script(_SCRIPT)
        self._aclients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aioredis.Redis, Any]
        ] = weakref.WeakKeyDictionary()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._stop = threading.Event()
        self._pubsub: Any = None
        #: The client name of this backend's pub/sub connection (``CLIENT LIST`` shows it).
        self.pubsub_name = f"statekit-pubsub:{prefix}:{os.getpid()}:{id(self):x}"
        #: How many times the pub/sub connection was re-established (and copies resynced).
        self.reconnects = 0
        with self._errors():
            self._client.ping()

    def __repr__(self) -> str:
        return f"RedisBackend({_shown(self.url)!r})"

    # ------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _ERRORS as exc:
            raise BackendUnavailable(f"{self!r}: Redis is unreachable: {exc}") from None

    def _hash(self, scope: str) -> str:
        return f"{self.prefix}:{{{scope}}}:h"

    def _stream(self, scope: str, store: str) -> str:
        return f"{self.prefix}:{{{scope}}}:x:{store}"

    def _aclient(self) -> tuple[aioredis.Redis, Any]:
        loop = asyncio.get_running_loop()
        found = self._aclients.get(loop)
        if found is None:
            pool = aioredis.BlockingConnectionPool.from_url(self.url, **self._options)
            client = aioredis.Redis(connection_pool=pool)
            found = self._aclients[loop] = (client, client.register_script(_SCRIPT))
        return found

    def _args(  # noqa: PLR0917 (private, mirrors commit()'s arguments)
        self,
        scope: str,
        store: str,
        ops: Sequence[Mapping[str, Any]],
        expected: int | None,
        initial: str,
        ttl: float | None,
    ) -> tuple[list[str], list[Any]]:
        try:
            text = dumps(list(ops))
        except (TypeError, ValueError) as exc:
            raise PatchError(
                f"store {store!r} in scope {scope!r}: ops are not JSON: {exc}"
            ) from None
        keys = [self._hash(scope), self._stream(scope, store)]
        milliseconds = 0 if ttl is None else max(1, int(ttl * 1000))
        args = [
            store,
            "" if expected is None else str(expected),
            text,
            initial,
            milliseconds,
            self.history_limit,
            self._channel,
            scope,
        ]
        return keys, args

    def _result(self, scope: str, store: str, expected: int | None, reply: Any) -> int:
        status = int(reply[0])
        if status == 1:
            return int(reply[1])
        if status == 0:
            assert expected is not None
            raise conflict(scope, store, expected, int(reply[1]))
        kind, message, path, part = (_text(x) for x in reply[1:5])
        where = f"store {store!r} in scope {scope!r}"
        if kind == "path":
            raise PathError(path, part, f"{message} in {where}")
        if kind == "test":
            raise PatchTestFailed(f"{where}: {message}")
        raise PatchError(f"{where}: {message}")

    # ------------------------------------------------------------ storage (sync)

    def load(self, scope: str, store: str) -> tuple[int, Any]:
        with self._errors():
            doc, version = self._client.hmget(self._hash(scope), [f"d:{store}", f"v:{store}"])
        if version is None or doc is None:
            return 0, None
        return int(version), json.loads(doc)

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
        keys, args = self._args(scope, store, ops, expected_version, initial, ttl)
        with self._errors():
            reply = self._script(keys=keys, args=args)
        return self._result(scope, store, expected_version, reply)

    def _log(self, after: int, version: Any, entries: list[Any]) -> list[Commit] | None:
        current = 0 if version is None else int(version)
        if after > current:
            return None
        if len(entries) != current - after:
            return None  # trimmed (or expired apart): reload instead
        log: list[Commit] = []
        for entry_id, fields in entries:
            number = int(_text(entry_id).split("-", 1)[1])
            log.append((number, json.loads(fields[b"o"])))
        return log

    def history(self, scope: str, store: str, after: int) -> list[Commit] | None:
        with self._errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.hget(self._hash(scope), f"v:{store}")
            pipe.xrange(self._stream(scope, store), f"(0-{after}", "+")
            version, entries = pipe.execute()
        return self._log(after, version, entries)

    def touch(self, scope: str, ttl: float | None) -> None:
        if ttl is None:
            return
        with self._errors():
            self._client.pexpire(self._hash(scope), max(1, int(ttl * 1000)))

    def _scan_pattern(self) -> str:
        return f"{self.prefix}:{{*}}:h"

    def _scope_of(self, key: Any) -> str:
        text = _text(key)
        return text[len(self.prefix) + 2 : -3]

    def scopes(self) -> list[str]:
        with self._errors():
            found = {self._scope_of(k) for k in self._client.scan_iter(self._scan_pattern(), 500)}
        return sorted(found)

    def drop(self, scope: str) -> None:
        with self._errors():
            streams = list(self._client.scan_iter(f"{self.prefix}:{{{_glob(scope)}}}:x:*", 500))
            self._client.delete(self._hash(scope), *streams)

    # ------------------------------------------------------------ storage (async)

    async def aload(self, scope: str, store: str) -> tuple[int, Any]:
        client, _ = self._aclient()
        with self._errors():
            doc, version = await client.hmget(self._hash(scope), [f"d:{store}", f"v:{store}"])
        if version is None or doc is None:
            return 0, None
        return int(version), json.loads(doc)

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
        keys, args = self._args(scope, store, ops, expected_version, initial, ttl)
        _, script = self._aclient()
        with self._errors():
            reply = await script(keys=keys, args=args)
        return self._result(scope, store, expected_version, reply)

    async def ahistory(self, scope: str, store: str, after: int) -> list[Commit] | None:
        client, _ = self._aclient()
        with self._errors():
            pipe = client.pipeline(transaction=True)
            pipe.hget(self._hash(scope), f"v:{store}")
            pipe.xrange(self._stream(scope, store), f"(0-{after}", "+")
            version, entries = await pipe.execute()
        return self._log(after, version, entries)

    async def atouch(self, scope: str, ttl: float | None) -> None:
        if ttl is None:
            return
        client, _ = self._aclient()
        with self._errors():
            await client.pexpire(self._hash(scope), max(1, int(ttl * 1000)))

    async def ascopes(self) -> list[str]:
        client, _ = self._aclient()
        found: set[str] = set()
        with self._errors():
            async for key in client.scan_iter(self._scan_pattern(), 500):
                found.add(self._scope_of(key))
        return sorted(found)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        found = self._aclients.pop(loop, None)
        if found is not None:
            await found[0].aclose()
            await found[0].connection_pool.disconnect()
        self.close()

    def close(self) -> None:
        super().close()
        self._stop.set()
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._pool.disconnect()

    # ------------------------------------------------------------ notices

    def _start_listening(self) -> None:
        with self._thread_lock:
            if self._thread is not None or self._closed:
                return
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._listen, args=(ready,), name=f"statekit {self!r}", daemon=True
            )
            self._thread.start()
        # Commits made after this returns are heard: the subscription is live.
        ready.wait(self._timeout)

    def _listen(self, ready: threading.Event) -> None:
        """The process's one pub/sub connection: notices in, fanned out to local copies."""
        delay = 0.05
        first = True
        while not self._stop.is_set():
            client = redis.Redis.from_url(
                self.url,
                socket_connect_timeout=self._timeout,
                socket_timeout=None,
                retry=Retry(NoBackoff(), 0),
                client_name=self.pubsub_name,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call,unused-ignore]
            self._pubsub = pubsub
            try:
                pubsub.subscribe(self._channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        delay = 0.05
                        ready.set()
                        if not first:
                            # Notices sent while we were away are lost: every
                            # copy catches up from its stream instead.
                            self.reconnects += 1
                            self._resync()
                        first = False
                    elif message["type"] == "message":
                        self._notice(message["data"])
            except Exception as exc:
                if self._stop.is_set():
                    break
                if not isinstance(exc, _ERRORS):
                    _engine.report(exc, f"{self!r} listening for notices")
                first = False
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
                with contextlib.suppress(Exception):
                    client.close()

    def _notice(self, data: Any) -> None:
        try:
            scope, store, version = _text(data).split("\n")
            number = int(version)
        except ValueError:
            return  # not one of ours
        self._announce(scope, store, number)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _glob(text: str) -> str:
    """``text`` with Redis glob characters escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
