"""Stores, actions and clients shared by the sync-server test files.

Every test builds its server inside its own fresh app scope (the autouse
``sk_app`` fixture), so the stores below start from their initial value in
each test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
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
    return SyncServer([counter, todos, draft], **settings)


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
