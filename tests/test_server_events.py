"""Event streams under load: one-shot arming, the event interval, shared event bytes.

These drive the ASGI app directly (no sockets): what is checked is the
stream's own logic: which commits wake whom, and what each event carries.
The API over a real uvicorn is tests/test_server_api.py's.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

import statekit as sk
from statekit.server import Limits, SyncServer
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
