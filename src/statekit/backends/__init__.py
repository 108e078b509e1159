"""Backends: where store copies live when one process is not enough.

``MemoryBackend`` (in this process, the default), ``SQLiteBackend(path)``
(durable, one host) and ``RedisBackend(url)`` (many processes and hosts)
share one interface (:class:`Backend`). Attach one to an app scope and
every store copy (and every scoped ``State`` instance) created under it
loads from the backend, commits through it, and follows the changes other
processes make::

    import statekit as sk
    from statekit.backends import backend_from_url

    backend = backend_from_url("sqlite:///state.db")   # or redis://host:6379/0
    app = backend.attach(sk.new_app_scope())
    with app, sk.session("s1"):
        cart.set("items", ["tea"])

``redis`` is imported only when a ``RedisBackend`` is made.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from ._base import Backend, Commit, Notice, scope_key
from ._binding import apatch, aupdate
from ._memory import MemoryBackend
from ._sqlite import SQLiteBackend
from ._state import store_name

if TYPE_CHECKING:
    from ._redis import BackendUnavailable, RedisBackend

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Commit",
    "MemoryBackend",
    "Notice",
    "RedisBackend",
    "SQLiteBackend",
    "apatch",
    "aupdate",
    "backend_from_url",
    "scope_key",
    "store_name",
]


def __getattr__(name: str) -> Any:
    # redis is imported only when a RedisBackend is asked for.
    if name in ("RedisBackend", "BackendUnavailable"):
        from . import _redis

        return getattr(_redis, name)
    raise AttributeError(f"module 'statekit.backends' has no attribute {name!r}")


def backend_from_url(url: str | Backend | None, **options: Any) -> Backend:
    """A backend from a URL: ``memory://``, ``sqlite:///path`` or ``redis://host:port/db``.

    A :class:`Backend` is returned as is, ``None`` gives a ``MemoryBackend``.
    ``rediss://`` and ``unix://`` reach Redis over TLS or a socket.
    ``sqlite:///state.db`` is a path relative to the working directory,
    ``sqlite:////var/lib/app/state.db`` an absolute one. ``options`` go to the
    backend's constructor.

    Example:
        >>> from statekit.backends import backend_from_url
        >>> backend_from_url("memory://")
        MemoryBackend()
        >>> backend_from_url("mysql://db")
        Traceback (most recent call last):
        ...
        ValueError: backend URL 'mysql://db': unknown scheme 'mysql' (expected memory://...)
    """
    if url is None:
        return MemoryBackend(**options)
    if isinstance(url, Backend):
        return url
    if not isinstance(url, str):
        raise TypeError(f"a backend is a Backend or a URL string, not {type(url).__name__}")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryBackend(**options)
    if scheme == "sqlite":
        path = url[len("sqlite://") :]
        if not path.startswith("/") or path == "/":
            raise ValueError(
                f"backend URL {url!r}: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        return SQLiteBackend(urllib.parse.unquote(path[1:]), **options)
    if scheme in ("redis", "rediss", "unix"):
        from ._redis import RedisBackend

        return RedisBackend(url, **options)
    raise ValueError(
        f"backend URL {url!r}: unknown scheme {scheme!r} (expected memory:// or sqlite:///path)"
    )
