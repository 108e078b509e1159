"""PATCH on a server with a backend: the backend's round trip is awaited, not blocking the loop.

The backend here is a MemoryBackend whose writes take 0.2 s, sync or async
(``time.sleep`` vs ``asyncio.sleep``): while one PATCH waits for its round
trip, other requests must still be answered, If-Match keeps its meaning,
and concurrent PATCHes of one copy go out together (group commit).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

import statekit as sk
from statekit.backends import MemoryBackend
from statekit.server import Limits, SyncServer

pytestmark = pytest.mark.timeout(60)

DELAY = 0.2


class SlowMemory(MemoryBackend):
    """Every write takes DELAY seconds: blocking when sync, awaited when async."""

    def __init__(self) -> None:
        super().__init__()
        self.sync_writes = 0
        self.async_writes = 0

    def _write(self, *args: Any, **kwargs: Any) -> int:
        self.sync_writes += 1
        time.sleep(DELAY)
        return super()._write(*args, **kwargs)

    async def _awrite(self, *args: Any, **kwargs: Any) -> int:
        self.async_writes += 1
        await asyncio.sleep(DELAY)
        return super()._write(*args, **kwargs)


async def call(
    app: Any, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, dict[bytes, bytes], Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [*raw, (b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    head = dict(sent[0]["headers"])
    text = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], head, json.loads(text) if text else None


@pytest.fixture
def setup() -> Any:
    counter = sk.Store({"n": 0}, name="counter", writable=["/n"])
    backend = SlowMemory()
    server = SyncServer(
        [counter], secret="s", limits=Limits(rate=None), backend=backend, app=sk.new_app_scope()
    )
    return server, backend


async def _writer(server: SyncServer) -> dict[str, str]:
    status, head, _ = await call(server, "GET", "/stores/counter")
    assert status == 200
    cookie = head[b"set-cookie"].decode().split(";", 1)[0]
    return {"Cookie": cookie, "X-Statekit": "1", "Content-Type": "application/json-patch+json"}


def _patch(value: int) -> bytes:
    return json.dumps([{"op": "replace", "path": "/n", "value": value}]).encode()


async def test_a_patch_in_flight_does_not_block_other_requests(setup: Any) -> None:
    server, backend = setup
    headers = await _writer(server)
    writing = asyncio.ensure_future(call(server, "PATCH", "/stores/counter", headers, _patch(1)))
    await asyncio.sleep(0.02)  # the PATCH is now waiting for its round trip
    start = time.monotonic()
    status, _, listed = await call(server, "GET", "/stores")
    assert status == 200 and listed["stores"][0]["name"] == "counter"
    assert time.monotonic() - start < DELAY / 2
    assert not writing.done()
    status, head, body = await writing
    assert (status, body, head[b"etag"]) == (200, {"version": 1}, b'"1"')
    assert (backend.async_writes, backend.sync_writes) == (1, 0)
    status, _, snap = await call(server, "GET", "/stores/counter", headers)
    assert (snap["version"], snap["value"]) == (1, {"n": 1})


async def test_if_match_still_refuses_a_moved_version(setup: Any) -> None:
    server, _ = setup
    headers = {**await _writer(server), "If-Match": '"0"'}
    first, second = await asyncio.gather(
        call(server, "PATCH", "/stores/counter", headers, _patch(1)),
        call(server, "PATCH", "/stores/counter", headers, _patch(2)),
    )
    statuses = sorted([first[0], second[0]])
    assert statuses == [200, 412]
    refused = first if first[0] == 412 else second
    assert refused[2]["error"] == "version_mismatch"
    assert refused[1][b"etag"] == b'"1"'  # the version it is at now
    _, _, snap = await call(server, "GET", "/stores/counter", headers)
    assert snap["version"] == 1 and snap["value"]["n"] in (1, 2)
    # a refused test op and a bad path are the same errors as without a backend
    plain = {k: v for k, v in headers.items() if k != "If-Match"}
    test = json.dumps([{"op": "test", "path": "/n", "value": 99}]).encode()
    status, _, body = await call(server, "PATCH", "/stores/counter", plain, test)
    assert (status, body["error"]) == (409, "test_failed")
    bad = json.dumps([{"op": "remove", "path": "/n/x"}]).encode()
    status, _, body = await call(server, "PATCH", "/stores/counter", plain, bad)
    assert (status, body["error"]) == (422, "path_not_found")


async def test_concurrent_patches_of_one_copy_go_out_together(setup: Any) -> None:
    server, backend = setup
    headers = await _writer(server)
    answers = await asyncio.gather(
        *(call(server, "PATCH", "/stores/counter", headers, _patch(i)) for i in range(1, 11))
    )
    assert all(status == 200 for status, _, _ in answers)
    assert backend.async_writes < 10  # group commit: fewer round trips than writers
    _, _, snap = await call(server, "GET", "/stores/counter", headers)
    assert snap["version"] == backend.async_writes == max(body["version"] for *_, body in answers)
