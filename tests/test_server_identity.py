"""Identity helpers of the sync server: the signer's verified-cookie memo and enter_scopes."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import statekit as sk
from _server_fixtures import make_server, running
from statekit.server import Identity, SessionSigner, enter_scopes
from statekit.server._identity import call_identify


def test_a_remembered_cookie_still_expires() -> None:
    signer = SessionSigner("secret", max_age=60)
    sid, cookie = signer.issue(now=1000.0)
    assert signer.verify(cookie, now=1010.0) == sid  # checked once, then remembered
    assert signer.verify(cookie, now=1020.0) == sid
    assert signer.verify(cookie, now=1061.0) is None  # expiry is checked every time
    assert signer.verify(cookie, now=600.0) is None  # and so is "from the future"


def test_only_the_exact_verified_value_is_remembered() -> None:
    signer = SessionSigner("secret")
    sid, cookie = signer.issue()
    assert signer.verify(cookie) == sid
    _, issued, sig = cookie.split(".")
    assert signer.verify(f"{sid}.{int(issued) - 1}.{sig}") is None  # issued changed
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    assert signer.verify(f"{sid}.{issued}.{flipped}") is None  # signature changed
    other = "f" * 32 if sid != "f" * 32 else "e" * 32
    assert signer.verify(f"{other}.{issued}.{sig}") is None  # another sid, same signature
    assert SessionSigner("another secret").verify(cookie) is None
    assert signer.verify(cookie) == sid


def test_enter_scopes_with_and_without_a_request_scope() -> None:
    app = sk.new_app_scope()
    with enter_scopes(Identity("s1", user="ann"), app) as req:
        assert [s.level for s in req.chain] == ["app", "user", "session", "request"]
        assert sk.current_scope() is req
    assert req.disposed
    assert sk.current_scope() is not req
    with enter_scopes(Identity("s1", user="ann"), app, request=False) as session:
        assert session.level == "session"
        assert session is req.parent  # the same session as before: values stay
    assert not session.disposed
    assert app.count("request") == 0


def test_enter_scopes_unwinds_when_the_block_raises() -> None:
    app = sk.new_app_scope()
    before = sk.current_scope()
    with pytest.raises(RuntimeError), enter_scopes(Identity("s2", tab="t1"), app) as req:
        assert req.parent is not None and req.parent.id == "s2/t1"
        raise RuntimeError("boom")
    assert req.disposed
    assert sk.current_scope() is before


# -- identify(): one meaning under the sync server and the FastAPI adapter -------


def test_call_identify_sync_async_and_empty() -> None:
    async def later(request: object) -> str | None:
        await asyncio.sleep(0)
        return "alice"

    async def check() -> None:
        assert await call_identify(None, object()) is None
        assert await call_identify(lambda r: "bob", object()) == "bob"
        assert await call_identify(later, object()) == "alice"
        assert await call_identify(lambda r: None, object()) is None
        # An empty id is no user: a user scope "" could not be named.
        assert await call_identify(lambda r: "", object()) is None

    asyncio.run(check())


@pytest.mark.parametrize("bad", [7, {"user": "SECRET-record"}, b"alice"])
def test_call_identify_names_the_wrong_type_not_the_value(bad: object) -> None:
    with pytest.raises(TypeError, match=r"returns a user id \(str\) or None, not ") as caught:
        asyncio.run(call_identify(lambda r: bad, object()))
    assert type(bad).__name__ in str(caught.value)
    assert "SECRET" not in str(caught.value) and "alice" not in str(caught.value)


def test_sync_server_treats_an_empty_user_id_as_anonymous() -> None:
    with running(make_server(identify=lambda request: "")) as url:
        with httpx.Client(base_url=url, timeout=10) as c:
            c.get("/stores").raise_for_status()
            r = c.get("/stores/todos")  # a user store, and no user
            assert r.status_code == 404 and r.json()["error"] == "unknown_store"
            assert c.get("/stores/counter").status_code == 200
