"""Event streams under load: one-shot arming, the event interval, shared event bytes.

Most drive the ASGI app directly (no sockets): what is checked is the
stream's own logic: which commits wake whom, and what each event carries.
The last ones run a real uvicorn, for the fan-out that writes events to the
connections' transports itself. The API over a real uvicorn is
tests/test_server_api.py's.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from typing import Any

import httpx
import pytest

import statekit as sk
from _uvicorn import serve
from statekit.server import Limits, SyncServer, _events
from statekit.server._events import EventStream, _groups
from statekit.server._hub import Hub

pytestmark = pytest.mark.timeout(60)


class Stream:
    """One ``GET events`` on the app, its chunks parsed into events as they arrive."""

    def __init__(self, server: SyncServer, query: bytes) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.bodies: list[bytes] = []
        self._gone = asyncio.Event()
        self._buffer = b""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/events",
            "raw_path": b"/events",
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
        }
        self.task = asyncio.ensure_future(server(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        body = message.get("body")
        if not body:
            return
        self.bodies.append(body)
        now = time.monotonic()
        self._buffer += body
        *chunks, self._buffer = self._buffer.split(b"\n\n")
        for chunk in chunks:
            fields = dict(
                line.split(": ", 1) for line in chunk.decode().split("\n") if ": " in line
            )
            if "data" in fields:
                self.events.append((now, fields["event"], json.loads(fields["data"])))

    def patches(self, store: str = "n") -> list[dict[str, Any]]:
        return [d for _, kind, d in self.events if kind == "patch" and d["store"] == store]

    async def until(self, check: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out; events: {self.events[-3:]}"
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        self._gone.set()
        await asyncio.wait_for(self.task, 5)


def _server(store: sk.Store, *others: sk.Store, interval: float) -> SyncServer:
    return SyncServer(
        [store, *others], secret="s", limits=Limits(rate=None), event_interval=interval
    )


def _versions(stream: Stream, start: int, store: str = "n") -> list[int]:
    """The versions a stream's events covered; each event starts where the last ended."""
    version, seen = start, []
    for data in stream.patches(store):
        assert data["base"] == version, (data["base"], version)
        assert data["version"] - data["base"] == len(data["ops"])
        seen.extend(range(data["base"] + 1, data["version"] + 1))
        version = data["version"]
    return seen


async def test_the_first_commit_goes_at_once_then_the_interval_gathers_the_rest() -> None:
    n = sk.Store({"n": 0}, name="n", writable=["/n"])
    with sk.new_app_scope():
        server = _server(n, interval=0.3)
        stream = Stream(server, b"store=n")
        await stream.until(lambda: stream.events)  # the snapshot
        start = time.monotonic()
        n.set("n", 1)
        await stream.until(lambda: len(stream.patches()) == 1)
        assert stream.events[-1][0] - start < 0.25  # not held: the stream was quiet
        for i in range(2, 7):
            n.set("n", i)
        await stream.until(lambda: len(stream.patches()) == 2)
        last = stream.patches()[-1]
        assert [op["value"] for op in last["ops"]] == [2, 3, 4, 5, 6]  # one event, in order
        assert stream.events[-1][0] - stream.events[-2][0] >= 0.25  # after the interval
        assert _versions(stream, 0) == [1, 2, 3, 4, 5, 6]
        await stream.close()
        assert server.streams == 0


async def test_interval_zero_sends_each_commit_as_soon_as_the_stream_runs() -> None:
    n = sk.Store({"n": 0}, name="n", writable=["/n"])
    with sk.new_app_scope():
        server = _server(n, interval=0.0)
        stream = Stream(server, b"store=n")
        await stream.until(lambda: stream.events)
        for i in range(1, 4):
            n.set("n", i)
            await stream.until(lambda i=i: len(stream.patches()) == i)
        assert _versions(stream, 0) == [1, 2, 3]
        await stream.close()


async def test_many_streams_and_writer_threads_lose_nothing() -> None:
    n = sk.Store({"n": 0, "m": 0}, name="n", writable=["/n"])
    other = sk.Store({"k": 0}, name="other", writable=["/k"])
    with sk.new_app_scope() as app:
        server = _server(n, other, interval=0.005)
        streams = [Stream(server, b"store=n") for _ in range(20)]
        both = Stream(server, b"store=n&store=other")
        await asyncio.gather(*(s.until(lambda s=s: s.events) for s in [*streams, both]))

        def writes(key: str) -> None:
            for i in range(200):
                n.set(key, i)
                if key == "m" and i % 20 == 0:
                    other.set("k", i)

        threads = [threading.Thread(target=app.run, args=(writes, key)) for key in ("n", "m")]
        for t in threads:
            t.start()
        for i in range(100):  # and the loop's own writes, interleaved
            n.update("n", lambda v: v + 1)
            if i % 10 == 0:
                await asyncio.sleep(0.001)
        for t in threads:
            t.join()
        top = n.version
        for s in [*streams, both]:
            await s.until(lambda s=s: s.patches() and s.patches()[-1]["version"] == top)
            assert _versions(s, 0) == list(range(1, top + 1))
        await both.until(lambda: both.patches("other")[-1]["version"] == other.version)
        assert _versions(both, 0, "other") == list(range(1, other.version + 1))
        # one-store streams were sent the very same event bytes for each (base, version)
        assert len({bytes(b) for s in streams for b in s.bodies[1:]}) < sum(
            len(s.bodies) - 1 for s in streams
        )
        for s in [*streams, both]:
            await s.close()
        assert server.streams == 0


