"""Sync server benchmark: JSON Patches written over HTTP and received over SSE, next to
HTeaLeaf's store endpoint under the same request load.

Run ``python benchmarks/sync.py`` (``--quick`` for a smoke run, ``--json
out.json`` to also save the numbers).

The servers run under uvicorn in subprocesses on 127.0.0.1, one worker each,
uvicorn's default loop and HTTP parser (uvloop and httptools when installed,
as they are with the ``server`` extra; the report names the pair); the load comes from another process: a
plain asyncio HTTP/1.1 client on raw streams (keep-alive, chunked SSE
parsing), so that the load generator's own cost per request stays small. The
client runs on uvloop when it is installed (the report says which loop): on
asyncio's own loop it needs about as much CPU as the server it measures, and on a
small host it would then be what limits the rates.

Scenarios (offered rates are targets for the whole run; each writer paces
itself and has one request in flight per connection, so the achieved rate
drops below the offered one when the server cannot keep up):

(a) sessions
    ``--clients`` (100) clients, each with its own session cookie, one
    keep-alive connection writing ``PATCH stores/draft`` (a session-scoped
    store, ``[{"op": "replace", "path": "/n", "value": k}]``) and one SSE
    stream ``events?store=draft`` receiving them. Offered: ``--rate-a``
    (5,000) patches/s in all.
(b) fan-out
    one writer (one session, ``--window`` (8) keep-alive connections) writing
    ``PATCH stores/shared`` (app scope) at ``--rate-b`` (2,000) patches/s, and
    ``--clients`` SSE subscribers, each in its own session, receiving every
    patch (the server may coalesce several into one event).

Latency is from the moment a PATCH is written to the socket to the moment
the SSE event carrying it is read (same process, same clock); the PATCH
response time is reported too. Correctness is checked before anything is
printed: every subscriber receives every acknowledged patch exactly once,
in version order, at the version its PATCH answer named (``base`` of each
event = the version before it; with ``--backend`` concurrent PATCHes may
share one version, a group commit, and are then checked to arrive no
earlier than it), and the final snapshot matches.

HTeaLeaf 0.4 (``htealeaf`` from PyPI, the package behind the seed document)
runs its ``SuperStore`` endpoint behind its ASGI adapter under the same
writers: ``PATCH /api/_store/{id}/n`` with the JSON value (an ``AuthStore``
per session for (a), a global ``Store`` for (b)). It has no push, so only
its write rate and write latency are measured (its browser re-fetches the
page after each call); the final values read back are checked.

The statekit server runs with ``Limits(rate=None)``: the default rate limit
(50 requests/s per identity, bursts of 100) would refuse the benchmark's
writers. Server CPU per patch is read from ``/proc/<pid>/stat`` over the
measured window (the most stable figure on a shared machine), and so is the
load generator's own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _servers import free_port, wait_until_up

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
try:
    import statekit  # noqa: F401
except ImportError:  # pragma: no cover - running from a plain checkout
    sys.path.insert(0, str(ROOT / "src"))

SECRET = "benchmark-secret-" + "0" * 16
VARIANTS = ("statekit", "htealeaf")
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the servers


def statekit_app(backend: str | None, interval: float | None = None) -> Any:
    import statekit as sk
    from statekit.server import Limits, SyncServer

    draft = sk.Store({"n": 0}, name="draft", scope="session", writable=["/n"])
    shared = sk.Store({"n": 0}, name="shared", writable=["/n"])
    extra: dict[str, Any] = {} if interval is None else {"event_interval": interval}
    return SyncServer(
        [draft, shared], secret=SECRET, limits=Limits(rate=None), backend=backend, **extra
    )


def htealeaf_app() -> Any:
    from uuid import uuid4

    from htealeaf import AuthStore, HteaLeaf, Store, SuperStore

    app = HteaLeaf()
    hub = SuperStore(app)
    Store({"n": 0}, id="shared")
    # One store per session: the session dict gets a key on first use.
    draft = AuthStore(lambda session: session.setdefault("uid", uuid4().hex), {"n": 0})
    hub.add("draft", draft)
    return app


def serve(
    variant: str, port: int, backend: str | None, profile: str | None, interval: float | None
) -> None:
    import signal

    import uvicorn

    app = statekit_app(backend, interval) if variant == "statekit" else htealeaf_app()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

        def stop(*_: Any) -> None:
            profiler.disable()
            profiler.dump_stats(profile)
            os._exit(0)

        signal.signal(signal.SIGUSR1, stop)
    # HTeaLeaf's ASGI adapter does not speak the lifespan protocol.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on" if variant == "statekit" else "off",
    )


# ---------------------------------------------------------------- a small HTTP client


class Conn:
    """One keep-alive HTTP/1.1 connection: send a request, read its response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(data)
        return await read_response(self.reader)

    def close(self) -> None:
        self.writer.close()


