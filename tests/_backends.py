"""Backends for the parametrised suites: memory, SQLite (a tmp file) and Redis.

Redis: ``STATEKIT_REDIS_URL`` (default ``redis://127.0.0.1:6379``) if it
answers, else a ``redis-server`` from PATH started on a free port for this
test run; otherwise the Redis cases skip with the reason, or fail when
``STATEKIT_REQUIRE_REDIS=1``. Every backend gets its own key prefix and
database 13, and its keys are deleted when it is closed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import statekit as sk
from statekit.backends import Backend, MemoryBackend, SQLiteBackend

BACKENDS = ["memory", "sqlite", "redis"]
DB = 13
_found: list[str | None] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def start_redis(
    directory: Path, *, persist: bool, port: int | None = None, extra: list[str] | None = None
) -> tuple[Any, int]:
    """Start a redis-server of our own (``persist``: append-only file on)."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "yes" if persist else "no",
        "--appendfsync",
        "always",
        *(extra or []),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _answers(f"redis://127.0.0.1:{port}"):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"redis-server on port {port} did not start")
        time.sleep(0.05)
    return proc, port


def redis_base_url() -> str | None:
    """A Redis server URL (no database), or None."""
    if _found:
        return _found[0]
    url = os.environ.get("STATEKIT_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    if url.count("/") > 2:  # a database number given: we pick our own
        url = url.rsplit("/", 1)[0]
    if not _answers(url) and shutil.which("redis-server"):
        proc, port = start_redis(Path(tempfile.mkdtemp(prefix="sk-redis-")), persist=False)
        atexit.register(proc.kill)
        url = f"redis://127.0.0.1:{port}"
    _found.append(url if _answers(url) else None)
    return _found[0]


def redis_url() -> str:
    """The Redis URL tests use (database 13), or skip / fail with the reason."""
    base = redis_base_url()
    if base is None:
        reason = "no Redis answers at STATEKIT_REDIS_URL and no redis-server is on PATH"
        if os.environ.get("STATEKIT_REQUIRE_REDIS") == "1":
            pytest.fail(reason + " (STATEKIT_REQUIRE_REDIS=1)")
        pytest.skip(reason)
    return f"{base}/{DB}"


def cleanup_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{prefix}:*", 1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def new_prefix() -> str:
    return f"sktest-{uuid.uuid4().hex[:12]}"


def make_backend(kind: str, tmp_path: Path, **options: Any) -> Backend:
    if kind == "memory":
        return MemoryBackend(**options)
    if kind == "sqlite":
        tmp_path.mkdir(parents=True, exist_ok=True)
        return SQLiteBackend(tmp_path / "state.db", **options)
    if kind == "redis":
        from statekit.backends import RedisBackend

        url, prefix = redis_url(), new_prefix()
        backend = RedisBackend(url, prefix=prefix, **options)
        close = backend.close

        def close_and_clean() -> None:
            close()
            with contextlib.suppress(Exception):
                cleanup_prefix(url, prefix)

        backend.close = close_and_clean  # type: ignore[method-assign]
        return backend
    raise ValueError(kind)


def two_apps(backend: Backend) -> tuple[sk.Scope, sk.Scope]:
    """Two app scopes (as two processes would have) attached to one backend."""
    return backend.attach(sk.new_app_scope()), backend.attach(sk.new_app_scope())


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds: commits from elsewhere arrive on another thread."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def expire_local(app: sk.Scope, timeout: float = 10.0) -> int:
    """Sweep ``app`` until its idle scopes go, and say how many went.

    Backends keep deadlines in wall-clock time (they are shared between
    processes) and a scope tree in monotonic time. When the wall clock is
    stepped (NTP on a freshly booted CI machine) a backend can drop a session
    a moment before the local tree sees it idle, so one immediate sweep may
    find nothing yet.
    """
    swept = [0]

    def any_went() -> bool:
        swept[0] += app.expire_idle()
        return swept[0] > 0

    wait_for(any_went, timeout)
    return swept[0]
