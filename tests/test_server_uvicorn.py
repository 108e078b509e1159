"""``respond``: a whole response in one write under uvicorn's httptools protocol.

Driven through uvicorn's own ``RequestResponseCycle`` (the class its httptools
protocol makes per request) on a transport that records its calls: the bytes
are exactly what two plain ``send`` calls write, in one ``write``, and
uvicorn's bookkeeping (response complete, the protocol told) is the same.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

pytest.importorskip("httptools")
pytest.importorskip("uvicorn")

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from statekit.server._uvicorn import respond

START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"etag", b'"7"'), (b"content-length", b"13"), (b"content-type", b"text/x")],
}
BODY = b'{"version":7}'


class Transport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", None))

    def is_closing(self) -> bool:
        return False


def cycle(transport: Transport, *, keep_alive: bool = True) -> tuple[Any, list[int]]:
    told: list[int] = []
    made = RequestResponseCycle(
        scope={"type": "http", "method": "PATCH", "path": "/", "http_version": "1.1"},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: told.append(1),
    )
    return made, told


async def plain(keep_alive: bool = True) -> list[tuple[str, Any]]:
    """What uvicorn writes for the same response through two ``send`` calls."""
    transport = Transport()
    made, _ = cycle(transport, keep_alive=keep_alive)
    await made.send(START)
    await made.send({"type": "http.response.body", "body": BODY})
    return transport.calls


def test_one_write_with_the_bytes_two_sends_would_write() -> None:
    async def run() -> None:
        transport = Transport()
        made, told = cycle(transport)
        await respond(made.send, START, BODY)
        two = await plain()
        assert [kind for kind, _ in two] == ["write", "write"]
        assert transport.calls == [("write", b"".join(data for _, data in two))]
        assert made.response_complete and told == [1]
        assert made.transport is transport  # put back

    asyncio.run(run())


def test_a_connection_not_kept_alive_gets_the_plain_sends() -> None:
    async def run() -> None:
        transport = Transport()
        made, told = cycle(transport, keep_alive=False)
        await respond(made.send, START, BODY)
        assert transport.calls == await plain(keep_alive=False)
        assert transport.calls[-1] == ("close", None) and told == [1]

    asyncio.run(run())


def test_paused_writes_and_other_sends_get_the_plain_sends() -> None:
    async def run() -> None:
        transport = Transport()
        made, _ = cycle(transport)
        made.flow.write_paused = True
        made.flow._is_writable_event.set()  # drain() returns at once
        await respond(made.send, START, BODY)
        assert [kind for kind, _ in transport.calls] == ["write", "write"]

        got: list[Any] = []

        async def wrapped(message: Any) -> None:  # a middleware's send: left alone
            got.append(message)

        await respond(wrapped, START, BODY)
        assert got == [START, {"type": "http.response.body", "body": BODY}]

    asyncio.run(run())


def test_an_error_in_send_puts_the_transport_back() -> None:
    async def run() -> None:
        transport = Transport()
        made, _ = cycle(transport)
        bad = {**START, "headers": [(b"bad header", b"x")]}
        with pytest.raises(RuntimeError, match="Invalid HTTP header name"):
            await respond(made.send, bad, BODY)
        assert made.transport is transport and transport.calls == []

    asyncio.run(run())


def test_a_cycle_without_the_fields_read_gets_the_plain_sends() -> None:
    # Another uvicorn version's cycle: same module, fewer fields.
    got: list[Any] = []

    class Cycle:
        async def send(self, message: Any) -> None:
            got.append(message["type"])

    Cycle.__module__ = "uvicorn.protocols.http.httptools_impl"
    asyncio.run(respond(Cycle().send, START, BODY))
    assert got == ["http.response.start", "http.response.body"]
