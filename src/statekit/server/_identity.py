"""Who is asking: signed session cookies, per-tab tokens, and the scope chain of a request.

This module is framework-light (Starlette ``Request``/``Response`` only) so
that the sync server, the FastAPI adapter and the HTeaLeaf façade share one
identity scheme (docs/sync-protocol.md, "Identity and scopes").

The API:

- :data:`SESSION_COOKIE` (``"sk_session"``), :data:`TAB_HEADER`
  (``"X-Statekit-Tab"``).
- :func:`resolve_secret(secret, who) <resolve_secret>`: ``secret`` or
  ``$STATEKIT_SECRET``; no default (a clear error naming both), unless the
  caller asks for ``generate=True`` (a random secret, logged as a warning).
- :class:`SessionSigner(secret, max_age=30 days) <SessionSigner>`:
  ``issue() -> (sid, cookie_value)``, ``verify(cookie_value) -> sid | None``
  (format ``<sid>.<issued>.<sig>``, HMAC-SHA256, constant-time compare,
  expired after ``max_age``), and per-tab tokens ``issue_tab(sid) -> token``,
  ``verify_tab(sid, token) -> tid | None`` (``<tid>.<sig>``, bound to ``sid``).
- :func:`set_session_cookie(response, request, value, max_age)
  <set_session_cookie>`: HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS.
- :func:`session_of(request, signer) <session_of>`: the verified sid of a
  request's cookie, or ``None``.
- :class:`Identity(sid, user=None, tab=None) <Identity>`: ``scope_key()`` is
  the session scope id (``sid`` or ``sid/tid``).
- :func:`enter_scopes(identity, app=None) <enter_scopes>`: a context manager
  entering ``app → user(uid) → session(scope_key) → request``.

Example:
    >>> import statekit as sk
    >>> signer = SessionSigner("a secret of the app")
    >>> sid, cookie = signer.issue()
    >>> signer.verify(cookie) == sid, signer.verify(cookie[:-1] + "x")
    (True, None)
    >>> tid = signer.verify_tab(sid, signer.issue_tab(sid))
    >>> cart = sk.Store({"items": []}, name="cart", scope="session")
    >>> with enter_scopes(Identity(sid, user="alice", tab=tid)):
    ...     sk.current_scope().parent.id == f"{sid}/{tid}"
    True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import logging
import os
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response

from .._scope import APP, REQUEST, SESSION, USER, Scope, _current, _request_ids, current_scope

__all__ = [
    "SESSION_COOKIE",
    "TAB_HEADER",
    "Identity",
    "SessionSigner",
    "call_identify",
    "enter_scopes",
    "resolve_secret",
    "session_of",
    "set_session_cookie",
]

SESSION_COOKIE = "sk_session"
TAB_HEADER = "X-Statekit-Tab"
DEFAULT_MAX_AGE = 30 * 86400.0
_log = logging.getLogger("statekit.server")
_GOOD_CACHE = 10_000  # verified cookie values remembered per signer
_MAX_COOKIE = 200  # a valid cookie is ~80 characters; longer ones are not parsed


def resolve_secret(
    secret: str | bytes | None, who: str = "statekit.server", *, generate: bool = False
) -> bytes:
    """``secret``, else ``$STATEKIT_SECRET``; there is no default secret.

    ``generate=True`` is for entry points that promise to run without
    configuration (the HTeaLeaf façade, whose documented examples pass no
    secret): instead of the error, a random 256-bit secret is returned and a
    warning naming ``who`` is logged on the ``statekit.server`` logger, since
    every session cookie it signs dies with the process.

    Example:
        >>> resolve_secret("k")
        b'k'
        >>> import os; saved = os.environ.pop("STATEKIT_SECRET", None)
        >>> resolve_secret(None, "SyncServer")
        Traceback (most recent call last):
        ...
        ValueError: SyncServer needs a secret to sign session cookies: pass secret=... or set...
        >>> len(resolve_secret(None, "my app", generate=True))
        32
        >>> if saved is not None: os.environ["STATEKIT_SECRET"] = saved
    """
    if secret is None:
        secret = os.environ.get("STATEKIT_SECRET") or None
    if (secret is None or len(secret) == 0) and generate:
        _log.warning(
            "%s: no secret given and STATEKIT_SECRET is not set; generated a random one "
            "(session cookies stop verifying when the process ends)",
            who,
        )
        return secrets.token_bytes(32)
    if secret is None or len(secret) == 0:
        raise ValueError(
            f"{who} needs a secret to sign session cookies: pass secret=... or set the "
            "environment variable STATEKIT_SECRET (for example to the output of "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`)'
        )
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


class SessionSigner:
    """Issues and checks signed session cookies and per-tab tokens.

    ``secret`` may be ``None`` to read ``$STATEKIT_SECRET`` (an error when it
    is not set either). A cookie is ``<sid>.<issued>.<sig>``: ``sid`` 32 hex
    characters (128 random bits), ``issued`` Unix seconds, ``sig`` the
    base64url HMAC-SHA256 of ``sid.issued``.

    Example:
        >>> signer = SessionSigner(b"k" * 32, max_age=60)
        >>> sid, cookie = signer.issue()
        >>> len(sid), signer.verify(cookie) == sid
        (32, True)
        >>> signer.verify(sid + ".0." + cookie.rsplit(".", 1)[1])  # issued changed: forged
        >>> SessionSigner(b"other").verify(cookie)  # another secret
    """

    __slots__ = ("_good", "_secret", "max_age")

    def __init__(self, secret: str | bytes | None, max_age: float = DEFAULT_MAX_AGE) -> None:
        self._secret = resolve_secret(secret, "SessionSigner")
        if max_age <= 0:
            raise ValueError("SessionSigner: max_age is a number of seconds > 0")
        self.max_age = max_age
        # Cookie values whose signature checked out: the HMAC of a given value
        # never changes, so a returning visitor costs a dict lookup instead of
        # an HMAC. Only the signature is remembered; expiry is checked every time.
        self._good: dict[str, str] = {}

    def sign(self, payload: str) -> str:
        """The base64url HMAC-SHA256 of ``payload``."""
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def _valid(self, payload: str, sig: str) -> bool:
        return hmac.compare_digest(sig.encode(), self.sign(payload).encode())

    def issue(self, now: float | None = None) -> tuple[str, str]:
        """A new session id and its cookie value ``<sid>.<issued>.<sig>``."""
        sid = secrets.token_hex(16)
        payload = f"{sid}.{int(time.time() if now is None else now)}"
        return sid, f"{payload}.{self.sign(payload)}"

    def verify(self, cookie: str | None, now: float | None = None) -> str | None:
        """The session id of a valid (well-formed, unforged, unexpired) cookie, else ``None``."""
        if not cookie or len(cookie) > _MAX_COOKIE:
            return None
        parts = cookie.split(".")
        if len(parts) != 3:
            return None
        sid, issued, sig = parts
        if self._good.get(cookie) != sid:
            if len(sid) != 32 or not _is_hex(sid) or not issued.isdigit() or len(issued) > 12:
                return None
            if not self._valid(f"{sid}.{issued}", sig):
                return None
            if len(self._good) >= _GOOD_CACHE:
                self._good.clear()  # bounded: a flood of valid cookies only costs HMACs again
            self._good[cookie] = sid
        age = (time.time() if now is None else now) - int(issued)
        if age > self.max_age or age < -300:  # from the future: a clock far off, or forged
            return None
        return sid

    def issue_tab(self, sid: str) -> str:
        """A per-tab token ``<tid>.<sig>`` bound to the session ``sid``."""
        tid = secrets.token_hex(8)
        return f"{tid}.{self.sign(f'tab.{sid}.{tid}')}"

    def verify_tab(self, sid: str, token: str | None) -> str | None:
        """The tab id of a token issued for ``sid``, else ``None``."""
        if not token or len(token) > _MAX_COOKIE:
            return None
        tid, _, sig = token.partition(".")
        if len(tid) != 16 or not _is_hex(tid) or not sig:
            return None
        return tid if self._valid(f"tab.{sid}.{tid}", sig) else None


def session_of(connection: HTTPConnection, signer: SessionSigner) -> str | None:
    """The verified session id of the request's ``sk_session`` cookie, or ``None``."""
    return signer.verify(connection.cookies.get(SESSION_COOKIE))


