"""The demo's login: a name (no password) in a signed cookie, read by ``identify``.

A real app puts its own authentication here. What matters to statekit is the
one hook: ``SyncServer(identify=login.identify)`` gets each request and
answers a user id or ``None``. The cookie is ``<name, base64url>.<signature>``,
signed with the server's secret by :class:`~statekit.server.SessionSigner`
(HMAC-SHA256), so a visitor cannot claim another name by editing it.

Example:
    >>> login = Login("a secret")
    >>> value = login.cookie_value("Ada")
    >>> login.user_of(value), login.user_of(value.replace("QWRh", "Qm9i"))  # "Bob": forged
    ('Ada', None)
    >>> clean_name("  Grace   Hopper "), clean_name(""), clean_name("x" * 41)
    ('Grace Hopper', None, None)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import urllib.parse

from starlette.requests import Request
from starlette.responses import Response

from statekit.server import SessionSigner

__all__ = ["USER_COOKIE", "Login", "clean_name"]

USER_COOKIE = "sk_demo_user"
MAX_NAME = 40
_MAX_FORM = 1024  # bytes: a name form is tiny


def clean_name(raw: str) -> str | None:
    """The name with its spaces collapsed, or ``None`` when empty, too long or not printable."""
    name = " ".join(raw.split())
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return None
    return name


class Login:
    """Signs and reads the login cookie; ``identify`` is the sync server's hook."""

    def __init__(self, secret: str) -> None:
        self.signer = SessionSigner(secret)

    def cookie_value(self, name: str) -> str:
        """The signed cookie value naming ``name``."""
        encoded = base64.urlsafe_b64encode(name.encode()).rstrip(b"=").decode()
        return f"{encoded}.{self.signer.sign('demo-user.' + encoded)}"

    def user_of(self, value: str | None) -> str | None:
        """The name in a valid cookie value, else ``None``."""
        if not value or len(value) > 400:
            return None
        encoded, _, sig = value.partition(".")
        expected = self.signer.sign("demo-user." + encoded)
        if not sig or not hmac.compare_digest(sig.encode(), expected.encode()):
            return None
        try:
            name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return clean_name(name)

    def identify(self, request: Request) -> str | None:
        """The logged-in user of a request (the sync server's ``identify`` hook)."""
        return self.user_of(request.cookies.get(USER_COOKIE))

    async def name_from_form(self, request: Request) -> str | None:
        """The name posted by the login form, or ``None`` (cross-site, too big, invalid)."""
        origin = request.headers.get("origin")
        if (
            origin is not None
            and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}"
        ):
            return None  # another site may not log a visitor in under its chosen name
        body = await request.body()
        if len(body) > _MAX_FORM:
            return None
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        return clean_name((fields.get("name") or [""])[0])

    def set_cookie(self, response: Response, request: Request, name: str) -> None:
        """Log ``name`` in: HttpOnly, SameSite=Lax, Secure over HTTPS, for the browser session."""
        response.set_cookie(
            USER_COOKIE,
            self.cookie_value(name),
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def clear_cookie(self, response: Response) -> None:
        """Log out."""
        response.delete_cookie(USER_COOKIE, path="/", httponly=True, samesite="lax")