def test_wait_for_is_one_shot_and_checked_against_the_log() -> None:
    n = sk.Store({"n": 0}, name="n")
    with sk.new_app_scope():
        hub = Hub()
        copy = hub.copy(n)
        woken: list[str] = []
        assert hub.wait_for(copy, 1, 0, lambda: woken.append("a")) is False
        n.set("n", 1)
        n.set("n", 2)
        assert woken == ["a"]  # once, not per commit
        assert hub.wait_for(copy, 1, 1, lambda: woken.append("b")) is True  # news already
        n.set("n", 3)
        assert woken == ["a"]  # nothing was armed
        assert hub.wait_for(copy, 2, 3, lambda: woken.append("c")) is False
        hub.disarm(copy, 2)
        n.set("n", 4)
        assert woken == ["a"]


async def test_waiting_streams_share_the_loop_timers() -> None:
    # A timer made (and cancelled) per wait of each stream was most of what
    # a stream cost besides its socket write; the shared clock keeps one
    # loop timer per millisecond tick for all of them.
    from asyncio import futures

    loop = asyncio.get_running_loop()
    timers: list[Any] = []
    call_at = loop.call_at

    def counting(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        if callback is not futures._set_result_unless_cancelled:  # not this test's sleeps
            timers.append(callback)
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting  # type: ignore[method-assign]
    n = sk.Store({"n": 0}, name="n", writable=["/n"])
    with sk.new_app_scope():
        server = _server(n, interval=0.02)
        streams = [Stream(server, b"store=n") for _ in range(20)]
        await asyncio.gather(*(s.until(lambda s=s: s.events) for s in streams))
        timers.clear()
        for i in range(1, 201):
            n.set("n", i)
            await asyncio.sleep(0.002)
        for s in streams:
            await s.until(lambda s=s: s.patches() and s.patches()[-1]["version"] == 200)
            assert _versions(s, 0) == list(range(1, 201))
        events = sum(len(s.patches()) for s in streams)
        assert events >= 40  # several events per stream: the interval gathered the rest
        assert len(timers) < events / 4, (len(timers), events)
        for s in streams:
            await s.close()


# ------------------------------------------------------------------ fan-out under uvicorn
#
# Under uvicorn's httptools protocol a parked stream's events go straight to
# its transport, one framed event for all the streams of a store (the
# _Group of _events.py). These run a real uvicorn and read the raw chunked
# bytes each socket received.


class Raw:
    """One ``GET events`` over a plain socket: the body's chunks and events as they arrive."""

    def __init__(self, url: str, query: str, *, read: bool = True, rcvbuf: int = 0) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, int(port)))
        self.sock.sendall(f"GET /events?{query} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        self.chunks: list[bytes] = []
        self.parsed: list[tuple[str, dict[str, Any]]] = []
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self.sock.recv(65536)
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower(), head
        self._thread = threading.Thread(target=self._read, daemon=True)
        if read:
            self.start()

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> None:
        # Parsed here, as the bytes come: the tests poll the events often.
        text = b""
        while True:
            while b"\r\n" in self._buffer:
                size_line, _, rest = self._buffer.partition(b"\r\n")
                size = int(size_line, 16)
                if len(rest) < size + 2:
                    break
                if size == 0:
                    return
                data, self._buffer = rest[:size], rest[size + 2 :]
                self.chunks.append(data)
                text += data
                *whole, text = text.split(b"\n\n")
                for event in whole:
                    lines = event.decode().split("\n")
                    fields = dict(line.split(": ", 1) for line in lines if ": " in line)
                    if "data" in fields:
                        self.parsed.append((fields["event"], json.loads(fields["data"])))
            try:
                more = self.sock.recv(1 << 20)
            except OSError:
                return
            if not more:
                return
            self._buffer += more

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.parsed)

    def patches(self, store: str) -> list[dict[str, Any]]:
        return [d for kind, d in self.events() if kind == "patch" and d["store"] == store]

    def versions(self, store: str, start: int = 0) -> list[int]:
        """The versions covered, each event starting where the last ended (as _versions)."""
        version, seen = start, list[int]()
        for data in self.patches(store):
            assert data["base"] == version, (data["base"], version)
            seen.extend(range(data["base"] + 1, data["version"] + 1))
            version = data["version"]
        return seen

    def close(self, *, reset: bool = False) -> None:
        if reset:  # gone at once, as a crashed client: an RST, no FIN
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.shutdown(socket.SHUT_RD)  # wakes the reader thread
        if self._thread.is_alive():
            self._thread.join(10)
        self.sock.close()


