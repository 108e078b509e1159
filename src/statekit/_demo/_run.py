"""Running the demo: its secret, its backend, its socket, and uvicorn until Ctrl-C.

Kept apart from the app (:mod:`statekit._demo`) so that tests can build the
app alone, and apart from the command line so that each step's failure is a
plain exception the command line turns into a clear message.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from typing import Any

from statekit.backends import Backend, backend_from_url

__all__ = ["bind", "open_backend", "pick_secret", "serve", "url_of"]


def pick_secret() -> tuple[str, str]:
    """``(secret, where it came from)``: ``$STATEKIT_SECRET``, else a new one for this run.

    Example:
        >>> import os; saved = os.environ.pop("STATEKIT_SECRET", None)
        >>> secret, said = pick_secret()
        >>> len(secret) >= 32, said.startswith("generated")
        (True, True)
        >>> if saved is not None: os.environ["STATEKIT_SECRET"] = saved
    """
    secret = os.environ.get("STATEKIT_SECRET")
    if secret:
        return secret, "from STATEKIT_SECRET"
    return (
        secrets.token_urlsafe(32),
        "generated for this run (logins and sessions end when the demo stops; "
        "set STATEKIT_SECRET to keep them)",
    )


def open_backend(url: str) -> Backend:
    """The backend of ``url``; ``ValueError`` saying what is wrong (scheme, path, server).

    Example:
        >>> open_backend("memory://")
        MemoryBackend()
        >>> open_backend("ftp://x")
        Traceback (most recent call last):
        ...
        ValueError: backend URL 'ftp://x': unknown scheme 'ftp' ...
    """
    try:
        return backend_from_url(url)
    except ImportError as exc:
        raise ValueError(
            f"{url!r} needs a package that is not installed ({exc.name}): "
            "pip install 'statekit[redis]'"
        ) from None
    except ValueError:
        raise
    except Exception as exc:  # a server that does not answer, a file that cannot be opened
        raise ValueError(f"cannot open backend {url!r}: {exc}") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: a free one); ``OSError`` if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restarted demo may reuse its port at once (the old one's sockets in TIME_WAIT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(app: Any, sock: socket.socket) -> None:
    """Run ``app`` on ``sock`` under uvicorn until SIGINT/SIGTERM; event streams end by then."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
    # uvicorn re-raises the Ctrl-C it handled once it has shut down: that is the normal end.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])