def set_session_cookie(
    response: Response, connection: HTTPConnection, value: str, max_age: float = DEFAULT_MAX_AGE
) -> None:
    """Set the ``sk_session`` cookie: HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(max_age),
        path="/",
        httponly=True,
        samesite="lax",
        secure=connection.url.scheme in ("https", "wss"),
    )


async def call_identify(identify: Callable[[Any], Any] | None, request: Any) -> str | None:
    """The user id an app's ``identify(request)`` gives, awaited if it is async.

    ``None`` and ``""`` both mean "no logged-in user" (an empty id would
    make a user scope nobody can name). Anything else but a ``str`` is the
    app's bug: a ``TypeError`` naming its type, never its value (it could
    be a user record). The sync server and the FastAPI adapter both call
    this, so an app's ``identify`` means the same under either.

    Example:
        >>> import asyncio
        >>> asyncio.run(call_identify(lambda request: "", None)) is None
        True
    """
    if identify is None:
        return None
    found = identify(request)
    if inspect.isawaitable(found):
        found = await found
    if found is not None and not isinstance(found, str):
        raise TypeError(f"identify() returns a user id (str) or None, not {type(found).__name__}")
    return found or None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is: a session id, an optional user id, an optional tab id.

    Example:
        >>> Identity("s1").scope_key(), Identity("s1", tab="t9").scope_key()
        ('s1', 's1/t9')
    """

    sid: str
    user: str | None = None
    tab: str | None = None

    def scope_key(self) -> str:
        """The id of this identity's session scope: ``sid``, or ``sid/tid`` per tab."""
        return self.sid if self.tab is None else f"{self.sid}/{self.tab}"

    def limit_key(self) -> str:
        """What a rate limit counts against: the user when known, else the session."""
        return f"u:{self.user}" if self.user is not None else f"s:{self.sid}"


