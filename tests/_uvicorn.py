"""A real uvicorn on 127.0.0.1 (free port) in a thread, for the façade and browser tests.

The server thread runs in a copy of the test's context, so it sees the test's
app scope (the ``sk_app`` fixture).
"""

from __future__ import annotations

import contextvars
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any, port: int | None = None, **options: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn until the block ends; yield its base URL.

    ``options`` override uvicorn settings (Flet's app needs ``ws="auto"``).
    """
    port = port or free_port()
    settings: dict[str, Any] = {"log_level": "warning", "lifespan": "off", "ws": "none"}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, **{**settings, **options})
    server = uvicorn.Server(config)
    ctx = contextvars.copy_context()
    thread = threading.Thread(target=ctx.run, args=(server.run,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
