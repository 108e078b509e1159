"""The Server-Sent Events stream: snapshots, coalesced patches, resume, heartbeats.

One stream serves one or more store copies of one identity. The stream is a
small state machine driven by wake-ups:

- A stream with nothing to send *arms* itself on its copies
  (:meth:`Hub.wait_for <statekit.server._hub.Hub.wait_for>`): the next
  commit of one of them calls the stream's ``notify(copy)`` once, from the
  committing thread, and the stream wakes on its own event loop. Several
  commits before the stream runs are one wake-up, and a commit costs nothing
  for streams that are not armed (busy sending, or waiting out the
  interval below): a commit's cost does not grow with the subscribers that
  already have news to send.
- When it runs, it sends, per dirty copy, one ``patch`` event from the
  version it last sent (``base``) to the newest logged one, with the ops of
  every commit in between: coalescing is what keeps one slow or busy client
  from falling behind, and ops applied in order give the same document. The
  event's JSON is encoded once per (copy, base, version) and shared by every
  subscriber (:meth:`~statekit.server._hub.Copy.patch_data`).
- When the log no longer reaches back to the version sent, it sends a
  ``snapshot`` instead.
- After an event, a stream sends nothing more for ``interval`` seconds:
  the first commit after a quiet spell goes out at once, and under a
  sustained stream of commits each subscriber gets at most one event per
  interval carrying all of them. This is what keeps one writer's many small
  commits to a store with many subscribers from costing a socket write per
  commit per subscriber. The stream arms again right after its event: the
  first commit within the interval only books the interval's end on the
  loop's shared :class:`~statekit.server._clock.Clock`, and the later ones
  find the stream unarmed (they cost it nothing).
- With nothing to send for ``heartbeat`` seconds it sends ``: ping``.

Deadlines (the interval's end, the heartbeat, the shutdown check below) go
through that shared clock, one loop timer per millisecond tick for all the
streams of a loop, instead of a timer made and cancelled per wait.

Under uvicorn's httptools protocol (the ``server`` extra), a parked stream's
events do not wake its task at all: the commit's wake-up (or the interval's
end) writes the event's chunk straight to the connection's transport, the
same bytes for every stream of the store at that (base, version), framed
once (:meth:`~statekit.server._hub.Copy.patch_event`). A copy's parked
one-store streams wait together (:class:`_Group`): one waker armed on the
copy, one replay, then per stream a check and a write. One commit fanned out
to a hundred streams is then a hundred ``transport.write`` calls of one
bytes object, not a hundred task steps each replaying the log and building
its own message for ``send``. This is what uvicorn's ``send`` itself would write; the stream
falls back to ``send`` (its task) whenever that is not plainly so: another
server or protocol, a middleware wrapping ``send``, a ``HEAD``, a response
that is not chunked, a connection gone or under back-pressure (the task then
waits in ``send`` for the client to drain, alone: the other streams keep
going), or uvicorn shutting down.

A stream ends when the client goes away (``http.disconnect``), when
:meth:`SyncServer.close` is called, or when the server shuts down: uvicorn
does not tell a running response that it is shutting down, except by turning
off the connection's keep-alive, which the stream checks at every wake-up
(at most every half second); so a stream never holds shutdown up.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._clock import Clock, clock_of
from ._hub import Copy, Hub, chunk, encode
from ._uvicorn import chunked_cycle

__all__ = ["EventStream", "parse_last_event_id"]

RETRY_MS = 1000
_POLL = 0.5  # seconds between checks that the server is not shutting down


def parse_last_event_id(text: str | None) -> dict[str, int]:
    """``"a=3,b=7"`` -> ``{"a": 3, "b": 7}``; malformed parts are ignored.

    Example:
        >>> parse_last_event_id("a=3,b=7"), parse_last_event_id("junk,c=x,d=2")
        ({'a': 3, 'b': 7}, {'d': 2})
    """
    found: dict[str, int] = {}
    if not text or len(text) > 4096:
        return found
    for piece in text.split(","):
        name, sep, version = piece.strip().partition("=")
        if sep and name and version.isdigit() and len(version) < 19:
            found[name] = int(version)
    return found


def _never() -> bool:
    return False


def _closing_probe(receive: Receive) -> Callable[[], bool]:
    """A check that turns true when uvicorn starts shutting this connection down."""
    cycle = getattr(receive, "__self__", None)
    if cycle is None or getattr(cycle, "keep_alive", None) is not True:
        return _never
    return lambda: cycle.keep_alive is not True


class EventStream(Response):
    """The ``text/event-stream`` response of ``GET P/events``."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: Hub,
        copies: Sequence[Copy],
        resume: Mapping[str, int],
        heartbeat: float,
        registry: weakref.WeakSet[EventStream],
        *,
        interval: float = 0.0,
    ) -> None:
        super().__init__(
            None,
            200,
            {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            self.media_type,
        )
        # A stream has no length: drop the "content-length: 0" of the empty body.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.hub = hub
        self.copies = list(copies)
        self.resume = dict(resume)
        self.heartbeat = heartbeat
        self.interval = interval
        self.sent: dict[Copy, int] = {}
        self.woken = False  # an armed copy committed since the stream last looked
        self.closed = False
        self._quiet_until = 0.0  # loop time: no event before it (the interval after one)
        self._held = False  # the end of the quiet spell is booked on the clock
        self._poll_at = 0.0  # the next wake-up booked for a heartbeat/shutdown check
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Clock | None = None
        self._booked = _Booked(self)
        self._thread = 0
        self._registry = registry
        self._key = 0
        self._wake: dict[Copy, Callable[[], None]] = {}
        self._ping_at = 0.0  # loop time of the next heartbeat (moved by every event)
        self._cycle: Any = None  # uvicorn's request cycle, when events go straight to it
        self._closing: Callable[[], bool] = _never
        self._group: _Group | None = None  # the copy's streams written to together

    # ------------------------------------------------------------ wake-ups

    def notify(self, copy: Copy) -> None:
        """Called by the hub after a commit of an armed copy, from any thread."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            self._mark(copy)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
                loop.call_soon_threadsafe(self._mark, copy)

    def _mark(self, copy: Copy | None) -> None:
        if copy is not None:
            self.woken = True
            if self._quiet_until and self._hold_if_quiet():
                return  # the end of the interval wakes the stream
            if self._cycle is not None and self._push():
                return
        self._resolve()

    def _resolve(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _hold_if_quiet(self) -> bool:
        """True while within the interval after an event; books its end once."""
        loop = self._loop
        if loop is None or self._clock is None or loop.time() >= self._quiet_until:
            return False  # (no loop: the stream has ended; a late wake-up changes nothing)
        if not self._held:
            self._held = True
            self._clock.at(self._quiet_until, self._booked.unhold)
        return True

    def _unhold(self) -> None:
        self._held = False
        if self.woken and self._cycle is not None and self._push():
            return
        self._resolve()

    def _writable(self) -> bool:
        """Whether an event may go straight to the transport now (see :meth:`_push`)."""
        waiter = self._waiter
        cycle = self._cycle
        return not (
            waiter is None
            or waiter.done()
            or self.closed
            or cycle is None
            or cycle.disconnected
            or cycle.flow.write_paused
            or self._closing()
        )

    def _push(self) -> bool:
        """Write the pending events straight to the transport, the task left parked.

        False when the task has to send them through ``send`` instead: it is
        not parked (it runs, or is about to, and sends what is pending
        itself), the connection is gone or asks the server to wait (the task
        waits in ``send`` for the drain), or uvicorn is shutting down (the
        task ends the stream). Called on the stream's loop only.
        """
        if not self._writable():
            return False
        cycle = self._cycle
        loop = self._loop
        assert loop is not None  # set while the task runs, and it is parked
        try:
            while True:
                data = self._pending(chunked=True)
                if not data:
                    # Woken, yet nothing past the version sent (a commit not
                    # logged yet): the task sorts that out, as it would have.
                    return False
                cycle.transport.write(data)
                now = loop.time()
                self._ping_at = now + self.heartbeat
                if self.interval:
                    self._quiet_until = now + self.interval
                # Armed again right away, as the task would: the next commit
                # calls _mark (or only books the interval's end).
                if not self._arm():
                    return True
                if self._quiet_until and self._hold_if_quiet():
                    self.woken = True  # sent when the interval ends
                    return True
        except Exception:
            # Nothing here is expected to raise (the transport buffers); if it
            # does, the commit that woke us must not see it, nor must the
            # other streams it wakes: the stream ends, and its client
            # resumes from the version it last received.
            self.closed = True
            return False

    def _on_poll(self) -> None:
        self._poll_at = 0.0
        self._resolve()

    def close(self) -> None:
        """End the stream (from any thread)."""
        self.closed = True
        loop = self._loop
        if loop is not None:
            if threading.get_ident() == self._thread:
                self._mark(None)
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._mark, None)

    def _arm(self) -> bool:
        """Arm on every copy; True if one already has news (then there is nothing to wait for)."""
        group = self._group
        if group is not None:
            return group.join(self)
        ahead = False
        for copy in self.copies:
            if self.hub.wait_for(copy, self._key, self.sent[copy], self._wake[copy]):
                ahead = True
        return ahead

    # ------------------------------------------------------------ events

    def _event_id(self) -> str:
        return ",".join(f"{copy.name}={version}" for copy, version in self.sent.items())

    def _snapshot(self, copy: Copy) -> str:
        version, value = self.hub.read(copy)
        self.sent[copy] = version
        data = f'{{"store":{encode(copy.name)},"version":{version},"value":{encode(value)}}}'
        return f"event: snapshot\nid: {self._event_id()}\ndata: {data}\n\n"

    def _catch_up(self, copy: Copy) -> str | None:
        """The event that brings a client from the version sent to the newest, if any."""
        base = self.sent[copy]
        entries = self.hub.replay(copy, base)
        if entries is None:
            return self._snapshot(copy)
        if not entries:
            return None
        version = entries[-1][0]
        data = copy.patch_data(base, version, entries)
        self.sent[copy] = version
        return f"event: patch\nid: {self._event_id()}\ndata: {data}\n\n"

    def _opening(self) -> str:
        """``retry``, then per store a snapshot, or the replay since the client's version."""
        chunks = [f"retry: {RETRY_MS}\n\n"]
        for copy in self.copies:
            known = self.resume.get(copy.name)
            if known is None:
                chunks.append(self._snapshot(copy))
                continue
            self.sent[copy] = known
            event = self._catch_up(copy)
            if event is not None:
                chunks.append(event)
        if len(chunks) == 1:
            chunks.append(": resumed\n\n")  # the client is up to date; opens the stream at once
        return "".join(chunks)

    def _pending(self, *, chunked: bool = False) -> bytes:
        """The events that bring the client up to date (empty when it is).

        ``chunked``: framed as one HTTP/1.1 chunk, for the transport itself.
        """
        self.woken = False
        if len(self.copies) == 1:
            # One store: the event's bytes are the same for every such
            # stream at this (base, version), encoded (and framed) once by
            # the copy.
            copy = self.copies[0]
            base = self.sent[copy]
            entries = self.hub.replay(copy, base)
            if entries is None:
                data = self._snapshot(copy).encode()
            elif not entries:
                return b""
            else:
                version = entries[-1][0]
                self.sent[copy] = version
                return copy.patch_event(base, version, entries, chunked=chunked)
        else:
            events = [e for copy in self.copies if (e := self._catch_up(copy)) is not None]
            data = "".join(events).encode()
        return chunk(data) if chunked and data else data

    # ------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._registry.add(self)
        self._key = id(self)
        self._wake = {copy: partial(self.notify, copy) for copy in self.copies}
        watcher = asyncio.ensure_future(self._watch(receive))
        closing = self._closing = _closing_probe(receive)
        loop = self._loop
        clock = self._clock = clock_of(loop)
        interval = self.interval
        try:
            # The first arming compares each copy's log with the versions the
            # opening sent: a commit in between is news, not lost.
            opening = self._opening()
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await _body(send, opening)
            # Only now: whether uvicorn frames this response as chunks is
            # settled by its start.
            self._cycle = chunked_cycle(send)
            if self._cycle is not None and len(self.copies) == 1:
                self._group = _Group.of(self.hub, self.copies[0], loop)
            self._ping_at = loop.time() + self.heartbeat
            while not self.closed:
                # Woken by a commit: there is news (arming again would only say
                # so). Otherwise arm, right after an event too: a commit in the
                # interval then books the interval's end (see _mark).
                if self.woken or self._arm():
                    if self._quiet_until and self._hold_if_quiet():
                        self.woken = True  # sent when the interval ends
                    else:
                        data = self._pending()
                        if data:
                            await send(
                                {"type": "http.response.body", "body": data, "more_body": True}
                            )
                            now = loop.time()
                            self._ping_at = now + self.heartbeat
                            if interval:
                                self._quiet_until = now + interval
                            continue
                now = loop.time()
                if now >= self._ping_at:
                    await _body(send, ": ping\n\n")
                    self._ping_at = loop.time() + self.heartbeat
                    continue
                if not self._poll_at:
                    # One booked at a time: one still booked is due no later
                    # than this one would be (the heartbeat only moves later).
                    self._poll_at = min(self._ping_at, now + _POLL)
                    clock.at(self._poll_at, self._booked.poll)
                # Parked here, not in a helper coroutine: one frame less to
                # make and to resume per wake-up.
                waiter = self._waiter = loop.create_future()
                await waiter
                self._waiter = None
                if self.closed or closing():
                    break
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write
        finally:
            self.closed = True
            self._cycle = None
            if self._group is not None:
                self._group.leave(self)
                self._group = None
            for copy in self.copies:
                self.hub.disarm(copy, self._key)
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher
            self._registry.discard(self)
            self._loop = None
            self._booked.stream = None  # bookings still on the clock let go of the stream

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.close()
                return


class _Group:
    """The parked one-store streams of one copy on one loop, that write to their transports.

    One waker armed on the copy for all of them (rather than one per
    stream): a commit runs :meth:`run` once, which finds each member's event
    (one replay and one encoded, framed event per base version, in practice
    one for all) and writes it to each member's transport, the members
    staying parked in the group. A member that cannot be written to now (in
    its interval, under back-pressure, not parked, closing) leaves the group
    for its own path (:meth:`EventStream._mark`) and joins again the next
    time it arms.
    """

    __slots__ = ("copy", "hub", "key", "loop", "members", "thread", "users")

    def __init__(self, hub: Hub, copy: Copy, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.copy = copy
        self.loop = loop
        self.thread = threading.get_ident()
        self.key = id(self)  # its waker's key on the copy (streams use their own ids)
        self.members: dict[int, EventStream] = {}
        self.users = 0  # streams that may join; at 0 the group goes

    @classmethod
    def of(cls, hub: Hub, copy: Copy, loop: asyncio.AbstractEventLoop) -> _Group:
        """The group of ``copy`` on ``loop`` (made on first use), counted as used once more."""
        groups = _groups.get(loop)
        if groups is None:
            groups = _groups[loop] = {}
        group = groups.get(copy)
        if group is None:
            group = groups[copy] = cls(hub, copy, loop)
        group.users += 1
        return group

    def join(self, stream: EventStream) -> bool:
        """Park ``stream`` here; True (not parked) if its copy is already past its version."""
        # Checked and armed under the copy's lock (no commit falls between);
        # the member is added after, but a commit on another thread only
        # reaches run() through this loop, after this returns.
        if self.hub.wait_for(self.copy, self.key, stream.sent[self.copy], self.wake):
            return True
        self.members[stream._key] = stream
        return False

    def leave(self, stream: EventStream) -> None:
        self.members.pop(stream._key, None)
        self.users -= 1
        if self.users <= 0:
            self.hub.disarm(self.copy, self.key)
            groups = _groups.get(self.loop)
            if groups is not None and groups.get(self.copy) is self:
                del groups[self.copy]

    def wake(self) -> None:
        """The copy's waker: called once per armed commit, from the committing thread."""
        if threading.get_ident() == self.thread:
            self.run()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
                self.loop.call_soon_threadsafe(self.run)

    def run(self) -> None:
        members = self.members
        if not members:
            return
        self.members = {}
        copy = self.copy
        now = self.loop.time()
        events: dict[int, tuple[int, bytes] | None] = {}  # base -> (version, chunk)
        lowest: int | None = None
        for key, stream in members.items():
            if now < stream._quiet_until or not stream._writable():
                stream._mark(copy)  # its own path: holds, or wakes its task
                continue
            base = stream.sent[copy]
            if base in events:
                found = events[base]
            else:
                entries = self.hub.replay(copy, base)
                found = events[base] = (
                    None
                    if not entries  # None (a snapshot) or [] (not logged yet): its own path
                    else (
                        version := entries[-1][0],
                        copy.patch_event(base, version, entries, chunked=True),
                    )
                )
            if found is None:
                stream._mark(copy)
                continue
            version, data = found
            try:
                stream._cycle.transport.write(data)
            except Exception:
                # Not expected (the transport buffers): that stream ends, the
                # others and the commit that woke them carry on.
                stream.closed = True
                stream._resolve()
                continue
            stream.sent[copy] = version
            stream.woken = False
            stream._ping_at = now + stream.heartbeat
            if stream.interval:
                stream._quiet_until = now + stream.interval
            self.members[key] = stream
            lowest = version if lowest is None or version < lowest else lowest
        # Armed again for the members that stayed; a commit logged meanwhile
        # (on another thread) runs the group again at once.
        if lowest is not None and self.hub.wait_for(copy, self.key, lowest, self.wake):
            self.loop.call_soon(self.run)


# The groups of each loop's copies (a copy's group goes with its last stream).
_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Copy, _Group]] = (
    weakref.WeakKeyDictionary()
)


class _Booked:
    """What the shared clock holds of a stream: nothing of it once the stream has ended.

    (A booking can be due up to a heartbeat after the stream's end; it must
    not keep the stream, its copies and its scopes alive until then.)
    """

    __slots__ = ("stream",)

    def __init__(self, stream: EventStream) -> None:
        self.stream: EventStream | None = stream

    def unhold(self) -> None:
        if self.stream is not None:
            self.stream._unhold()

    def poll(self) -> None:
        if self.stream is not None:
            self.stream._on_poll()


async def _body(send: Send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
