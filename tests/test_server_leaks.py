"""Event streams leave nothing behind: 1,000 sessions open and close one each."""

from __future__ import annotations

import gc
import time
import weakref

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx

from _server_fixtures import Events, make_server, running


def test_a_thousand_sessions_opening_and_closing_streams_leave_no_subscriber() -> None:
    server = make_server()
    refs: list[weakref.ref[object]] = []
    with running(server) as url, httpx.Client(base_url=url, timeout=10) as c:
        for _ in range(1000):
            c.cookies.clear()  # a new session each time: the stream gets a cookie
            with Events(c, "/events?store=counter&store=draft") as events:
                events.next()
                assert events.next_event()["event"] == "snapshot"
                assert events.next_event()["data"]["store"] == "draft"
                refs.extend(weakref.ref(s) for s in list(server._streams) if s is not None)
        # Disconnects are noticed asynchronously; give the server a bounded moment.
        deadline = time.monotonic() + 20
        while server.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.streams == 0
    gc.collect()
    copies = list(server.hub._copies.values())
    assert len(copies) == 1001  # the app's counter, one draft per session
    assert [c.name for c in copies if c.subscribers] == []
    assert [r for r in refs if r() is not None] == []
