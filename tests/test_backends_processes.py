"""Backends across real processes: notices, isolation, contention, kill -9.

The other processes run tests/_backend_worker.py; every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import statekit as sk
from _backends import cleanup_prefix, expire_local, new_prefix, redis_url
from statekit.backends import Backend, SQLiteBackend, backend_from_url

pytestmark = pytest.mark.timeout(180)

WORKER = str(Path(__file__).with_name("_backend_worker.py"))
SRC = str(Path(__file__).parents[1] / "src")


class Worker:
    """One worker process, its stdout read line by line on a thread."""

    def __init__(self, mode: str, url: str, prefix: str, *args: Any) -> None:
        env = dict(os.environ, PYTHONPATH=SRC)
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, mode, url, prefix, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.endswith("\n"):
                break  # cut off by a kill: not a whole line, so not an acknowledgement
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float = 60.0) -> str:
        """The next line starting with ``prefix`` (earlier lines are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
            if line is None or left <= 0:
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""  # type: ignore[union-attr]
                raise AssertionError(f"no {prefix!r} line from worker; got {self.seen[-5:]}\n{err}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def rest(self) -> list[str]:
        """Every line printed until the process ended (after it was killed)."""
        self.proc.wait(timeout=30)
        while True:
            line = self.lines.get(timeout=30)
            if line is None:
                return self.seen
            self.seen.append(line)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture(params=["redis", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL, prefix) of a backend several processes share."""
    if request.param == "redis":
        url, prefix = redis_url(), new_prefix()
        yield url, prefix
        cleanup_prefix(url, prefix)
    else:
        yield f"sqlite:///{tmp_path}/shared.db", "-"


def local(url: str, prefix: str) -> Backend:
    return backend_from_url(url, **({"prefix": prefix} if url.startswith("redis") else {}))


def acked(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith("ack ")]


# ---------------------------------------------------------------- notices and isolation


def test_a_write_here_reaches_a_listener_there(
    target: tuple[str, str], workers: list[Worker]
) -> None:
    url, prefix = target
    listener = Worker("listen", url, prefix)
    workers.append(listener)
    assert listener.expect("ready") == "ready 0"
    backend = local(url, prefix)
    counter = sk.Store({"n": 0}, name="counter")
    with backend.attach(sk.new_app_scope()):
        for n in range(1, 6):
            counter.set("n", n)
    # Commits heard together reach a value listener once, with the latest
    # value (as in a batch); what must hold is order and the final value.
    seen = [int(listener.expect("seen").split()[1])]
    while seen[-1] < 5:
        seen.append(int(listener.expect("seen").split()[1]))
    assert seen[-1] == 5 and seen == sorted(set(seen))
    backend.close()


def test_users_are_isolated_across_processes(
    target: tuple[str, str], workers: list[Worker]
) -> None:
    url, prefix = target
    alice = Worker("user", url, prefix, "alice", "fr", "bob")
    workers.append(alice)
    assert alice.expect("other") == "other en"
    assert alice.expect("own") == "own fr"
    bob = Worker("user", url, prefix, "bob", "de", "alice")
    workers.append(bob)
    assert bob.expect("other") == "other fr"  # alice's, written by the other process
    assert bob.expect("own") == "own de"


def test_a_session_kept_busy_by_one_process_expires_for_all_once_idle(
    target: tuple[str, str], workers: list[Worker]
) -> None:
    """The idle deadline is the backend's: another process's writes slide it for
    everyone, and once they stop the session is gone from every registry."""
    url, prefix = target
    # The writes span 2.25 s > ttl; a gap of 1.5 s between two would be needed
    # for the session to expire early.
    ttl, writes, interval = 1.5, 10, 0.25
    busy = Worker("session", url, prefix, "busy", ttl, writes, interval)
    workers.append(busy)
    key = "app:app/session:busy"
    backend = local(url, prefix)
    app = backend.attach(sk.new_app_scope())
    cart = sk.Store({"items": []}, name="cart", scope="session")
    try:
        busy.expect("ack 0")
        first = time.monotonic()
        with app, sk.session("busy", ttl=ttl):
            items = cart.get("items")  # this process's copy, loaded from the backend
            assert items and items == list(range(len(items)))
        busy.expect("done", timeout=60)
        assert time.monotonic() - first > ttl  # older than its ttl, but never idle that long
        assert key in backend.scopes()
        assert backend.load(key, "cart")[1] == {"items": list(range(writes))}
        deadline = time.monotonic() + 15
        while key in backend.scopes():
            assert time.monotonic() < deadline, "the idle session did not expire"
            time.sleep(0.05)
        backend.expire()  # SQLite deletes now what it already hid; Redis expired it itself
        assert backend.load(key, "cart") == (0, None)
        # The local tree agrees: its copy of the session is idle too, and goes.
        assert expire_local(app) == 1
        assert app.scopes("session") == []
        with app, sk.session("busy", ttl=ttl):
            assert (cart.get("items"), cart.version) == ([], 0)  # starts afresh
    finally:
        backend.close()


# ---------------------------------------------------------------- contention


def test_400_async_writers_over_two_processes_end_exact(
    target: tuple[str, str], workers: list[Worker]
) -> None:
    url, prefix = target
    pair = [Worker("incr", url, prefix, 200, 200) for _ in range(2)]
    workers.extend(pair)
    for worker in pair:
        worker.expect("ready")
    for worker in pair:
        worker.send("go")
    for worker in pair:
        worker.expect("done", timeout=120)
    backend = local(url, prefix)
    version, stored = backend.load("app:app", "counter")
    assert stored == {"n": 400} and version <= 400  # queued writers share commits
    backend.close()


def test_conflicting_expected_versions_exactly_one_wins(
    target: tuple[str, str], workers: list[Worker]
) -> None:
    url, prefix = target
    claimers = [Worker("claim", url, prefix, f"w{i}") for i in range(3)]
    workers.extend(claimers)
    for worker in claimers:
        worker.expect("ready")
    for worker in claimers:
        worker.send("go")
    results = [worker.expect("") for worker in claimers]  # "won" or "lost"
    assert sorted(results) == ["lost", "lost", "won"]
    backend = local(url, prefix)
    version, stored = backend.load("app:app", "doc")
    assert version == 1 and stored["owner"] == f"w{results.index('won')}"
    backend.close()


# ---------------------------------------------------------------- faults


def test_kill_9_mid_load_the_other_keeps_serving(
    target: tuple[str, str], workers: list[Worker]
) -> None:
    url, prefix = target
    victim = Worker("aappend", url, prefix, "A", 100_000, 20)
    survivor = Worker("aappend", url, prefix, "B", 300, 20)
    workers.extend([victim, survivor])
    victim.expect("ready")
    survivor.expect("ready")
    for _ in range(50):
        victim.expect("ack")
    victim.proc.send_signal(signal.SIGKILL)
    lost_with_victim = acked(victim.rest())
    survivor.expect("done", timeout=120)
    backend = local(url, prefix)
    version, stored = backend.load("app:app", "log")
    ids = stored["ids"]
    assert len(ids) == len(set(ids)) >= version  # no duplicates (async writers share commits)
    assert set(lost_with_victim) <= set(ids)  # every acknowledged write is there
    assert {f"B-{i}" for i in range(300)} <= set(ids)
    backend.close()


def test_sqlite_survives_kill_9_twenty_times(tmp_path: Path, workers: list[Worker]) -> None:
    url = f"sqlite:///{tmp_path}/crash.db"
    rng = random.Random(6)
    promised: list[str] = []
    for round_ in range(20):
        worker = Worker("append", url, "-", f"r{round_}", 1_000_000)
        workers.append(worker)
        worker.expect("ready")
        time.sleep(rng.uniform(0.0, 0.25))
        worker.proc.send_signal(signal.SIGKILL)
        promised.extend(acked(worker.rest()))
    assert len(promised) > 20  # the kills landed mid-load, not before any write
    backend = SQLiteBackend(tmp_path / "crash.db")
    version, stored = backend.load("app:app", "log")
    ids = stored["ids"]
    assert set(promised) <= set(ids)
    assert len(ids) == len(set(ids)) == version
    start = max(0, version - 500)  # the log keeps the last history_limit commits
    history = backend.history("app:app", "log", start)
    assert history is not None and [v for v, _ in history] == list(range(start + 1, version + 1))
    backend.close()


def test_two_processes_writing_one_sqlite_file_stay_consistent(
    tmp_path: Path, workers: list[Worker]
) -> None:
    url = f"sqlite:///{tmp_path}/two.db"
    pair = [Worker("append", url, "-", tag, 150) for tag in ("P", "Q")]
    workers.extend(pair)
    for worker in pair:
        worker.expect("done", timeout=120)
    backend = SQLiteBackend(tmp_path / "two.db")
    version, stored = backend.load("app:app", "log")
    ids = stored["ids"]
    assert version == 300 and len(set(ids)) == 300
    for tag in ("P", "Q"):  # each process's own writes in its order
        assert [i for i in ids if i.startswith(tag)] == [f"{tag}-{n}" for n in range(150)]
    history = backend.history("app:app", "log", 0)
    replayed = sk.Store({"ids": []}, name="log")
    with sk.new_app_scope():
        for _, ops in history or []:
            replayed.patch(ops)
        assert replayed.get("ids") == ids  # the log replays to the document
    backend.close()


def test_processes_opening_one_new_sqlite_database_at_once(tmp_path: Path) -> None:
    """They race to switch it to WAL and create its tables: none may fail."""
    code = (
        "import sys; from statekit.backends import SQLiteBackend; "
        "b = SQLiteBackend(sys.argv[1]); b.close()"
    )
    env = dict(os.environ, PYTHONPATH=SRC)
    for attempt in range(10):
        path = str(tmp_path / f"new{attempt}.db")
        procs = [
            subprocess.Popen([sys.executable, "-c", code, path], stderr=subprocess.PIPE, env=env)
            for _ in range(4)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
