"""SyncServer(backend=...): several server processes serve one state, no sticky sessions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx

import statekit as sk
from _backends import cleanup_prefix, free_port, new_prefix, redis_url
from statekit.server import SESSION_COOKIE, SyncServer

pytestmark = pytest.mark.timeout(180)

TESTS = str(Path(__file__).parent)
SRC = str(Path(__file__).parents[1] / "src")
SECRET = "backend test secret, not for production"
WRITE = {"X-Statekit": "1", "Content-Type": "application/json-patch+json"}


class ServerProcess:
    """``uvicorn _backend_server_app:app`` in its own process, on a free port."""

    def __init__(self, backend: str, prefix: str) -> None:
        self.port = free_port()
        env = dict(
            os.environ,
            PYTHONPATH=SRC,
            STATEKIT_SECRET=SECRET,
            SK_TEST_BACKEND=backend,
            SK_TEST_PREFIX=prefix,
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "_backend_server_app:app",
                "--app-dir",
                TESTS,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/stores", timeout=2)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"server did not start: {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture(params=["redis", "sqlite"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    if request.param == "redis":
        url, prefix = redis_url(), new_prefix()
    else:
        url, prefix = f"sqlite:///{tmp_path}/server.db", "-"
    servers = [ServerProcess(url, prefix)]
    try:
        servers.append(ServerProcess(url, prefix))
        yield servers
    finally:
        for server in servers:
            server.stop()
        if request.param == "redis":
            cleanup_prefix(url, prefix)


def clients(pair: list[ServerProcess]) -> tuple[httpx.Client, httpx.Client]:
    """One browser, two server processes: the same cookie reaches either."""
    one = httpx.Client(base_url=pair[0].url, timeout=30)
    one.get("/stores")
    two = httpx.Client(base_url=pair[1].url, timeout=30)
    two.cookies.set(SESSION_COOKIE, one.cookies[SESSION_COOKIE])
    return one, two


def test_two_processes_serve_one_state(pair: list[ServerProcess]) -> None:
    one, two = clients(pair)
    r = one.patch(
        "/stores/counter", json=[{"op": "replace", "path": "/n", "value": 5}], headers=WRITE
    )
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    got = two.get("/stores/counter")
    assert got.json()["value"] == {"n": 5} and got.headers["etag"] == f'"{version}"'
    # The session follows the cookie to the other process: no sticky sessions.
    op = [{"op": "replace", "path": "/text", "value": "hello"}]
    assert two.patch("/stores/draft", json=op, headers=WRITE).status_code == 200
    assert one.get("/stores/draft").json()["value"]["text"] == "hello"
    # Users stay apart across processes.
    add = [{"op": "add", "path": "/todo/-", "value": "alice's"}]
    assert (
        one.patch("/stores/todos", json=add, headers={**WRITE, "x-test-user": "alice"}).status_code
        == 200
    )
    assert two.get("/stores/todos", headers={"x-test-user": "bob"}).json()["value"]["todo"] == []
    assert two.get("/stores/todos", headers={"x-test-user": "alice"}).json()["value"]["todo"] == [
        "alice's"
    ]


def test_if_match_across_processes_exactly_one_wins(pair: list[ServerProcess]) -> None:
    one, two = clients(pair)
    version = one.get("/stores/counter").json()["version"]
    statuses: list[int] = []

    def claim(client: httpx.Client, value: int) -> None:
        op = [{"op": "replace", "path": "/n", "value": value}]
        headers = {**WRITE, "If-Match": f'"{version}"'}
        statuses.append(client.patch("/stores/counter", json=op, headers=headers).status_code)

    threads = [
        threading.Thread(target=claim, args=(c, i + 100)) for i, c in enumerate([one, two] * 3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [200, 412, 412, 412, 412, 412]
    assert two.get("/stores/counter").json()["version"] == version + 1


def test_kill_9_one_server_the_other_keeps_serving(pair: list[ServerProcess]) -> None:
    one, two = clients(pair)
    acked: dict[str, list[str]] = {"one": [], "two": []}
    started = threading.Event()

    def write(client: httpx.Client, tag: str, total: int) -> None:
        for i in range(total):
            op = [{"op": "add", "path": "/ids/-", "value": f"{tag}-{i}"}]
            try:
                r = client.patch("/stores/log", json=op, headers=WRITE)
            except httpx.HTTPError:
                return  # its server is gone
            if r.status_code == 200:
                acked[tag].append(f"{tag}-{i}")
                if len(acked[tag]) == 30:
                    started.set()

    threads = [
        threading.Thread(target=write, args=(one, "one", 100_000)),
        threading.Thread(target=write, args=(two, "two", 200)),
    ]
    for t in threads:
        t.start()
    assert started.wait(60)
    pair[0].proc.send_signal(signal.SIGKILL)
    for t in threads:
        t.join(timeout=120)
    assert len(acked["two"]) == 200  # the survivor served every request
    ids = two.get("/stores/log").json()["value"]["ids"]
    assert len(ids) == len(set(ids))
    assert set(acked["one"]) | set(acked["two"]) <= set(ids)


def test_server_takes_a_backend_url(tmp_path: Path) -> None:
    app = sk.new_app_scope()
    store = sk.Store({"n": 0}, name="n")
    server = SyncServer([store], secret="s", backend=f"sqlite:///{tmp_path}/x.db", app=app)
    assert server.backend is not None and app.backend is not None
    with app:
        store.set("n", 3)
    assert server.backend.load("app:app", "n") == (1, {"n": 3})
    with pytest.raises(ValueError, match="unknown scheme"):
        SyncServer([store], secret="s", backend="nope://x", app=sk.new_app_scope())


def test_hub_replays_from_the_backend_what_its_log_never_saw() -> None:
    from statekit.backends import MemoryBackend
    from statekit.server._hub import Hub

    backend = MemoryBackend()
    store = sk.Store({"n": 0}, name="n")
    here, there = backend.attach(sk.new_app_scope()), backend.attach(sk.new_app_scope())
    with there:
        for n in (1, 2, 3):
            store.set("n", n)
    hub = Hub()
    with here:
        copy = hub.copy(store)  # made after the commits: its own log starts at 3
        assert hub.replay(copy, 1) == [
            (2, [{"op": "replace", "path": "/n", "value": 2}]),
            (3, [{"op": "replace", "path": "/n", "value": 3}]),
        ]
        assert hub.replay(copy, 3) == []
        assert hub.replay(copy, 7) is None