def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def _parked(server: SyncServer) -> int:
    """How many of the server's streams are parked in a fan-out group."""
    return sum(len(g.members) for groups in _groups.values() for g in groups.values())


def test_fan_out_writes_the_same_bytes_to_every_stream_once_in_order(sk_app: sk.Scope) -> None:
    n = sk.Store({"n": 0}, name="n", writable=["/n"])
    other = sk.Store({"k": 0}, name="other", writable=["/k"])
    server = _server(n, other, interval=0.0)
    calls = {"pending": 0}
    pending = EventStream._pending

    def counting(self: EventStream, *, chunked: bool = False) -> bytes:
        calls["pending"] += 1
        return pending(self, chunked=chunked)

    with (
        pytest.MonkeyPatch.context() as mp,
        serve(server) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        mp.setattr(EventStream, "_pending", counting)
        mp.setattr(_events, "_POLL", 60.0)  # no shutdown-check wake-ups in between
        http.get("/stores").raise_for_status()
        streams = [Raw(url, "store=n") for _ in range(20)]
        both = Raw(url, "store=n&store=other")  # two stores: its own id, its own bytes
        _until(lambda: all(s.events() for s in [*streams, both]))
        _until(lambda: _parked(server) == 20)
        for i in range(1, 61):
            # Commits on the server's loop (PATCH) and on this thread (set):
            # each waits for every delivery, so each is one event per stream.
            if i % 2:
                http.patch(
                    "/stores/n",
                    content=json.dumps([{"op": "replace", "path": "/n", "value": i}]),
                    headers={"X-Statekit": "1", "Content-Type": "application/json-patch+json"},
                ).raise_for_status()
            else:
                n.set("n", i)
            if i % 20 == 0:
                other.set("k", i)
            _until(lambda i=i: all(len(s.patches("n")) == i for s in [*streams, both]))
        for s in [*streams, both]:
            assert s.versions("n") == list(range(1, 61))
            assert [d["ops"][0]["value"] for d in s.patches("n")] == list(range(1, 61))
        assert both.versions("other") == [1, 2, 3]
        # After its opening, every one-store stream got the very same bytes.
        assert len({b"".join(s.chunks[1:]) for s in streams}) == 1
        # ...without its task: no stream built its own events (the two-store
        # stream writes its own, 63 times, from the commit's wake-up).
        assert calls["pending"] <= 63 + 5, calls
        for s in [*streams, both]:
            s.close()
        _until(lambda: server.streams == 0)
        assert _parked(server) == 0


def test_a_stream_that_does_not_read_holds_up_no_other_and_loses_nothing(
    sk_app: sk.Scope,
) -> None:
    n = sk.Store({"n": 0, "blob": ""}, name="n", writable=["/n"])
    server = _server(n, interval=0.0)
    with serve(server) as url:
        readers = [Raw(url, "store=n") for _ in range(5)]
        slow = Raw(url, "store=n", read=False, rcvbuf=4096)
        _until(lambda: all(r.events() for r in readers))
        # ~12 MB for each stream: more than the kernel's socket buffers hold,
        # so the slow stream's transport pushes back (uvicorn pauses writing).
        for i in range(1, 121):
            n.set("", {"n": i, "blob": f"{i:06d}" * 17_000})
            _until(lambda i=i: all(len(r.patches("n")) == i for r in readers))
        paused = [s for s in server._streams if s._cycle is not None and s._cycle.flow.write_paused]
        assert len(paused) == 1  # the slow one, while the others got all 120
        for r in readers:
            assert r.versions("n") == list(range(1, 121))
        slow.start()
        _until(lambda: slow.patches("n") and slow.patches("n")[-1]["version"] == 120)
        assert slow.versions("n") == list(range(1, 121))  # in order, each once
        n.set("n", 121)  # and it is back with the others
        _until(lambda: all(s.patches("n")[-1]["version"] == 121 for s in [*readers, slow]))
        for s in [*readers, slow]:
            s.close()
        _until(lambda: server.streams == 0)


def test_a_stream_whose_client_vanished_breaks_no_other(sk_app: sk.Scope) -> None:
    n = sk.Store({"n": 0}, name="n", writable=["/n"])
    server = _server(n, interval=0.0)
    with serve(server) as url:
        streams = [Raw(url, "store=n") for _ in range(6)]
        _until(lambda: all(s.events() for s in streams))
        gone, kept = streams[:3], streams[3:]
        for i in range(1, 41):
            if i == 10:
                for s in gone:
                    s.close(reset=True)
            n.set("n", i)
            _until(lambda i=i: all(len(s.patches("n")) == i for s in kept))
        for s in kept:
            assert s.versions("n") == list(range(1, 41))
        _until(lambda: server.streams == 3)  # the vanished ones ended
        for s in kept:
            s.close()
        _until(lambda: server.streams == 0)
