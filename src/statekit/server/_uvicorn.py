"""What the server knows of uvicorn's httptools protocol, to write less often.

Two places where following ASGI to the letter costs a system call that says
nothing new, and where uvicorn's httptools protocol (the ``server`` extra) is
plain enough to do better while it keeps all its own bookkeeping:

- event streams write their chunks straight to the connection's transport
  (:func:`chunked_cycle`, used by :mod:`._events`);
- a small response goes out as one write instead of two
  (:func:`respond`): uvicorn writes the status line and headers when it gets
  ``http.response.start`` and the body when it gets ``http.response.body``,
  two ``write`` system calls (and two TCP segments for the client to read)
  for a ``PATCH`` answer of 15 bytes. :func:`respond` runs both of uvicorn's
  own ``send`` steps, unchanged, against a stand-in transport that keeps
  what they write, then writes that to the real transport at once.

Anything else (another server, h11, a middleware wrapping ``send``, a
connection that is closing or whose writes are paused) gets plain ``send``
calls.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Send

__all__ = ["chunked_cycle", "respond"]

_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl"


def _cycle(send: Send) -> Any:
    """uvicorn's httptools request cycle if ``send`` is its own bound method, else None.

    Only its own ``send``: a middleware wrapping it may change what is sent.
    """
    cycle = getattr(send, "__self__", None)
    if cycle is None or type(cycle).__module__ != _HTTPTOOLS:
        return None
    return cycle


def chunked_cycle(send: Send) -> Any:
    """The cycle behind ``send`` if it frames this response's body as chunks, else None.

    That protocol's ``send`` writes a body part as ``b"%x\\r\\n" % len(body),
    body, b"\\r\\n"`` to its transport and keeps no other state for it
    (unlike h11's), so those bytes may be written to the transport directly.
    """
    cycle = _cycle(send)
    if cycle is None:
        return None
    if getattr(cycle, "chunked_encoding", None) is not True or cycle.response_complete:
        return None
    return cycle


class _Kept:
    """A stand-in transport for the length of two ``send`` calls: keeps what is written."""

    __slots__ = ("closed", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        # Not expected (the connection was kept alive when this started);
        # done to the real transport after the bytes, as send would have.
        self.closed = True


async def respond(send: Send, start: Message, body: bytes) -> None:
    """Send a whole response (``http.response.start`` then its one body part).

    Under uvicorn's httptools protocol on a kept-alive connection, with
    nothing waiting to be written, the status line, headers and body leave
    in one ``write``; everywhere else as two ``send`` calls.

    Example:
        >>> import asyncio
        >>> sent = []
        >>> async def send(message):
        ...     sent.append(message["type"])
        >>> asyncio.run(respond(send, {"type": "http.response.start", "status": 204}, b""))
        >>> sent
        ['http.response.start', 'http.response.body']
    """
    message = {"type": "http.response.body", "body": body}
    cycle = _cycle(send)
    flow = getattr(cycle, "flow", None)
    # getattr throughout: a uvicorn whose cycle lacks one of these gets plain sends.
    if (
        cycle is None
        or getattr(cycle, "response_started", True) is not False
        or getattr(cycle, "keep_alive", None) is not True  # its send would close the transport
        or getattr(cycle, "disconnected", True) is not False
        or getattr(flow, "write_paused", True) is not False  # its send would wait for the drain
        or not hasattr(cycle, "transport")
    ):
        await send(start)
        await send(message)
        return
    transport = cycle.transport
    kept = cycle.transport = _Kept()
    try:
        # Neither call waits (not paused, nothing to drain): no other task
        # runs, and nothing else writes to this connection, until the bytes
        # are on the real transport below.
        await send(start)
        await send(message)
    finally:
        cycle.transport = transport
    transport.write(b"".join(kept.parts))
    if kept.closed:
        transport.close()
