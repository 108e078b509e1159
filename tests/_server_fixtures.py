"""Stores, actions and clients shared by the sync-server test files.

Every test builds its server inside its own fresh app scope (the autouse
``sk_app`` fixture), so the stores below start from their initial value in
each test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pydantic
from hypothesis import strategies as st
from starlette.requests import Request

import statekit as sk
from _uvicorn import serve
from statekit.server import Limits, SyncServer

SECRET = "test secret, not for production"
WRITE = {"X-Statekit": "1", "Content-Type": "application/json-patch+json"}
CALL = {"X-Statekit": "1", "Content-Type": "application/json"}

counter = sk.Store({"n": 0, "locked": 1}, name="counter", writable=["/n"])
todos = sk.Store({"todo": []}, name="todos", scope="user", writable=["/todo"])
draft = sk.Store({"text": ""}, name="draft", scope="session", writable=["/text"])
items = sk.Store({"xs": [1, 2], "hidden": "SECRET-7d1f"}, name="items", writable=["/xs"])


class Profile(pydantic.BaseModel):
    age: int
    name: str


profile = sk.Store(
    {"age": 30, "name": "SECRET-7d1f"}, name="profile", schema=Profile, writable=[""]
)


def bump(by: int = 1) -> int:
    """Two writes, one transaction: one version."""
    counter.update("n", lambda n: n + by)
    counter.update("n", lambda n: n + by)
    return int(counter.get("n"))


def fail_after_write() -> None:
    counter.set("n", 999)
    raise ValueError("refused on purpose")


async def add(title: str, done: bool = False) -> int:
    await asyncio.sleep(0)
    todos.add("todo/-", {"title": title, "done": done})
    return len(todos.get("todo"))


# Any JSON value (no NaN or infinities), small: for the encoding and body properties.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def identify(request: Request) -> str | None:
    # A test-only login: the user named in a header.
    return request.headers.get("x-test-user") or None


def make_server(**options: Any) -> SyncServer:
    settings: dict[str, Any] = {
        "secret": SECRET,
        "identify": identify,
        "actions": {"counter": [bump, fail_after_write], "todos": [add]},
        "limits": Limits(rate=None),
    }
    settings.update(options)
    return SyncServer([counter, todos, draft, items, profile], **settings)


@contextmanager
def running(app: Any) -> Iterator[str]:
    with serve(app) as url:
        yield url


@contextmanager
def client(url: str, **options: Any) -> Iterator[httpx.Client]:
    """A client with its own cookie jar that already holds a session cookie."""
    with httpx.Client(base_url=url, timeout=10, **options) as c:
        c.get("/stores").raise_for_status()
        yield c


class Events:
    """An SSE reader over an httpx stream: ``next()`` returns one parsed event.

    An event is a dict with ``event``, ``id``, ``data`` (parsed JSON), or
    ``comment`` for a comment line, or ``retry``. The client's read timeout
    bounds every wait.
    """

    def __init__(self, c: httpx.Client, path: str, headers: dict[str, str] | None = None) -> None:
        self._cm = c.stream("GET", path, headers=headers)
        self.response = self._cm.__enter__()
        self._lines = self.response.iter_lines()

    def next(self) -> dict[str, Any]:
        event: dict[str, Any] = {}
        for line in self._lines:
            if line == "":
                if event:
                    return event
                continue
            if line.startswith(":"):
                if not event:
                    return {"comment": line[1:].strip()}
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                event["data"] = json.loads(value)
            else:
                event[field] = value
        raise EOFError("the stream ended")

    def next_event(self) -> dict[str, Any]:
        """The next event that is not a comment."""
        while True:
            event = self.next()
            if "comment" not in event:
                return event

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> Events:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
