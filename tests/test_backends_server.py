"""SyncServer(backend=...): several server processes serve one state, no sticky sessions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx

import statekit as sk
from _backends import cleanup_prefix, free_port, new_prefix, redis_url, start_redis
from _server_fixtures import Events
from statekit import _patch
from statekit.server import SESSION_COOKIE, SyncServer

pytestmark = pytest.mark.timeout(180)

TESTS = str(Path(__file__).parent)
SRC = str(Path(__file__).parents[1] / "src")
SECRET = "backend test secret, not for production"
WRITE = {"X-Statekit": "1", "Content-Type": "application/json-patch+json"}
CALL = {"X-Statekit": "1", "Content-Type": "application/json"}


class ServerProcess:
    """``uvicorn _backend_server_app:app`` in its own process (group), on a free port."""

    def __init__(self, backend: str, prefix: str, *options: str) -> None:
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
                *options,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: --workers children go with it
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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
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


def opened(events: Events) -> dict[str, Any]:
    """The first event of a fresh stream after its ``retry``: the snapshot (or replay)."""
    assert events.next() == {"retry": "1000"}
    return events.next_event()


def patches_until(events: Events, version: int, seconds: float = 20.0) -> list[dict[str, Any]]:
    """The ``patch`` events of a stream up to ``version`` (heartbeats skipped), within
    ``seconds``; each read is bounded by the client's timeout too."""
    deadline = time.monotonic() + seconds
    got: list[dict[str, Any]] = []
    while not got or got[-1]["data"]["version"] < version:
        assert time.monotonic() < deadline, f"version {version} not streamed; got {got[-3:]}"
        event = events.next()
        if "comment" not in event:
            assert event.get("event") == "patch", event
            got.append(event)
    return got


def replayed(snapshot: dict[str, Any], patches: list[dict[str, Any]]) -> Any:
    """The document a client builds from a snapshot and the patches after it; also
    checks that they chain (each one's base is the version before it): nothing missed."""
    doc, version = _patch.freeze_json(snapshot["data"]["value"]), snapshot["data"]["version"]
    for event in patches:
        assert event["data"]["base"] == version, (version, event)
        doc, _ = _patch.apply(doc, event["data"]["ops"])
        version = event["data"]["version"]
    return doc


def stream_client(pair: list[ServerProcess], at: int, like: httpx.Client) -> httpx.Client:
    """A client of server ``at`` with ``like``'s session cookie, for an event stream."""
    c = httpx.Client(base_url=pair[at].url, timeout=10)
    c.cookies.set(SESSION_COOKIE, like.cookies[SESSION_COOKIE])
    return c


def add_id(client: httpx.Client, value: str) -> int:
    op = [{"op": "add", "path": "/ids/-", "value": value}]
    r = client.patch("/stores/log", json=op, headers=WRITE)
    assert r.status_code == 200, r.text
    return int(r.json()["version"])


def test_a_write_through_one_process_reaches_an_sse_client_of_the_other(
    pair: list[ServerProcess],
) -> None:
    one, _ = clients(pair)
    with stream_client(pair, 1, one) as two, Events(two, "/events?store=log") as events:
        snapshot = opened(events)
        assert snapshot["event"] == "snapshot" and snapshot["data"]["value"] == {"ids": []}
        base = snapshot["data"]["version"]
        version = add_id(one, "first")
        (event,) = patches_until(events, version)
        assert event["id"] == f"log={version}"
        assert event["data"] == {
            "store": "log",
            "base": base,
            "version": version,
            "ops": [{"op": "add", "path": "/ids/0", "value": "first"}],
        }
        # A burst: the stream may coalesce commits, but misses none.
        for i in range(20):
            version = add_id(one, f"burst-{i}")
        patches = [event, *patches_until(events, version)]
        assert replayed(snapshot, patches) == {"ids": ["first"] + [f"burst-{i}" for i in range(20)]}
        assert two.get("/stores/log").json()["value"] == replayed(snapshot, patches)