def build(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("PATCH", "POST"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            value = value.strip()
            # Set-Cookie may repeat; the benchmark needs the one cookie each server sets.
            headers[key] = value if key not in headers or key != "set-cookie" else headers[key]
    return status, headers


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status, headers = await read_head(reader)
    length = headers.get("content-length")
    if length is not None:
        return status, headers, await reader.readexactly(int(length))
    if headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, headers, b"".join(parts)
            parts.append(chunk[:-2])
    return status, headers, b""


def cookie_of(headers: dict[str, str]) -> str:
    return headers["set-cookie"].split(";", 1)[0]


class Subscriber:
    """One SSE stream: parses events as chunks arrive and checks each patch."""

    def __init__(self, conn: Conn, store: str) -> None:
        self.conn = conn
        self.store = store
        self.version = -1
        # version -> receipt time, and the value of the op at that version
        # value -> (receipt time, version, exact): the version of its commit
        # when each commit of the event had one op, else the event's last one
        # (a backend's group commit puts several writers' ops in one version).
        self.received: dict[Any, tuple[float, int, bool]] = {}
        self.events: list[float] = []  # receipt times of patch events
        self.error: str | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        reader = self.conn.reader
        status, headers = await read_head(reader)
        if status != 200 or headers.get("transfer-encoding") != "chunked":
            self.error = f"events answered {status} {headers}"
            self.ready.set_result(None)
            return
        buffer = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return
            now = time.perf_counter()
            buffer += chunk[:-2]
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                self._event(event, now)

    def _event(self, event: bytes, now: float) -> None:
        kind = data = None
        for line in event.split(b"\n"):
            if line.startswith(b"event: "):
                kind = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if data is None:
            return  # retry:, comments
        body = json.loads(data)
        if kind == b"snapshot":
            self.version = body["version"]
            if not self.ready.done():
                self.ready.set_result(None)
            return
        self.events.append(now)
        if body["base"] != self.version and self.error is None:
            self.error = f"event base {body['base']} after version {self.version}"
        ops = body["ops"]
        exact = body["version"] - body["base"] == len(ops)
        if body["version"] - body["base"] > len(ops) and self.error is None:
            self.error = f"event {body['base']}->{body['version']} carries {len(ops)} ops"
        version = body["base"]
        for op in ops:
            version = version + 1 if exact else body["version"]
            if op["value"] in self.received and self.error is None:
                self.error = f"value {op['value']} delivered twice"
            self.received[op["value"]] = (now, version, exact)
        self.version = body["version"]


# ---------------------------------------------------------------- the load


class Writer:
    """Paced PATCHes of one session over ``window`` keep-alive connections."""

    def __init__(self, conns: list[Conn], request: Any, rate: float) -> None:
        self.conns = conns
        self.request = request  # k -> request bytes
        self.rate = rate
        self.sent: dict[Any, float] = {}  # value -> time written
        self.acked: dict[Any, int] = {}  # value -> version answered (statekit) or 0
        self.latency: list[float] = []
        self.error: str | None = None
        self.next = 0

    async def run(self, start: float, until: float, keep: float, parse: bool) -> None:
        await asyncio.gather(*(self._conn(c, start, until, keep, parse) for c in self.conns))

    async def _conn(self, conn: Conn, start: float, until: float, keep: float, parse: bool) -> None:
        perf = time.perf_counter
        while True:
            self.next += 1
            k = self.next
            due = start + k / self.rate if self.rate else 0.0
            now = perf()
            if due > now:
                await asyncio.sleep(due - now)
                now = perf()
            if now >= until:
                return
            data = self.request(k)
            self.sent[k] = now
            conn.writer.write(data)
            status, _, body = await read_response(conn.reader)
            done = perf()
            if status != 200:
                self.error = f"PATCH answered {status}: {body[:200]!r}"
                return
            self.acked[k] = json.loads(body)["version"] if parse else 0
            if now >= keep:
                self.latency.append(done - now)


async def statekit_client(port: int, store: str, subscribe: bool) -> tuple[str, Subscriber | None]:
    """A new session (GET the snapshot), and its SSE stream when asked."""
    conn = await Conn.open(port)
    status, headers, _ = await conn.request(build("GET", f"/stores/{store}", {}))
    assert status == 200, status
    cookie = cookie_of(headers)
    conn.close()
    if not subscribe:
        return cookie, None
    sse = await Conn.open(port)
    sse.writer.write(
        build("GET", f"/events?store={store}", {"Cookie": cookie, "Accept": "text/event-stream"})
    )
    sub = Subscriber(sse, store)
    sub.task = asyncio.ensure_future(sub.run())
    await sub.ready
    return cookie, sub


def statekit_patch(store: str, cookie: str) -> Any:
    head = (
        f"PATCH /stores/{store} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        "Content-Type: application/json-patch+json\r\nX-Statekit: 1\r\n"
    ).encode()

    def request(k: int) -> bytes:
        body = b'[{"op":"replace","path":"/n","value":%d}]' % k
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    return request


def htealeaf_patch(store: str, cookie: str) -> Any:
    head = (
        f"PATCH /api/_store/{store}/n HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        "Content-Type: application/json\r\n"
    ).encode()

    def request(k: int) -> bytes:
        body = b"%d" % k
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    return request


async def htealeaf_client(port: int, store: str) -> str:
    conn = await Conn.open(port)
    status, headers, _ = await conn.request(build("GET", f"/api/_store/{store}/n", {}))
    assert status == 200, status
    conn.close()
    return cookie_of(headers)


def cpu_of(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def run_round(
    variant: str, scenario: str, port: int, pid: int, spec: dict[str, Any]
) -> dict[str, Any]:
    clients, seconds, warmup = spec["clients"], spec["seconds"], spec["warmup"]
    rate = spec["rate_a"] if scenario == "a" else spec["rate_b"]
    writers: list[Writer] = []
    subs: list[Subscriber] = []
    cookies: list[str] = []
    store = "draft" if scenario == "a" else "shared"
    if variant == "statekit":
        for _ in range(clients):
            cookie, sub = await statekit_client(port, store, True)
            assert sub is not None
            subs.append(sub)
            cookies.append(cookie)
        if scenario == "b":
            cookies = [(await statekit_client(port, store, False))[0]]
        make = statekit_patch
    else:
        count = clients if scenario == "a" else 1
        cookies = [await htealeaf_client(port, store) for _ in range(count)]
        make = htealeaf_patch
    if scenario == "a":
        for cookie in cookies:
            writers.append(Writer([await Conn.open(port)], make(store, cookie), rate / clients))
    else:
        window = [await Conn.open(port) for _ in range(spec["window"])]
        writers.append(Writer(window, make(store, cookies[0]), rate))
    loop = asyncio.get_running_loop()
    start = time.perf_counter() + 0.05
    keep = start + warmup
    until = keep + seconds

    async def measure() -> tuple[float, float]:
        await asyncio.sleep(keep - time.perf_counter())
        server0, client0 = cpu_of(pid), time.process_time()
        await asyncio.sleep(until - time.perf_counter())
        server1 = cpu_of(pid)
        return (server1[0] - server0[0], server1[1] - server0[1]), time.process_time() - client0

    jobs = [
        w.run(start + random.random() / max(w.rate, 1.0), until, keep, variant == "statekit")
        for w in writers
    ]
    cpu, _ = await asyncio.gather(measure(), asyncio.gather(*jobs))
    server_cpu, client_cpu = cpu
    errors = [w.error for w in writers if w.error]
    # Every acknowledged patch must reach every subscriber.
    deadline = loop.time() + 10
    if variant == "statekit":
        while loop.time() < deadline and any(
            len(s.received) < len(w.acked)
            for s, w in zip(subs, writers * (clients if scenario == "b" else 1), strict=False)
        ):
            await asyncio.sleep(0.05)
    result = _check_and_measure(variant, scenario, writers, subs, keep, until)
    result["errors"] = (
        errors + result["errors"] + await _check_final(variant, port, store, cookies, writers)
    )
    result["server_cpu_s"] = server_cpu[0] + server_cpu[1]
    result["server_sys_s"] = server_cpu[1]
    result["client_cpu_s"] = client_cpu
    for w in writers:
        for c in w.conns:
            c.close()
    for s in subs:
        if s.task is not None:
            s.task.cancel()
        s.conn.close()
    return result


async def _check_final(
    variant: str, port: int, store: str, cookies: list[str], writers: list[Writer]
) -> list[str]:
    """What each writer's session reads back at the end is what it wrote last."""
    errors: list[str] = []
    conn = await Conn.open(port)
    try:
        for cookie, w in zip(cookies, writers, strict=True):
            if not w.acked:
                errors.append("a writer got no answer at all")
                continue
            path = f"/stores/{store}" if variant == "statekit" else f"/api/_store/{store}/n"
            status, _, body = await conn.request(build("GET", path, {"Cookie": cookie}))
            if status != 200:
                errors.append(f"final read answered {status}")
                continue
            got = json.loads(body)
            if variant == "statekit":
                version = max(w.acked.values())
                want = [k for k, v in w.acked.items() if v == version]
                if got["version"] != version or got["value"]["n"] not in want:
                    errors.append(f"final snapshot {got}, last write {want} at {version}")
            else:
                # Its handlers run on a thread pool: with several connections the
                # last answered write is not necessarily the last applied one.
                last = sorted(w.acked)[-len(w.conns) :]
                if got not in last:
                    errors.append(f"final value {got}, last writes {last}")
    finally:
        conn.close()
    return errors


def _check_and_measure(
    variant: str,
    scenario: str,
    writers: list[Writer],
    subs: list[Subscriber],
    keep: float,
    until: float,
) -> dict[str, Any]:
    errors: list[str] = []
    window = until - keep
    in_window = sum(1 for w in writers for k, t in w.sent.items() if t >= keep and k in w.acked)
    write_lat = [x for w in writers for x in w.latency]
    out: dict[str, Any] = {
        "patches": in_window,
        "rate": in_window / window,
        "write_p50_ms": percentile(write_lat, 0.50),
        "write_p99_ms": percentile(write_lat, 0.99),
        "errors": errors,
    }
    if variant != "statekit":
        out.update(deliveries=0, delivered_rate=0.0, events=0, p50_ms=None, p99_ms=None)
        return out
    pairs = (
        list(zip(writers, subs, strict=True))
        if scenario == "a"
        else [(writers[0], s) for s in subs]
    )
    latency: list[float] = []
    events = 0
    for w, s in pairs:
        events += sum(1 for t in s.events if t >= keep)
        if s.error:
            errors.append(s.error)
        for k, version in w.acked.items():
            got = s.received.get(k)
            if got is None:
                errors.append(f"value {k} (version {version}) never reached a subscriber")
                break
            if got[1] != version if got[2] else got[1] < version:
                errors.append(f"value {k} arrived as version {got[1]}, the answer said {version}")
                break
            sent = w.sent[k]
            if sent >= keep:
                latency.append(got[0] - sent)
        extra = set(s.received) - set(w.acked)
        if extra:
            errors.append(f"{len(extra)} values received that no write was answered with")
    out.update(
        deliveries=len(latency),
        delivered_rate=len(latency) / window,
        events=events,
        p50_ms=percentile(latency, 0.50),
        p99_ms=percentile(latency, 0.99),
    )
    return out


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    order = list(spec["servers"])
    for scenario in spec["scenarios"]:
        for round_ in range(spec["rounds"]):
            for name in order if round_ % 2 == 0 else order[::-1]:
                port, pid = spec["servers"][name]
                variant = "statekit" if name.startswith("statekit") else "htealeaf"
                # The load process is the instrument: its own collector must not
                # pause it mid-round (its receipt maps hold millions of entries by
                # the end of a round, and a full collection of them takes 50-130 ms
                # on this host, time a subscriber would count as the server's).
                gc.collect()
                gc.disable()
                try:
                    got = await run_round(variant, scenario, port, pid, spec)
                finally:
                    gc.enable()
                results.setdefault(f"{scenario}:{name}", []).append(got)
                await asyncio.sleep(0.2)
    return results


# ---------------------------------------------------------------- orchestration


def _merge(rounds: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Rounds of one row: medians of the rates and latencies, sums of the counts."""

    def med(key: str) -> float | None:
        values = sorted(r[key] for r in rounds if r[key] is not None)
        return values[len(values) // 2] if values else None

    patches = sum(r["patches"] for r in rounds)
    return {
        "rounds": len(rounds),
        "patches": patches,
        "rate": med("rate"),
        "delivered_rate": med("delivered_rate"),
        "deliveries": sum(r["deliveries"] for r in rounds),
        "events": sum(r["events"] for r in rounds),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "write_p50_ms": med("write_p50_ms"),
        "write_p99_ms": med("write_p99_ms"),
        "server_us_per_patch": 1e6 * sum(r["server_cpu_s"] for r in rounds) / max(patches, 1),
        "server_sys_share": sum(r["server_sys_s"] for r in rounds)
        / max(sum(r["server_cpu_s"] for r in rounds), 1e-9),
        "server_cpu_share": sum(r["server_cpu_s"] for r in rounds) / (seconds * len(rounds)),
        "client_cpu_share": sum(r["client_cpu_s"] for r in rounds) / (seconds * len(rounds)),
        "errors": [e for r in rounds for e in r["errors"]],
    }


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def client_loop() -> str:
    """The event loop the load process runs on: uvloop when installed, else asyncio's."""
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`load` on :func:`client_loop`'s loop."""
    if client_loop() == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(load(spec))
    return asyncio.run(load(spec))


def uvicorn_pair() -> str:
    """The loop and HTTP parser uvicorn's "auto" settings pick in this environment."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} / {http}"


def report(spec: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    rows = {key: _merge(rounds, spec["seconds"]) for key, rounds in results.items()}
    load_avg = os.getloadavg()
    print(
        f"sync server benchmark: {spec['clients']} clients, {spec['rounds']} rounds of "
        f"{spec['seconds']:g} s (after {spec['warmup']:g} s warm-up) per row, "
        f"offered (a) {spec['rate_a']:,.0f}/s, (b) {spec['rate_b']:,.0f}/s "
        f"(one writer, {spec['window']} connections)"
    )
    print(f"load average after: {load_avg[0]:.1f} (1 min), {load_avg[1]:.1f} (5 min)")
    print(f"uvicorn loop / HTTP parser (the servers' defaults here): {uvicorn_pair()}")
    print(f"load client loop: {spec.get('client_loop', client_loop())}")
    header = (
        f"{'scenario':<13}{'server':<18}{'patches/s':>10}{'deliv/s':>10}{'events':>8}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'wr p50':>8}{'wr p99':>8}{'srv µs/p':>9}{'(sys)':>6}"
        f"{'srv cpu':>8}{'load cpu':>9}"
    )
    print(header)
    for key, row in rows.items():
        scenario, name = key.split(":", 1)
        label = "(a) sessions" if scenario == "a" else "(b) fan-out"
        push = name.startswith("statekit")
        print(
            f"{label:<13}{name:<18}{row['rate']:>10,.0f}"
            f"{(_fmt(row['delivered_rate'], ',.0f') if push else 'no push'):>10}"
            f"{(row['events'] if push else 0):>8,}"
            f"{_fmt(row['p50_ms'], '.2f'):>8}{_fmt(row['p99_ms'], '.2f'):>8}"
            f"{_fmt(row['write_p50_ms'], '.2f'):>8}{_fmt(row['write_p99_ms'], '.2f'):>8}"
            f"{row['server_us_per_patch']:>9.0f}{row['server_sys_share']:>6.0%}"
            f"{row['server_cpu_share']:>8.0%}"
            f"{row['client_cpu_share']:>9.0%}"
        )
    print(
        "patches/s: write requests answered per second; deliv/s: patch deliveries per second "
        "(x subscribers in (b)); events: SSE patch events received (measured windows); p50/p99: write to "
        "receipt on the SSE stream; wr: PATCH response time; srv µs/p: server CPU per patch (sys: the kernel's share of it); "
        "cpu: share of one core."
    )
    print("htealeaf has no push: its row is its write requests only.")
    targets = {"a": (spec["rate_a"], 20.0), "b": (spec["rate_b"], 50.0)}
    for scenario, (rate, p99) in targets.items():
        sk_row, ht_row = rows.get(f"{scenario}:statekit"), rows.get(f"{scenario}:htealeaf")
        if sk_row is None:
            continue
        met = sk_row["rate"] >= rate * 0.99 and (sk_row["p99_ms"] or 1e9) <= p99
        line = (
            f"({scenario}) statekit: {sk_row['rate']:,.0f} patches/s, p99 "
            f"{_fmt(sk_row['p99_ms'], '.1f')} ms (target >= {rate:,.0f}/s, p99 <= {p99:g} ms: "
            f"{'met' if met else 'NOT met'})"
        )
        if ht_row is not None:
            line += (
                f"; vs htealeaf writes: rate {sk_row['rate'] / ht_row['rate']:.2f}x, write p50 "
                f"{sk_row['write_p50_ms'] / ht_row['write_p50_ms']:.2f}x, write p99 "
                f"{sk_row['write_p99_ms'] / ht_row['write_p99_ms']:.2f}x, server CPU/patch "
                f"{sk_row['server_us_per_patch'] / ht_row['server_us_per_patch']:.2f}x"
            )
        print(line)
    failed = {key: row["errors"][:3] for key, row in rows.items() if row["errors"]}
    if failed:
        raise SystemExit(f"correctness check failed: {json.dumps(failed, indent=1)}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100, help="sessions / subscribers")
    parser.add_argument("--rate-a", type=float, default=5000.0, help="(a) offered patches/s")
    parser.add_argument("--rate-b", type=float, default=2000.0, help="(b) offered patches/s")
    parser.add_argument("--window", type=int, default=8, help="(b) writer connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row, alternating")
    parser.add_argument("--scenarios", default="a,b", help="a, b or a,b")
    parser.add_argument("--servers", default=",".join(VARIANTS), help="statekit,htealeaf")
    parser.add_argument(
        "--backend", help="also run statekit with this backend URL (memory://, redis://...)"
    )
    parser.add_argument(
        "--event-interval",
        type=float,
        help="SyncServer(event_interval=...) seconds (default: the server's default)",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the statekit server to FILE")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument(
        "--serve", nargs=3, metavar=("VARIANT", "PORT", "BACKEND"), help=argparse.SUPPRESS
    )
    parser.add_argument("--load", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        backend = None if args.serve[2] == "-" else args.serve[2]
        serve(args.serve[0], int(args.serve[1]), backend, args.profile, args.event_interval)
        return
    if args.load:
        print(json.dumps(run_load(json.loads(args.load))))
        return
    if args.quick:
        args.seconds, args.warmup, args.rounds = 1.0, 0.5, 1
    wanted = [(name, name, None) for name in args.servers.split(",")]
    if args.backend:
        wanted.append((f"statekit+{args.backend.split(':', 1)[0]}", "statekit", args.backend))
    procs: list[subprocess.Popen[bytes]] = []
    servers: dict[str, tuple[int, int]] = {}
    try:
        for name, variant, backend in wanted:
            port = free_port()
            cmd = [sys.executable, __file__, "--serve", variant, str(port), backend or "-"]
            if args.profile and name == "statekit":
                cmd += ["--profile", args.profile]
            if args.event_interval is not None:
                cmd += ["--event-interval", str(args.event_interval)]
            proc = subprocess.Popen(cmd)
            procs.append(proc)
            wait_until_up(port, proc)
            servers[name] = (port, proc.pid)
        spec = {
            "servers": servers,
            "scenarios": args.scenarios.split(","),
            "clients": args.clients,
            "rate_a": args.rate_a,
            "rate_b": args.rate_b,
            "window": args.window,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "client_loop": client_loop(),
        }
        loader = subprocess.run(
            [sys.executable, __file__, "--load", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
        )
        if loader.returncode:
            raise SystemExit(f"the load process failed:\n{loader.stderr}")
        results = json.loads(loader.stdout)
    finally:
        import signal

        for proc, (name, _, _) in zip(procs, wanted, strict=True):
            if args.profile and name == "statekit":
                proc.send_signal(signal.SIGUSR1)
            else:
                proc.terminate()
        for proc in procs:
            proc.wait(10)
    rows = report(spec, results)
    if args.json:
        Path(args.json).write_text(json.dumps({"spec": spec, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
