"""A catalog of bad requests: each gets its 4xx and a JSON ``{error, detail}``, changes nothing.

Every case runs against a real uvicorn. For each one the test checks the
status, the error code, that the detail is a sentence that does not echo the
state (the stores hold a marker string that must never appear in an error),
that the body is JSON with exactly ``error`` and ``detail``, and that every
store's value and version are exactly as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx

import statekit as sk
from _server_fixtures import (
    CALL,
    SECRET,
    WRITE,
    counter,
    items,
    make_server,
    profile,
    running,
    todos,
)
from statekit.server import SESSION_COOKIE, Limits, SessionSigner, SyncServer

MARK = "SECRET-7d1f"
_NO: Any = object()


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    code: str
    json: Any = _NO
    body: bytes | None = None
    headers: dict[str, str] | None = None  # None: the usual ones for the method
    cookie: str = "valid"  # valid | none | forged | expired | garbage
    user: str | None = None
    server: str = "main"  # main | limited | tabs
    extra: dict[str, str] = field(default_factory=dict)


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def op(kind: str, path: str, **more: Any) -> list[dict[str, Any]]:
    return [{"op": kind, "path": path, **more}]


CASES = [
    # --- the body is not JSON
    Case("malformed json", "PATCH", "/stores/counter", 400, "malformed_json", body=b'[{"op":'),
    Case("empty body", "PATCH", "/stores/counter", 400, "malformed_json", body=b""),
    Case(
        "NaN is not JSON",
        "PATCH",
        "/stores/counter",
        400,
        "malformed_json",
        body=b'[{"op":"replace","path":"/n","value":NaN}]',
    ),
    Case("not UTF-8", "PATCH", "/stores/counter", 400, "malformed_json", body=b"\xff\xfe[]"),
    Case(
        "action body not JSON",
        "POST",
        "/stores/counter/actions/bump",
        400,
        "malformed_json",
        body=b"{by: 1}",
    ),
    # --- content types
    Case(
        "text/plain patch",
        "PATCH",
        "/stores/counter",
        415,
        "unsupported_media_type",
        json=op("replace", "/n", value=1),
        headers={"X-Statekit": "1", "Content-Type": "text/plain"},
    ),
    Case(
        "no content type",
        "PATCH",
        "/stores/counter",
        415,
        "unsupported_media_type",
        body=b"[]",
        headers={"X-Statekit": "1"},
    ),
    Case(
        "application/json on PATCH",
        "PATCH",
        "/stores/counter",
        415,
        "unsupported_media_type",
        json=op("replace", "/n", value=1),
        headers={"X-Statekit": "1", "Content-Type": "application/json"},
    ),
    Case(
        "form on an action",
        "POST",
        "/stores/counter/actions/bump",
        415,
        "unsupported_media_type",
        body=b"by=1",
        headers={"X-Statekit": "1", "Content-Type": "application/x-www-form-urlencoded"},
    ),
    # --- malformed patches and pointers
    Case("object, not array", "PATCH", "/stores/counter", 422, "invalid_patch", json={"op": "x"}),
    Case("op is not an object", "PATCH", "/stores/counter", 422, "invalid_patch", json=[1]),
    Case("unknown op", "PATCH", "/stores/counter", 422, "invalid_patch", json=op("frob", "/n")),
    Case(
        "missing path",
        "PATCH",
        "/stores/counter",
        422,
        "invalid_patch",
        json=[{"op": "remove"}],
    ),
    Case(
        "path not a string", "PATCH", "/stores/counter", 422, "invalid_patch", json=op("remove", 5)
    ),  # type: ignore[arg-type]
    Case(
        "pointer without leading slash",
        "PATCH",
        "/stores/counter",
        422,
        "invalid_patch",
        json=op("replace", "n", value=1),
    ),
    Case(
        "bad ~ escape",
        "PATCH",
        "/stores/counter",
        422,
        "invalid_patch",
        json=op("replace", "/n~2", value=1),
    ),
    Case(
        "lone ~ at the end",
        "PATCH",
        "/stores/counter",
        422,
        "invalid_patch",
        json=op("replace", "/n~", value=1),
    ),
    Case(
        "replace without value",
        "PATCH",
        "/stores/counter",
        422,
        "invalid_patch",
        json=op("replace", "/n"),
    ),
    Case(
        "move into own child",
        "PATCH",
        "/stores/items",
        422,
        "invalid_patch",
        json=[{"op": "move", "from": "/xs", "path": "/xs/0"}],
    ),
    Case(
        "infinite number",
        "PATCH",
        "/stores/counter",
        422,
        "invalid_patch",
        body=b'[{"op":"replace","path":"/n","value":1e400}]',
    ),
    # --- paths that do not resolve
    Case(
        "path under a number",
        "PATCH",
        "/stores/counter",
        422,
        "path_not_found",
        json=op("replace", "/n/deep", value=1),
    ),
    Case(
        "index out of range",
        "PATCH",
        "/stores/items",
        422,
        "path_not_found",
        json=op("replace", "/xs/5", value=1),
    ),
    Case(
        "add past the end",
        "PATCH",
        "/stores/items",
        422,
        "path_not_found",
        json=op("add", "/xs/3", value=1),
    ),
    Case(
        "'-' with replace",
        "PATCH",
        "/stores/items",
        422,
        "path_not_found",
        json=op("replace", "/xs/-", value=1),
    ),
    Case(
        "'-' with remove",
        "PATCH",
        "/stores/items",
        422,
        "path_not_found",
        json=op("remove", "/xs/-"),
    ),
    Case(
        "negative index",
        "PATCH",
        "/stores/items",
        422,
        "path_not_found",
        json=op("replace", "/xs/-1", value=1),
    ),
    Case(
        "leading zero index",
        "PATCH",
        "/stores/items",
        422,
        "path_not_found",
        json=op("replace", "/xs/01", value=1),
    ),
    Case(
        "copy from nowhere",
        "PATCH",
        "/stores/items",
        422,
        "path_not_found",
        json=[{"op": "copy", "from": "/nope", "path": "/xs/0"}],
    ),
    Case(
        "remove a missing key",
        "PATCH",
        "/stores/profile",
        422,
        "path_not_found",
        json=op("remove", "/nick"),
    ),
    # --- schema, test ops, versions
    Case(
        "schema: wrong type",
        "PATCH",
        "/stores/profile",
        422,
        "validation_failed",
        json=op("replace", "/age", value="old"),
    ),
    Case(
        "schema: required field removed",
        "PATCH",
        "/stores/profile",
        422,
        "validation_failed",
        json=op("remove", "/name"),
    ),
    Case(
        "test op fails",
        "PATCH",
        "/stores/counter",
        409,
        "test_failed",
        json=[{"op": "test", "path": "/n", "value": "x"}, *op("replace", "/n", value=5)],
    ),
    Case(
        "stale If-Match",
        "PATCH",
        "/stores/counter",
        412,
        "version_mismatch",
        json=op("replace", "/n", value=5),
        extra={"If-Match": '"0"'},
    ),
    Case(
        "malformed If-Match",
        "PATCH",
        "/stores/counter",
        412,
        "version_mismatch",
        json=op("replace", "/n", value=5),
        extra={"If-Match": "latest"},
    ),
    # --- limits
    Case(
        "oversized body",
        "PATCH",
        "/stores/counter",
        413,
        "body_too_large",
        json=op("replace", "/n", value="x" * 70_000),
    ),
    Case(
        "too many ops",
        "PATCH",
        "/stores/counter",
        413,
        "too_many_ops",
        json=[{"op": "test", "path": "/n", "value": 1}] * 101,
    ),
    Case(
        "value nested too deep",
        "PATCH",
        "/stores/counter",
        422,
        "too_deep",
        json=op("replace", "/n", value=deep(31)),
    ),
    Case(
        "body too deep to parse",
        "PATCH",
        "/stores/counter",
        422,
        "too_deep",
        body=b"[" * 60_000,
    ),
    # --- write policy
    Case(
        "path not writable",
        "PATCH",
        "/stores/counter",
        403,
        "not_writable",
        json=op("replace", "/locked", value=0),
    ),
    Case(
        "whole document not writable",
        "PATCH",
        "/stores/counter",
        403,
        "not_writable",
        json=op("replace", "", value={}),
    ),
    Case(
        "move out of a read-only path",
        "PATCH",
        "/stores/counter",
        403,
        "not_writable",
        json=[{"op": "move", "from": "/locked", "path": "/n"}],
    ),
    Case(
        "new key not writable",
        "PATCH",
        "/stores/counter",
        403,
        "not_writable",
        json=op("add", "/admin", value=True),
    ),
    # --- what does not exist
    Case("unknown store", "PATCH", "/stores/nope", 404, "unknown_store", json=[]),
    Case("unknown store GET", "GET", "/stores/nope", 404, "unknown_store"),
    Case(
        "unknown action",
        "POST",
        "/stores/counter/actions/explode",
        404,
        "unknown_action",
        json={},
    ),
    Case("unknown endpoint", "GET", "/admin", 404, "not_found"),
    Case("another user's store (no user)", "GET", "/stores/todos", 404, "unknown_store"),
    Case(
        "writing a user store without a user",
        "PATCH",
        "/stores/todos",
        404,
        "unknown_store",
        json=op("add", "/todo/-", value=1),
    ),
    # --- methods
    Case("DELETE a store", "DELETE", "/stores/counter", 405, "method_not_allowed"),
    Case("PUT a store", "PUT", "/stores/counter", 405, "method_not_allowed", json={}),
    Case("POST a store", "POST", "/stores/counter", 405, "method_not_allowed", json={}),
    Case("GET an action", "GET", "/stores/counter/actions/bump", 405, "method_not_allowed"),
    # --- sessions
    Case(
        "no cookie",
        "PATCH",
        "/stores/counter",
        401,
        "invalid_session",
        json=op("replace", "/n", value=1),
        cookie="none",
    ),
    Case(
        "forged cookie",
        "PATCH",
        "/stores/counter",
        401,
        "invalid_session",
        json=op("replace", "/n", value=1),
        cookie="forged",
    ),
    Case(
        "expired cookie",
        "PATCH",
        "/stores/counter",
        401,
        "invalid_session",
        json=op("replace", "/n", value=1),
        cookie="expired",
    ),
    Case(
        "garbage cookie",
        "POST",
        "/stores/counter/actions/bump",
        401,
        "invalid_session",
        json={},
        cookie="garbage",
    ),
    Case(
        "forged tab token",
        "PATCH",
        "/stores/draft",
        401,
        "invalid_session",
        json=op("replace", "/text", value="x"),
        server="tabs",
        extra={"X-Statekit-Tab": "0123456789abcdef.AAAA"},
    ),
    Case(
        "forged tab token on events",
        "GET",
        "/events?store=draft&tab=0123456789abcdef.AAAA",
        401,
        "invalid_session",
        server="tabs",
    ),
    # --- cross-site requests
    Case(
        "cross-origin POST",
        "POST",
        "/stores/counter/actions/bump",
        403,
        "cross_origin",
        json={},
        extra={"Origin": "http://evil.example"},
    ),
    Case(
        "Sec-Fetch-Site cross-site",
        "PATCH",
        "/stores/counter",
        403,
        "cross_origin",
        json=op("replace", "/n", value=1),
        extra={"Sec-Fetch-Site": "cross-site"},
    ),
    Case(
        "Sec-Fetch-Site same-site",
        "PATCH",
        "/stores/counter",
        403,
        "cross_origin",
        json=op("replace", "/n", value=1),
        extra={"Sec-Fetch-Site": "same-site"},
    ),
    Case(
        "missing custom header",
        "PATCH",
        "/stores/counter",
        403,
        "missing_header",
        json=op("replace", "/n", value=1),
        headers={"Content-Type": "application/json-patch+json"},
    ),
    Case(
        "custom header with another value",
        "POST",
        "/stores/counter/actions/bump",
        403,
        "missing_header",
        json={},
        headers={"X-Statekit": "0", "Content-Type": "application/json"},
    ),
    Case(
        "tab token without the header",
        "POST",
        "/session/tab",
        403,
        "missing_header",
        body=b"{}",
        headers={"Content-Type": "application/json"},
        server="tabs",
    ),
    # --- action arguments
    Case(
        "action arg of the wrong type",
        "POST",
        "/stores/counter/actions/bump",
        422,
        "invalid_arguments",
        json={"by": "many"},
    ),
    Case(
        "unknown action arg",
        "POST",
        "/stores/counter/actions/bump",
        422,
        "invalid_arguments",
        json={"by": 1, "sudo": True},
    ),
    Case(
        "missing action arg",
        "POST",
        "/stores/todos/actions/add",
        422,
        "invalid_arguments",
        json={"done": True},
        user="alice",
    ),
    Case(
        "action args not an object",
        "POST",
        "/stores/counter/actions/bump",
        422,
        "invalid_arguments",
        json=[1],
    ),
    Case(
        "action that fails",
        "POST",
        "/stores/counter/actions/fail_after_write",
        422,
        "action_failed",
        json={},
    ),
    # --- queries
    Case("events without a store", "GET", "/events", 400, "invalid_query"),
    Case("events of an unknown store", "GET", "/events?store=nope", 404, "unknown_store"),
    # --- rate
    Case(
        "rate limited",
        "PATCH",
        "/stores/counter",
        429,
        "rate_limited",
        json=op("replace", "/n", value=1),
        server="limited",
    ),
]


def test_catalog_is_big_and_unique() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[SyncServer, str]]]:
    app = sk.new_app_scope("bad-inputs")
    made = {
        "main": make_server(app=app),
        "limited": make_server(app=app, limits=Limits(rate=0.01, burst=3)),
        "tabs": make_server(app=app, session_per_tab=True),
    }
    with app:
        counter.set("locked", MARK)  # state that no error may echo
    with running(made["main"]) as a, running(made["limited"]) as b, running(made["tabs"]) as c:
        yield {
            "main": (made["main"], a),
            "limited": (made["limited"], b),
            "tabs": (made["tabs"], c),
        }


def everything(server: SyncServer) -> list[tuple[Any, int]]:
    """Value and version of every store copy the cases could touch."""
    with server.app_scope:
        found = [(store.snapshot(), store.version) for store in (counter, items, profile)]
        with sk.user("alice"), sk.session("probe"):
            found.append((todos.snapshot(), todos.version))
    return found


def cookie_for(kind: str) -> str | None:
    signer = SessionSigner(SECRET)
    if kind == "forged":
        _sid, value = SessionSigner("another secret").issue()
        return value
    if kind == "expired":
        return signer.issue(now=time.time() - 31 * 86400)[1]
    if kind == "garbage":
        return "not.a.cookie"
    return None


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, servers: dict[str, tuple[SyncServer, str]]) -> None:
    server, url = servers[case.server]
    with httpx.Client(base_url=url, timeout=10) as c:
        if case.cookie == "valid":
            c.get("/stores").raise_for_status()
        elif case.cookie != "none":
            c.cookies.set(SESSION_COOKIE, cookie_for(case.cookie) or "")
        headers = dict(
            case.headers
            if case.headers is not None
            else {"PATCH": WRITE, "POST": CALL, "PUT": CALL}.get(case.method, {})
        )
        headers.update(case.extra)
        if case.user:
            headers["X-Test-User"] = case.user
        content = case.body if case.body is not None else None
        if case.json is not _NO:
            content = json.dumps(case.json).encode()
        if case.server == "limited":
            for _ in range(3):  # spend the burst
                c.get("/stores/counter")
        if case.name == "stale If-Match":
            with server.app_scope:
                counter.update("n", lambda n: n + 1)  # the client's version 0 is now stale
        before = everything(server)
        r = c.request(case.method, case.path, content=content, headers=headers)
        after = everything(server)

    assert (r.status_code, r.headers.get("content-type")) == (case.status, "application/json"), (
        r.text
    )
    body = r.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == case.code
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    assert MARK not in r.text
    assert after == before
    if case.code == "rate_limited":
        assert int(r.headers["retry-after"]) >= 1
    if case.code == "method_not_allowed":
        assert "GET" in r.headers["allow"] or "POST" in r.headers["allow"]