def test_users_stay_apart_on_event_streams_across_processes(pair: list[ServerProcess]) -> None:
    one, _ = clients(pair)
    alice, bob = {"x-test-user": "alice"}, {"x-test-user": "bob"}

    def add_todo(user: dict[str, str], title: str) -> int:
        op = [{"op": "add", "path": "/todo/-", "value": title}]
        r = one.patch("/stores/todos", json=op, headers={**WRITE, **user})
        assert r.status_code == 200, r.text
        return int(r.json()["version"])

    with (
        stream_client(pair, 1, one) as two,
        Events(two, "/events?store=todos", alice) as alices,
        Events(two, "/events?store=todos", bob) as bobs,
    ):
        assert opened(alices)["data"]["value"] == {"todo": []}
        assert opened(bobs)["data"]["value"] == {"todo": []}
        version = add_todo(alice, "alice 1")
        assert [e["data"]["ops"] for e in patches_until(alices, version)] == [
            [{"op": "add", "path": "/todo/0", "value": "alice 1"}]
        ]
        # Had alice's write reached bob's stream, it would come before bob's own.
        version = add_todo(bob, "bob 1")
        assert [e["data"]["ops"] for e in patches_until(bobs, version)] == [
            [{"op": "add", "path": "/todo/0", "value": "bob 1"}]
        ]
        version = add_todo(alice, "alice 2")
        assert [e["data"]["ops"] for e in patches_until(alices, version)] == [
            [{"op": "add", "path": "/todo/1", "value": "alice 2"}]
        ]


@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[tuple[str, str, list[ServerProcess]]]:
    """Two server processes on the shared test Redis: (url, prefix, servers)."""
    url, prefix = redis_url(), new_prefix()
    servers: list[ServerProcess] = []
    try:
        servers.append(ServerProcess(url, prefix))
        servers.append(ServerProcess(url, prefix))
        yield url, prefix, servers
    finally:
        for server in servers:
            server.stop()
        cleanup_prefix(url, prefix)


def pubsub_ids(admin: Any, prefix: str, pid: int) -> list[int]:
    """Redis client ids of the pub/sub connection(s) of the server process ``pid``."""
    name = f"statekit-pubsub:{prefix}:{pid}:"
    return [int(c["id"]) for c in admin.client_list(_type="pubsub") if c["name"].startswith(name)]


def test_dropped_pubsub_the_process_resyncs_and_its_streams_miss_nothing(
    redis_pair: tuple[str, str, list[ServerProcess]],
) -> None:
    import redis

    url, prefix, servers = redis_pair
    one, _ = clients(servers)
    admin = redis.Redis.from_url(url, socket_timeout=10, decode_responses=True)
    pid = servers[1].proc.pid
    try:
        with stream_client(servers, 1, one) as two, Events(two, "/events?store=log") as events:
            snapshot = opened(events)
            ids = pubsub_ids(admin, prefix, pid)
            assert ids  # the stream's copy made process 2 subscribe
            version, expected = snapshot["data"]["version"], []
            for round_ in range(5):
                # CLIENT KILL TYPE pubsub, narrowed to process 2's connection;
                # the writes right after it land while it reconnects, and
                # their notices are lost: only the resync brings them.
                for client_id in ids:
                    admin.client_kill_filter(_id=client_id)
                for i in range(4):
                    expected.append(f"r{round_}-{i}")
                    version = add_id(one, expected[-1])
                deadline = time.monotonic() + 20
                while not (fresh := pubsub_ids(admin, prefix, pid)) or fresh == ids:
                    assert time.monotonic() < deadline, "process 2 did not resubscribe"
                    time.sleep(0.02)
                ids = fresh
            patches = patches_until(events, version)
            assert replayed(snapshot, patches) == {"ids": expected}
            # And notices flow again.
            version = add_id(one, "after")
            assert replayed(snapshot, patches + patches_until(events, version)) == {
                "ids": [*expected, "after"]
            }
    finally:
        admin.close()


