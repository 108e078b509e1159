"""PATCH bodies and headers on the fast path: the ASCII JSON scan, the depth bound, headers.

The PATCH fast path parses an ASCII body with one scanner call, walks a
body (or an op's value) for its depth only when it has enough brackets to
be too deep, and decodes only the headers it reads. These tests hold it to
the general rules: the same values and the same errors as ``json.loads``,
a 4xx naming what was wrong for every refusal with nothing changed, and
non-ASCII bodies as correct as ever.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import statekit as sk
from _server_fixtures import SECRET, WRITE, client, json_values, running
from statekit.server import Limits, SyncServer
from statekit.server._app import _brackets, _loads, _refuse_constant
from statekit.server._limits import depth_of

pytestmark = pytest.mark.timeout(60)

LIMIT = 4  # the servers' depth limit here

# Texts near JSON, to reach the decoder's errors: brackets, quotes, escapes,
# constants, whitespace, non-ASCII and a NUL.
near_json = st.text(alphabet='[]{}":,0123456789.eE+-tnrufalsNIy \t\n\\/é\x00', max_size=30)


def _reference(data: bytes) -> Any:
    return json.loads(data, parse_constant=_refuse_constant)


@given(json_values, st.booleans(), st.sampled_from([None, 2]), st.sampled_from(["", " ", "\n"]))
def test_loads_reads_what_json_loads_reads(
    value: Any, ascii_only: bool, indent: int | None, pad: str
) -> None:
    text = pad + json.dumps(value, ensure_ascii=ascii_only, indent=indent) + pad
    for encoding in ("utf-8", "utf-16", "utf-32"):
        data = text.encode(encoding)
        assert _loads(data) == _reference(data)


@given(near_json, st.sampled_from(["utf-8", "utf-16-le"]))
def test_loads_refuses_what_json_loads_refuses_with_its_message(text: str, encoding: str) -> None:
    data = text.encode(encoding)
    try:
        expected: Any = ("value", _reference(data))
    except (ValueError, RecursionError) as exc:
        expected = ("error", type(exc), str(exc))
    try:
        got: Any = ("value", _loads(data))
    except (ValueError, RecursionError) as exc:
        got = ("error", type(exc), str(exc))
    assert got == expected


@given(json_values, st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_brackets_bound_the_depth(value: Any, encoding: str) -> None:
    data = json.dumps(value, ensure_ascii=False).encode(encoding)
    assert depth_of(value) <= _brackets(data)


# ------------------------------------------------------------------ through the server


def _stores() -> list[sk.Store]:
    note = sk.Store({"text": "", "n": 0}, name="note", writable=["/text", "/n"])
    deep = sk.Store({"a": {"b": {"c": None}}}, name="deep", writable=[""])
    return [note, deep]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    server = SyncServer(_stores(), secret=SECRET, limits=Limits(rate=None, depth=LIMIT))
    with running(server) as url, client(url) as c:
        yield c


def _state(c: httpx.Client) -> dict[str, Any]:
    return {name: c.get(f"/stores/{name}").json() for name in ("note", "deep")}


def _refused(
    c: httpx.Client,
    status: int,
    code: str,
    says: str,
    body: bytes,
    headers: Any = None,
    store: str = "note",
) -> None:
    """``PATCH`` refused with ``status``/``code``, the detail saying ``says``; nothing changed."""
    before = _state(c)
    answer = c.patch(
        f"/stores/{store}", content=body, headers=WRITE if headers is None else headers
    )
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert set(error) == {"error", "detail"}
    assert error["error"] == code
    assert says in error["detail"], error["detail"]
    assert _state(c) == before


def _replace(path: str, value: Any) -> bytes:
    return json.dumps([{"op": "replace", "path": path, "value": value}]).encode()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'[{"op":"replace","path":"/n","value":1}] x', "Extra data (line 1, column 42)"),
        (b'[{"op":"replace","path":"/n","value":1}', "(line 1, column 40)"),
        (b"  ", "Expecting value (line 1, column 3)"),
        (b'[{"op":"replace","path":"/n","value":NaN}]', "not valid JSON text"),
        (b'[{"op":"replace","path":"/n","value":1}]\x00', "Extra data"),
        ('[{"op":"replace","path":"/text","value":"é"'.encode(), "(line 1, column 44)"),
        ('[{"op":"replace","path":"/text","value":"é"}]\n]'.encode(), "(line 2, column 1)"),
        (b'[{"op":"replace","path":"/text","value":"\\ud800"}', "column"),
    ],
)
def test_a_body_that_is_not_json_says_where(http: httpx.Client, body: bytes, says: str) -> None:
    _refused(http, 400, "malformed_json", says, body)


def test_too_deep_is_refused_whichever_walk_finds_it(http: httpx.Client) -> None:
    # The body itself: 2 (patch, op) + 3 > 4.
    _refused(http, 422, "too_deep", "the body nests 5 levels deep", _replace("/n", [[[1]]]))
    # An op's value at its path (3 + 2 > 4), in a body within the limit (2 + 2).
    _refused(
        http,
        422,
        "too_deep",
        "op 0 (replace): the value at '/a/b/c' nests 5 levels deep; the limit is 4",
        _replace("/a/b/c", [[1]]),
        store="deep",
    )
    # A plain value at a path deeper than the limit: no brackets to count, still refused.
    _refused(
        http,
        422,
        "too_deep",
        "op 0 (add): the value at '/a/b/c/d/e' nests 5 levels deep",
        json.dumps([{"op": "add", "path": "/a/b/c/d/e", "value": 1}]).encode(),
        store="deep",
    )
    # The second op is the deep one: named by its number.
    two = [
        {"op": "replace", "path": "/a", "value": {}},
        {"op": "add", "path": "/a/b/c/d/e", "value": 0},
    ]
    _refused(http, 422, "too_deep", "op 1 (add)", json.dumps(two).encode(), store="deep")


def test_brackets_in_strings_are_not_depth(http: httpx.Client) -> None:
    text = "[[[[[[{{{{{{" * 4  # far more brackets than the limit, none of them JSON's
    answer = http.patch("/stores/note", content=_replace("/text", text), headers=WRITE)
    assert answer.status_code == 200, answer.text
    assert http.get("/stores/note").json()["value"]["text"] == text
    # And a value as deep as the limit allows at its path goes through.
    answer = http.patch("/stores/deep", content=_replace("/a/b", [1]), headers=WRITE)
    assert answer.status_code == 200, answer.text
    assert http.get("/stores/deep").json()["value"] == {"a": {"b": [1]}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[{"op":"replace","path":"/text","value":"é ß 日本 😀"}]'.encode(), "é ß 日本 😀"),
        (b'[{"op":"replace","path":"/text","value":"\\u00e9 \\ud83d\\ude00"}]', "é 😀"),
        ('[{"op":"replace","path":"/text","value":"ü"}]'.encode("utf-16"), "ü"),
        ('\ufeff[{"op":"replace","path":"/text","value":"x"}]'.encode(), "x"),
        (b' \n[{"op":"replace","path":"/text","value":"padded"}]\n ', "padded"),
    ],
)
def test_bodies_beyond_plain_ascii_are_read_right(
    http: httpx.Client, body: bytes, expected: str
) -> None:
    answer = http.patch("/stores/note", content=body, headers=WRITE)
    assert answer.status_code == 200, answer.text
    assert http.get("/stores/note").json()["value"]["text"] == expected


def test_headers_are_read_as_before(http: httpx.Client) -> None:
    patch = _replace("/n", 5)
    # The first of a repeated header wins.
    first_zero = [("Content-Type", WRITE["Content-Type"]), ("X-Statekit", "0"), ("X-Statekit", "1")]
    _refused(http, 403, "missing_header", "X-Statekit: 1", patch, first_zero)
    # A header byte beyond ASCII is read as latin-1, as Starlette reads it.
    foreign = {**WRITE, "Origin": "http://bücher.example".encode("latin-1")}
    _refused(http, 403, "cross_origin", "Origin header", patch, foreign)
    _refused(
        http,
        415,
        "unsupported_media_type",
        "Content-Type is 'text/plain'",
        patch,
        {**WRITE, "Content-Type": "text/plain"},
    )
    _refused(
        http,
        412,
        "version_mismatch",
        'If-Match must be a version in quotes, like "3"',
        patch,
        {**WRITE, "If-Match": "3"},
    )
    # And what is right goes through: parameters on the type, the second
    # X-Statekit ignored, a matching If-Match, headers the path never reads.
    right = [
        (b"Content-Type", WRITE["Content-Type"].encode() + b"; charset=utf-8"),
        (b"X-Statekit", b"1"),
        (b"X-Statekit", b"0"),
        (b"If-Match", b'"0"'),
        (b"User-Agent", b"tests/1.0"),
        (b"X-Other", "ÿ".encode("latin-1")),
    ]
    answer = http.patch("/stores/note", content=patch, headers=right)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"version": 1}
    assert http.get("/stores/note").json()["value"]["n"] == 5
