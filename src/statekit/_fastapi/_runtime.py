"""The running state of one statekit lifespan: its app scope, resources and identity."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._scope import Scope
from ..server._identity import call_identify
from ._resources import Resource, resources_of

if TYPE_CHECKING:
    from ..server._identity import SessionSigner

__all__ = ["AppRuntime", "Identify", "runtime_of"]

#: How long a verified session cookie is trusted without checking its signature again.
VERIFY_CACHE_SECONDS = 60.0
#: At most this many verified cookies are remembered per app run.
VERIFY_CACHE_SIZE = 10_000

#: ``identify(request) -> user id | None`` (sync or async), as in ``statekit.server``.
Identify = Callable[[Any], "str | Awaitable[str | None] | None"]


class AppRuntime:
    """One run of a :class:`~statekit.fastapi.StatekitLifespan`: ``app.state.statekit``.

    It lives from startup to shutdown; each run (each ``with TestClient(app)``,
    each server start) has its own, with a fresh app scope.

    Example:
        >>> import statekit as sk
        >>> from statekit.fastapi import AppRuntime
        >>> runtime = AppRuntime(sk.new_app_scope("demo"), signer=None)
        >>> runtime.scope.level, runtime.session_ttl
        ('app', 1800.0)
    """

    __slots__ = (
        "_verified",
        "backend",
        "cookie_max_age",
        "identify",
        "scope",
        "session_per_tab",
        "session_ttl",
        "signer",
        "sync_prefixes",
    )

    def __init__(
        self,
        scope: Scope,
        *,
        signer: SessionSigner | None,
        identify: Identify | None = None,
        session_ttl: float | None = 1800.0,
        cookie_max_age: float = 30 * 24 * 3600,
        session_per_tab: bool = False,
        backend: Any = None,
    ) -> None:
        #: The app scope of this run: every request's scope chain starts here.
        self.scope = scope
        self.signer = signer
        self.identify = identify
        self.session_ttl = session_ttl
        self.cookie_max_age = cookie_max_age
        self.session_per_tab = session_per_tab
        self.backend = backend
        #: Path prefixes of mounted sync servers (they handle identity themselves).
        self.sync_prefixes: tuple[str, ...] = ()
        self._verified: dict[str, tuple[str, float]] = {}

    def verify(self, value: str) -> str | None:
        """The session id of a cookie value, ``None`` when it is not valid.

        A valid value is remembered for :data:`VERIFY_CACHE_SECONDS`: a
        returning visitor costs a dict lookup, not an HMAC. Only values that
        verified are cached (a forged one is checked every time), so the
        cache can only make a cookie live that much past its expiry.
        """
        now = time.monotonic()
        known = self._verified.get(value)
        if known is not None and known[1] > now:
            return known[0]
        signer = self.signer
        sid = signer.verify(value) if signer is not None else None
        if sid is not None:
            if len(self._verified) >= VERIFY_CACHE_SIZE:
                self._verified.clear()  # bounded: a flood of valid cookies only costs HMACs
            self._verified[value] = (sid, now + VERIFY_CACHE_SECONDS)
        else:
            self._verified.pop(value, None)
        return sid

    @property
    def resources(self) -> Mapping[Resource[Any], Any]:
        """The open resources and their values."""
        return resources_of(self.scope)

    def get(self, res: Resource[Any]) -> Any:
        """The value of an open resource (like ``res.get()`` inside the app)."""
        with self.scope:
            return res.get()

    def expire_idle(self, now: float | None = None) -> int:
        """Dispose users and sessions idle for longer than their ttl; how many went.

        Users and sessions made without a ttl (by a mounted sync server, which
        enters them itself) get ``session_ttl`` first.
        """
        ttl = self.session_ttl
        if ttl is not None:
            for scope in self.scope.scopes():
                if scope.ttl is None and scope.level in ("user", "session"):
                    scope.ttl = ttl
        return self.scope.expire_idle(now)

    async def user_of(self, request: Any) -> str | None:
        """The user id ``identify`` gives for ``request`` (``None`` without one)."""
        return await call_identify(self.identify, request)


def runtime_of(scope: Mapping[str, Any]) -> AppRuntime | None:
    """The runtime serving an ASGI connection: lifespan state first, then ``app.state``."""
    state = scope.get("state")
    if state is not None:
        found = state.get("statekit")
        if isinstance(found, AppRuntime):
            return found
    app = scope.get("app")
    found = getattr(getattr(app, "state", None), "statekit", None)
    return found if isinstance(found, AppRuntime) else None
