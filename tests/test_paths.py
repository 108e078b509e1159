"""JSON Pointer (RFC 6901) conformance for statekit._paths."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import statekit as sk
from statekit import _paths
from statekit._frozen import freeze
from statekit._paths import exists, format, get, parse

# The example document of RFC 6901 §5.
RFC_DOC: dict[str, Any] = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}

RFC_TABLE: list[tuple[str, Any]] = [
    ("", RFC_DOC),
    ("/foo", ["bar", "baz"]),
    ("/foo/0", "bar"),
    ("/", 0),
    ("/a~1b", 1),
    ("/c%d", 2),
    ("/e^f", 3),
    ("/g|h", 4),
    ("/i\\j", 5),
    ('/k"l', 6),
    ("/ ", 7),
    ("/m~0n", 8),
]


@pytest.mark.parametrize(("pointer", "expected"), RFC_TABLE)
@pytest.mark.parametrize("frozen", [False, True], ids=["plain", "frozen"])
def test_rfc6901_section5_examples(pointer: str, expected: Any, frozen: bool) -> None:
    doc = freeze(RFC_DOC) if frozen else RFC_DOC
    assert get(doc, parse(pointer)) == expected


@pytest.mark.parametrize(("pointer", "expected"), RFC_TABLE)
def test_format_round_trips_rfc_pointers(pointer: str, expected: Any) -> None:
    assert format(parse(pointer)) == pointer


# ------------------------------------------------------------------ parsing

PARSE_TABLE: list[tuple[str, tuple[str, ...]]] = [
    ("", ()),
    ("/", ("",)),
    ("//", ("", "")),
    ("/a/", ("a", "")),
    ("a", ("a",)),
    ("todo/0/done", ("todo", "0", "done")),
    ("/todo/0/done", ("todo", "0", "done")),
    ("~1", ("/",)),
    ("/~0", ("~",)),
    ("/~01", ("~1",)),  # decoding order: ~01 is "~1", not "/"
    ("/~10", ("/0",)),
    ("/~0~1~1~0", ("~//~",)),
    ("/a~1b~1c", ("a/b/c",)),
    ("/-", ("-",)),
    ("/ü/日本", ("ü", "日本")),
]


@pytest.mark.parametrize(("pointer", "parts"), PARSE_TABLE)
def test_parse(pointer: str, parts: tuple[str, ...]) -> None:
    assert parse(pointer) == parts


def test_leading_slash_is_optional() -> None:
    assert parse("todo/0/done") == parse("/todo/0/done")
    assert format(parse("todo/0/done")) == "/todo/0/done"


@pytest.mark.parametrize(
    "parts",
    [(), ("",), ("", ""), ("a/b",), ("m~n",), ("~1",), ("/0",), ("~",), ("~/~/",), ("-",)],
)
def test_format_then_parse_is_identity(parts: tuple[str, ...]) -> None:
    assert parse(format(parts)) == parts


def test_format_escapes() -> None:
    assert format(("a/b", "m~n", "~1")) == "/a~1b/m~0n/~01"
    assert format([]) == ""
    assert format(["x", "0"]) == "/x/0"


@pytest.mark.parametrize(
    ("pointer", "part"),
    [
        ("/a/~2", "~2"),
        ("/a~", "a~"),
        ("~", "~"),
        ("/~x/b", "~x"),
        ("/ok/b~", "b~"),
        ("/~~0", "~~0"),
    ],
)
def test_invalid_escapes_raise_path_error(pointer: str, part: str) -> None:
    with pytest.raises(sk.PathError) as info:
        parse(pointer)
    err = info.value
    assert isinstance(err, KeyError)
    assert err.path == (pointer if pointer.startswith("/") else "/" + pointer)
    assert err.part == part
    assert "escape" in err.reason
    assert pointer.lstrip("/") in str(err)


def test_parse_sequences_are_decoded_parts() -> None:
    assert parse(["todo", 0, "done"]) == ("todo", "0", "done")
    assert parse(("a/b", "~1")) == ("a/b", "~1")  # no escape processing
    assert parse([]) == ()


@pytest.mark.parametrize("bad", [None, 3, b"/a", {"a": 1}])
def test_parse_rejects_non_paths(bad: Any) -> None:
    with pytest.raises(TypeError):
        parse(bad)


@pytest.mark.parametrize("bad", [[True], [1.0], [None], [("a",)]])
def test_parse_rejects_bad_parts(bad: Any) -> None:
    with pytest.raises(TypeError):
        parse(bad)


def test_parse_is_cached() -> None:
    assert parse("/cache/me/please") is parse("/cache/me/please")


# --------------------------------------------------------------- resolution

DOC = freeze(
    {
        "todo": [{"done": False, "title": "milk"}, {"done": True, "title": "secret-title"}],
        "0": "numeric-looking key",
        "12": {"01": "leading zero key", "-1": "negative key", "-": "dash key"},
        "": {"": "empty in empty"},
        "n": 5,
        "s": "text",
        "none": None,
        "flag": True,
    }
)

RESOLVE_TABLE: list[tuple[str, Any]] = [
    ("/todo/0/done", False),
    ("todo/1/title", "secret-title"),
    ("/0", "numeric-looking key"),  # in an object, "0" is a key
    ("/12/01", "leading zero key"),  # ...and so are "01", "-1" and "-"
    ("/12/-1", "negative key"),
    ("/12/-", "dash key"),
    ("/", {"": "empty in empty"}),
    ("//", "empty in empty"),
    ("/none", None),
    ("/flag", True),
]


@pytest.mark.parametrize(("pointer", "expected"), RESOLVE_TABLE)
def test_resolution(pointer: str, expected: Any) -> None:
    assert get(DOC, parse(pointer)) == expected
    assert exists(DOC, parse(pointer))


ERROR_TABLE: list[tuple[str, str, str]] = [
    # pointer, failing part, reason fragment
    ("/missing", "missing", "no key 'missing' in object"),
    ("/todo/5", "5", "index 5 out of range (length 2)"),
    ("/todo/2", "2", "index 2 out of range (length 2)"),
    ("/todo/-1", "-1", "'-1' is not a valid array index"),
    ("/todo/01", "01", "'01' is not a valid array index"),
    ("/todo/00", "00", "'00' is not a valid array index"),
    ("/todo/+1", "+1", "'+1' is not a valid array index"),
    ("/todo/1.0", "1.0", "'1.0' is not a valid array index"),
    ("/todo/ 1", " 1", "' 1' is not a valid array index"),
    ("/todo/1e0", "1e0", "'1e0' is not a valid array index"),
    ("/todo/x", "x", "'x' is not a valid array index"),
    ("/todo/", "", "'' is not a valid array index"),
    ("/todo/\u0661", "\u0661", "is not a valid array index"),  # ARABIC-INDIC DIGIT ONE
    ("/todo/-", "-", "'-' (past the end of the array)"),
    ("/todo/99999999999999999999999999", "99999999999999999999999999", "out of range"),
    ("/todo/0/missing", "missing", "no key 'missing' in object"),
    ("/n/0", "0", "cannot index into int"),
    ("/s/0", "0", "cannot index into str"),
    ("/none/x", "x", "cannot index into None"),
    ("/flag/x", "x", "cannot index into bool"),
    ("/n/a/b/c", "a", "cannot index into int"),
    ("/0/0", "0", "cannot index into str"),
    ("/missing/deeper", "missing", "no key 'missing' in object"),
]


@pytest.mark.parametrize(("pointer", "part", "reason"), ERROR_TABLE)
def test_resolution_errors(pointer: str, part: str, reason: str) -> None:
    with pytest.raises(sk.PathError) as info:
        get(DOC, parse(pointer))
    err = info.value
    assert isinstance(err, KeyError)
    assert err.path == format(parse(pointer))
    assert err.part == part
    assert reason in err.reason
    message = str(err)
    assert repr(err.path) in message and reason in message
    assert not exists(DOC, parse(pointer))


@pytest.mark.parametrize(("pointer", "part", "reason"), ERROR_TABLE)
def test_errors_do_not_leak_contents(pointer: str, part: str, reason: str) -> None:
    with pytest.raises(sk.PathError) as info:
        get(DOC, parse(pointer))
    message = str(info.value)
    for secret in ("secret-title", "milk", "numeric-looking", "text", "done"):
        if secret not in pointer:
            assert secret not in message


def test_huge_index_does_not_convert_digits() -> None:
    # More digits than int() accepts by default: must still be a clean PathError.
    limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
    part = "9" * (limit + 10)
    with pytest.raises(sk.PathError, match="out of range"):
        get(DOC, ("todo", part))


def test_escaped_keys_resolve() -> None:
    doc = freeze({"a/b": {"m~n": {"~1": "deep"}}})
    assert get(doc, parse("/a~1b/m~0n/~01")) == "deep"
    assert get(doc, ("a/b", "m~n", "~1")) == "deep"


def test_error_path_is_canonical_for_unslashed_input() -> None:
    with pytest.raises(sk.PathError) as info:
        get(DOC, parse("todo/9"))
    assert info.value.path == "/todo/9"


def test_deep_document_needs_no_recursion() -> None:
    depth = sys.getrecursionlimit() * 3
    doc: Any = "bottom"
    for _ in range(depth):
        doc = [doc]
    assert get(doc, ("0",) * depth) == "bottom"
    pointer = "/0" * depth
    assert get(doc, parse(pointer)) == "bottom"


def test_index_helper_for_insertion() -> None:
    assert _paths.index(("x", "-"), "-", 3, end_ok=True) == 3
    assert _paths.index(("x", "3"), "3", 3, end_ok=True) == 3
    with pytest.raises(sk.PathError, match=r"index 4 out of range \(length 3\)"):
        _paths.index(("x", "4"), "4", 3, end_ok=True)


def test_reading_never_creates_keys() -> None:
    from collections import defaultdict

    doc: defaultdict[str, Any] = defaultdict(dict, {"a": 1})
    with pytest.raises(sk.PathError):
        get(doc, parse("/b/c"))
    assert not exists(doc, parse("/b"))
    assert dict(doc) == {"a": 1}
