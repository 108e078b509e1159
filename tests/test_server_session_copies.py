"""The PATCH path's memory of session copies never crosses identities or outlives a session.

``SyncServer._session_copy`` lets a client's next write to its session-scoped
store skip entering ``app → user → session`` to find the copy: the memory is
keyed by the whole identity (store, user, session) and is not used once the
session's scope has ended. Through a real uvicorn.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from _server_fixtures import WRITE, client, make_server, running
from statekit.server._identity import Identity, enter_scopes


def write(c: Any, text: str, **headers: str) -> None:
    op = [{"op": "replace", "path": "/text", "value": text}]
    c.patch("/stores/draft", json=op, headers={**WRITE, **headers}).raise_for_status()


def read(c: Any, **headers: str) -> str:
    got = c.get("/stores/draft", headers=headers)
    got.raise_for_status()
    return str(got.json()["value"]["text"])


def test_sessions_writing_in_turn_keep_their_own_drafts() -> None:
    server = make_server()
    with running(server) as url, client(url) as one, client(url) as two:
        for k in range(20):
            write(one, f"one {k}")
            write(two, f"two {k}")
        assert (read(one), read(two)) == ("one 19", "two 19")
        assert len(server._session_copies) == 2


def test_logging_in_with_the_same_cookie_is_another_copy() -> None:
    server = make_server()
    with running(server) as url, client(url) as c:
        write(c, "anonymous")
        write(c, "alice's", **{"x-test-user": "alice"})
        write(c, "bob's", **{"x-test-user": "bob"})
        assert read(c) == "anonymous"
        assert read(c, **{"x-test-user": "alice"}) == "alice's"
        assert read(c, **{"x-test-user": "bob"}) == "bob's"
        write(c, "anonymous again")
        assert read(c) == "anonymous again"
        assert read(c, **{"x-test-user": "alice"}) == "alice's"
        assert read(c, **{"x-test-user": "bob"}) == "bob's"


def test_a_session_that_ended_gets_a_new_copy_not_the_remembered_one() -> None:
    server = make_server()
    with running(server) as url, client(url) as c:
        write(c, "before")
        sid = server.signer.verify(c.cookies["sk_session"])
        assert sid is not None
        with enter_scopes(Identity(sid), server.app_scope, request=False) as session:
            pass
        session.dispose()  # as idle expiry does
        write(c, "after")  # a fresh session scope, its own new copy
        assert read(c) == "after"
        with enter_scopes(Identity(sid), server.app_scope, request=False) as fresh:
            assert fresh is not session and not fresh.disposed
