"""A SyncServer on a shared backend, for running as several uvicorn processes.

    STATEKIT_SECRET=... SK_TEST_BACKEND=redis://... SK_TEST_PREFIX=... \\
        python -m uvicorn _backend_server_app:app --app-dir tests --port N
"""

from __future__ import annotations

import os

from starlette.requests import Request

import statekit as sk
from statekit.backends import aupdate, backend_from_url
from statekit.server import Limits, SyncServer

counter = sk.Store({"n": 0}, name="counter", writable=["/n"])
log = sk.Store({"ids": []}, name="log", writable=["/ids"])
todos = sk.Store({"todo": []}, name="todos", scope="user", writable=["/todo"])
draft = sk.Store({"text": ""}, name="draft", scope="session", writable=["/text"])


async def bump() -> int:
    """One increment, safe across processes (re-run on the fresh value on a conflict)."""
    return int(await aupdate(counter, "n", lambda n: n + 1))


def bump_sync() -> int:
    """The same with the sync API (the server runs it in a thread, in a transaction)."""
    return int(counter.update("n", lambda n: n + 1))


def pid() -> int:
    """Which process answered (``uvicorn --workers N`` runs N of them)."""
    return os.getpid()


def identify(request: Request) -> str | None:
    return request.headers.get("x-test-user") or None


url = os.environ["SK_TEST_BACKEND"]
options = {"prefix": os.environ["SK_TEST_PREFIX"]} if url.startswith("redis") else {}
app = SyncServer(
    [counter, log, todos, draft],
    identify=identify,
    actions={"counter": [bump, bump_sync, pid]},
    limits=Limits(rate=None),
    backend=backend_from_url(url, **options),
    app=sk.new_app_scope(),
)