def test_redis_restart_servers_reconnect_and_streams_resync(tmp_path: Path) -> None:
    redis_url()  # skips (or fails under STATEKIT_REQUIRE_REDIS=1) without Redis
    proc, port = start_redis(tmp_path / "redis", persist=True)
    url, prefix = f"redis://127.0.0.1:{port}/0", new_prefix()
    servers: list[ServerProcess] = []
    try:
        servers.extend(ServerProcess(url, prefix) for _ in range(2))
        one, _ = clients(servers)
        with stream_client(servers, 1, one) as two, Events(two, "/events?store=log") as events:
            snapshot = opened(events)
            before = [add_id(one, f"before-{i}") for i in range(3)][-1]
            patches = patches_until(events, before)
            proc.kill()  # appendfsync always: every acknowledged commit is on disk
            proc.wait(timeout=10)
            op = [{"op": "add", "path": "/ids/-", "value": "while down"}]
            refused = one.patch("/stores/log", json=op, headers=WRITE)
            # Refused, naming the cause (the server answers 400 request_failed).
            assert refused.status_code != 200 and "BackendUnavailable" in refused.text
            proc, _ = start_redis(tmp_path / "redis", persist=True, port=port)
            deadline = time.monotonic() + 30
            while True:  # a pooled connection may still be the dead one's, once
                r = one.patch("/stores/log", json=[{**op[0], "value": "back"}], headers=WRITE)
                if r.status_code == 200:
                    break
                assert time.monotonic() < deadline, r.text
                time.sleep(0.2)
            after = int(r.json()["version"])
            assert after == before + 1  # the persisted state is back, nothing half-written
            patches += patches_until(events, after, seconds=30)  # process 2 resubscribed
            expected = {"ids": ["before-0", "before-1", "before-2", "back"]}
            assert replayed(snapshot, patches) == expected
        # A client that reconnects with the version it had before the restart
        # gets what it missed, replayed from Redis's stream.
        with (
            stream_client(servers, 1, one) as two,
            Events(two, "/events?store=log", {"Last-Event-ID": f"log={before}"}) as events,
        ):
            assert events.next() == {"retry": "1000"}
            (event,) = patches_until(events, after)
            assert event["data"]["base"] == before
            assert event["data"]["ops"] == [{"op": "add", "path": "/ids/3", "value": "back"}]
    finally:
        for server in servers:
            server.stop()
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("action", ["bump", "bump_sync"])
def test_400_concurrent_writers_over_two_server_processes_end_exact(
    pair: list[ServerProcess], action: str
) -> None:
    one, _ = clients(pair)
    cookie = one.cookies[SESSION_COOKIE]

    async def crowd(server: ServerProcess, count: int) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as c:
            c.cookies.set(SESSION_COOKIE, cookie)
            path = f"/stores/counter/actions/{action}"
            return await asyncio.gather(
                *(c.post(path, json={}, headers=CALL) for _ in range(count))
            )

    async def both() -> list[list[httpx.Response]]:
        return await asyncio.gather(crowd(pair[0], 200), crowd(pair[1], 200))

    answers = [r for group in asyncio.run(both()) for r in group]
    failed = [(r.status_code, r.text) for r in answers if r.status_code != 200]
    assert not failed, (len(failed), failed[:3])
    # Every writer got its own increment: the values 1..400, each once.
    assert sorted(r.json()["result"] for r in answers) == list(range(1, 401))
    for server in pair:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            assert c.get("/stores/counter").json()["value"] == {"n": 400}


def test_uvicorn_workers_share_one_state(tmp_path: Path) -> None:
    """The README's ``uvicorn app:server --workers N``: connections land on either
    worker, and a stream held by one sees the writes served by the other."""
    url, prefix = redis_url(), new_prefix()
    server = ServerProcess(url, prefix, "--workers", "2")
    try:
        one, _ = clients([server, server])
        with stream_client([server], 0, one) as two, Events(two, "/events?store=log") as events:
            snapshot = opened(events)
            pids: set[int] = set()
            expected: list[str] = []
            deadline = time.monotonic() + 30
            while len(pids) < 2:  # a fresh connection each time: the kernel picks a worker
                assert time.monotonic() < deadline, f"one worker answered everything: {pids}"
                with httpx.Client(base_url=server.url, timeout=10, cookies=one.cookies) as c:
                    r = c.post("/stores/counter/actions/pid", json={}, headers=CALL)
                    pids.add(r.json()["result"])
                    expected.append(f"via {r.json()['result']}")
                    version = add_id(c, expected[-1])
            assert replayed(snapshot, patches_until(events, version)) == {"ids": expected}
    finally:
        server.stop()
        cleanup_prefix(url, prefix)


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
            (2, '[{"op":"replace","path":"/n","value":2}]'),
            (3, '[{"op":"replace","path":"/n","value":3}]'),
        ]
        assert hub.replay(copy, 3) == []
        assert hub.replay(copy, 7) is None


def test_a_sync_action_that_loses_the_race_runs_again_on_the_fresh_state() -> None:
    from statekit.backends import MemoryBackend
    from statekit.server._actions import Exposed
    from statekit.server._errors import ApiError

    backend = MemoryBackend()
    app = backend.attach(sk.new_app_scope())
    counter = sk.Store({"n": 0}, name="counter")
    seen: list[int] = []

    def bump() -> int:
        seen.append(counter.get("n"))
        if len(seen) == 1:  # another process commits while this one runs
            op = {"op": "replace", "path": "/n", "value": 10}
            backend._write("app:app", "counter", [op], None, initial='{"n": 0}', ttl=None)
        return int(counter.update("n", lambda n: n + 1))

    def refuse() -> None:
        raise sk.VersionConflict("the action's own answer")

    with app:
        counter.get("n")
        assert asyncio.run(Exposed(counter, bump).call({})) == 11
        assert seen == [0, 10]  # the second run saw the other process's commit
        assert (counter.get("n"), counter.version) == (11, 2)
        with pytest.raises(ApiError, match="own answer"):
            asyncio.run(Exposed(counter, refuse).call({}))
    assert backend.load("app:app", "counter") == (2, {"n": 11})