def enter_scopes(
    identity: Identity, app: Scope | None = None, *, request: bool = True
) -> ContextManager[Scope]:
    """Enter ``app → user(uid) → session(scope_key) → request``; yield the request scope.

    ``app`` defaults to the current app scope. The request scope is disposed
    when the block ends; the user and session scopes stay (they hold values).
    ``request=False`` stops at the session (and yields it): for work that
    runs no user code, where a request scope would only be made and disposed.

    Example:
        >>> import statekit as sk
        >>> with enter_scopes(Identity("s1", user="bob")) as req:
        ...     [s.level for s in req.chain]
        ['app', 'user', 'session', 'request']
        >>> with enter_scopes(Identity("s1"), request=False) as scope:
        ...     scope.level
        'session'
    """
    return _ScopeChain(identity, app, request)


class _ScopeChain:
    """``enter_scopes`` as a plain context manager.

    It does what ``with app, user(uid), session(key), request():`` does, with
    the scopes entered directly: every request of the sync server passes
    here, and the generic ``contextmanager``/``ExitStack`` layers cost more
    than the entering itself.
    """

    __slots__ = ("_app", "_entered", "_identity", "_request")

    def __init__(self, identity: Identity, app: Scope | None, request: bool) -> None:
        self._identity = identity
        self._app = app
        self._request = request
        self._entered: list[Scope] = []

    def __enter__(self) -> Scope:
        entered = self._entered
        try:
            # Entering the app scope again when it is current already changes
            # nothing (the session scope's touch below reaches it too).
            if self._app is not None and _current.get() is not self._app:
                entered.append(self._app.__enter__())
            identity = self._identity
            if identity.user is not None:
                root = current_scope().chain[APP]
                assert root is not None
                entered.append(root._child(USER, identity.user, None).__enter__())
            chain = current_scope().chain
            parent = chain[USER] or chain[APP]
            assert parent is not None
            scope = parent._child(SESSION, identity.scope_key(), None)
            entered.append(scope.__enter__())
            if self._request:
                scope = scope._child(REQUEST, f"r{next(_request_ids)}", None)
                try:
                    entered.append(scope.__enter__())
                except BaseException:
                    scope.dispose()
                    raise
        except BaseException:
            self._unwind()
            raise
        return scope

    def __exit__(self, *exc_info: object) -> None:
        self._unwind()

    def _unwind(self) -> None:
        entered = self._entered
        while entered:
            scope = entered.pop()
            try:
                scope.__exit__(None, None, None)
            finally:
                if scope.depth == REQUEST:
                    scope.dispose()
