"""JSON Patch (RFC 6902) and copy-on-write updates: statekit._patch."""

from __future__ import annotations

import json
import math
import sys
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statekit as sk
from statekit import _paths
from statekit._frozen import FrozenDict, FrozenList, freeze, thaw
from statekit._patch import (
    add_in,
    apply,
    apply_with_inverse,
    freeze_json,
    inverse,
    json_equal,
    remove_in,
    set_in,
)


def dump(value: Any) -> str:
    """Canonical JSON text: tells True from 1 and 1 from 1.0, unlike ==."""
    return json.dumps(value, sort_keys=True)


def assert_frozen(value: Any) -> None:
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            assert type(node) is FrozenDict
            pending.extend(node.values())
        elif isinstance(node, list):
            assert type(node) is FrozenList
            pending.extend(node)


# ------------------------------------------------------- RFC 6902 appendix A

# (name, document, patch, expected result or the exception class it raises)
APPENDIX_A: list[tuple[str, Any, list[dict[str, Any]], Any]] = [
    (
        "A.1 adding an object member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2 adding an array element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    (
        "A.3 removing an object member",
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    (
        "A.4 removing an array element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5 replacing a value",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6 moving a value",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7 moving an array element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8 testing a value: success",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.9 testing a value: error",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        sk.PatchTestFailed,
    ),
    (
        "A.10 adding a nested member object",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11 ignoring unrecognized elements",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "A.12 adding to a nonexistent target",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        sk.PathError,
    ),
    (
        "A.14 ~ escape ordering",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (
        "A.15 comparing strings and numbers",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        sk.PatchTestFailed,
    ),
    (
        "A.16 adding an array value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
]


@pytest.mark.parametrize(
    ("document", "patch", "expected"),
    [case[1:] for case in APPENDIX_A],
    ids=[case[0].split(" ")[0] for case in APPENDIX_A],
)
def test_rfc6902_appendix_a(document: Any, patch: list[dict[str, Any]], expected: Any) -> None:
    doc = freeze(document)
    before = dump(doc)
    if isinstance(expected, type):
        with pytest.raises(expected):
            apply(doc, patch)
        assert dump(doc) == before  # unchanged
        return
    new, applied = apply(doc, patch)
    assert dump(new) == dump(expected)
    assert_frozen(new)
    assert dump(doc) == before
    assert dump(apply(doc, applied)[0]) == dump(new)


def test_a13_invalid_patch_document() -> None:
    # A.13: an op object with two "op" members. Parsing picks one (Python's
    # json keeps the last, "remove"); whichever is kept, this patch must fail
    # on {"foo": "bar"} and change nothing.
    text = '[{ "op": "add", "path": "/baz", "value": "qux", "op": "remove" }]'
    doc = freeze({"foo": "bar"})
    with pytest.raises(sk.PathError, match=r"no key 'baz'.*op 0: remove"):
        apply(doc, json.loads(text))
    assert doc == {"foo": "bar"}


def test_a9_message_names_op_path_and_hides_the_value() -> None:
    doc = freeze({"baz": "secret-qux"})
    with pytest.raises(sk.PatchTestFailed) as info:
        apply(doc, [{"op": "test", "path": "/baz", "value": "bar"}])
    message = str(info.value)
    assert "op 0 (test)" in message and "'/baz'" in message
    assert "secret" not in message


def test_a15_message_names_the_types() -> None:
    with pytest.raises(sk.PatchTestFailed, match="found number, expected string"):
        apply(freeze({"/": 9, "~1": 10}), [{"op": "test", "path": "/~01", "value": "10"}])


def test_applied_ops_are_normalized() -> None:
    doc = freeze({"xs": [1], "a/b": {}, "o": {"k": 1}})
    _, applied = apply(
        doc,
        [
            {"op": "add", "path": "xs/-", "value": [2]},
            {"op": "test", "path": "/xs/0", "value": 1},
            {"op": "add", "path": "/a~1b/c", "value": {"d": [3]}, "extra": "ignored"},
            {"op": "copy", "from": "o", "path": "/o2"},
            {"op": "move", "from": "/o/k", "path": "/o/k"},
            {"op": "move", "from": "/o/k", "path": "/o/j"},
        ],
    )
    assert applied == [
        {"op": "add", "path": "/xs/1", "value": [2]},
        {"op": "add", "path": "/a~1b/c", "value": {"d": [3]}},
        {"op": "copy", "from": "/o", "path": "/o2"},
        {"op": "move", "from": "/o/k", "path": "/o/j"},
    ]
    for op in applied:
        assert type(op) is FrozenDict
        assert_frozen(op)
        json.dumps(op)


# ----------------------------------------------------------- op semantics


def test_add_replaces_existing_member_and_root() -> None:
    doc = freeze({"a": 1})
    assert apply(doc, [{"op": "add", "path": "/a", "value": 2}])[0] == {"a": 2}
    assert apply(doc, [{"op": "add", "path": "", "value": [1]}])[0] == [1]
    assert apply(doc, [{"op": "replace", "path": "", "value": None}])[0] is None


def test_add_insert_positions() -> None:
    doc = freeze({"xs": ["a", "b"]})
    assert apply(doc, [{"op": "add", "path": "/xs/0", "value": "z"}])[0]["xs"] == ["z", "a", "b"]
    assert apply(doc, [{"op": "add", "path": "/xs/2", "value": "z"}])[0]["xs"] == ["a", "b", "z"]
    with pytest.raises(sk.PathError, match=r"index 3 out of range \(length 2\)"):
        apply(doc, [{"op": "add", "path": "/xs/3", "value": "z"}])


@pytest.mark.parametrize(
    ("op", "error", "fragment"),
    [
        ({"op": "remove", "path": "/xs/-"}, sk.PathError, "'-'"),
        ({"op": "replace", "path": "/xs/-", "value": 1}, sk.PathError, "'-'"),
        ({"op": "replace", "path": "/nope", "value": 1}, sk.PathError, "no key 'nope'"),
        ({"op": "remove", "path": "/xs/3"}, sk.PathError, "index 3 out of range (length 3)"),
        ({"op": "remove", "path": "/xs/-1"}, sk.PathError, "not a valid array index"),
        ({"op": "add", "path": "/xs/01", "value": 1}, sk.PathError, "not a valid array index"),
        ({"op": "add", "path": "/n/x", "value": 1}, sk.PathError, "cannot index into int"),
        ({"op": "remove", "path": ""}, sk.PatchError, "whole document"),
        ({"op": "move", "from": "/nope", "path": "/x"}, sk.PathError, "no key 'nope'"),
        ({"op": "copy", "from": "/xs/5", "path": "/x"}, sk.PathError, "out of range"),
        ({"op": "move", "from": "/o", "path": "/o/inner"}, sk.PatchError, "own child"),
        ({"op": "move", "from": "", "path": "/o"}, sk.PatchError, "own child"),
        ({"op": "test", "path": "/nope", "value": 1}, sk.PathError, "no key 'nope'"),
        ({"op": "test", "path": "/xs/0", "value": "a "}, sk.PatchTestFailed, "not equal"),
        ({"op": "nope", "path": "/x"}, sk.PatchError, "unknown op 'nope'"),
        ({"op": 1, "path": "/x"}, sk.PatchError, "unknown op of type int"),
        ({"path": "/x"}, sk.PatchError, "missing member 'op'"),
        ({"op": "add", "value": 1}, sk.PatchError, "missing member 'path'"),
        ({"op": "add", "path": "/x"}, sk.PatchError, "missing member 'value'"),
        ({"op": "replace", "path": "/n"}, sk.PatchError, "missing member 'value'"),
        ({"op": "test", "path": "/n"}, sk.PatchError, "missing member 'value'"),
        ({"op": "move", "path": "/x"}, sk.PatchError, "missing member 'from'"),
        ({"op": "copy", "path": "/x"}, sk.PatchError, "missing member 'from'"),
        ({"op": "add", "path": ["x"], "value": 1}, sk.PatchError, "JSON Pointer string"),
        ({"op": "copy", "from": 3, "path": "/x"}, sk.PatchError, "JSON Pointer string"),
        ({"op": "add", "path": "/x~2", "value": 1}, sk.PathError, "invalid escape"),
        ({"op": "add", "path": "/x", "value": {1, 2}}, sk.PatchError, "set is not a JSON"),
        ({"op": "add", "path": "/x", "value": (1,)}, sk.PatchError, "use a list"),
        ({"op": "add", "path": "/x", "value": math.nan}, sk.PatchError, "not a JSON number"),
        ({"op": "add", "path": "/x", "value": [1, math.inf]}, sk.PatchError, "'/x/1'"),
        ({"op": "add", "path": "/x", "value": {"a": {2: 1}}}, sk.PatchError, "'/x/a'"),
        ({"op": "add", "path": "/x", "value": {"a": b"raw"}}, sk.PatchError, "bytes"),
        ({"op": "test", "path": "/n", "value": object()}, sk.PatchError, "object is not a JSON"),
        ("add", sk.PatchError, "an operation is an object"),
    ],
)
def test_failing_ops(op: Any, error: type[Exception], fragment: str) -> None:
    doc = freeze({"xs": ["a", "b"], "n": 1, "o": {"inner": {}}})
    before = dump(doc)
    # As op 2, after two ops that succeed: the whole patch must be refused.
    patch = [
        {"op": "add", "path": "/xs/-", "value": "c"},
        {"op": "replace", "path": "/n", "value": 2},
        op,
    ]
    with pytest.raises(error) as info:
        apply(doc, patch)
    assert type(info.value) is error
    message = str(info.value)
    assert fragment in message
    assert "op 2" in message
    assert dump(doc) == before


def test_invalid_value_error_names_the_inner_path() -> None:
    with pytest.raises(sk.PatchError) as info:
        apply(freeze({}), [{"op": "add", "path": "/cfg", "value": {"ok": [1, {"bad": {3}}]}}])
    assert "'/cfg/ok/1/bad'" in str(info.value)
    assert "op 0 (add)" in str(info.value)


def test_self_containing_value_is_refused() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(sk.PatchError, match="contains itself"):
        apply(freeze({}), [{"op": "add", "path": "/x", "value": loop}])


def test_shared_subvalues_are_fine() -> None:
    shared = {"k": [1]}
    new, _ = apply(freeze({}), [{"op": "add", "path": "/x", "value": [shared, shared]}])
    assert new == {"x": [{"k": [1]}, {"k": [1]}]}


@pytest.mark.parametrize("ops", ["add", b"[]", {"op": "add"}, 3, None])
def test_patch_must_be_a_list(ops: Any) -> None:
    with pytest.raises(sk.PatchError, match="list of operations"):
        apply(freeze({}), ops)


def test_empty_patch_and_tuple_patch() -> None:
    doc = freeze({"a": 1})
    assert apply(doc, []) == (doc, [])
    new, _ = apply(doc, ({"op": "remove", "path": "/a"},))
    assert new == {}


def test_long_op_name_is_truncated_in_message() -> None:
    with pytest.raises(sk.PatchError) as info:
        apply(freeze({}), [{"op": "x" * 10_000, "path": ""}])
    assert len(str(info.value)) < 200


def test_atomicity_failing_at_op_3() -> None:
    doc = freeze({"todo": [{"t": "a"}], "count": 0})
    before = dump(doc)
    patch: list[dict[str, Any]] = [
        {"op": "add", "path": "/todo/-", "value": {"t": "b"}},
        {"op": "replace", "path": "/count", "value": 2},
        {"op": "remove", "path": "/todo/0"},
        {"op": "remove", "path": "/todo/5"},  # op 3 fails
        {"op": "add", "path": "/never", "value": 1},
    ]
    with pytest.raises(sk.PathError) as info:
        apply(doc, patch)
    assert "op 3: remove" in str(info.value)
    assert info.value.path == "/todo/5"
    assert dump(doc) == before


def test_test_op_uses_json_equality() -> None:
    doc = freeze({"i": 1, "f": 1.0, "t": True, "z": 0, "o": {"a": 1, "b": [1, 2]}, "n": None})
    passing = [
        ("/i", 1.0),
        ("/f", 1),
        ("/t", True),
        ("/o", {"b": [1.0, 2], "a": 1}),
        ("/n", None),
    ]
    failing = [
        ("/i", True),
        ("/t", 1),
        ("/z", False),
        ("/n", False),
        ("/n", 0),
        ("/o", {"a": 1}),
        ("/o", {"a": 1, "b": [2, 1]}),
        ("/o", {"a": 1, "b": [1, 2], "c": None}),
        ("/i", "1"),
        ("/o", [["a", 1]]),
    ]
    for path, value in passing:
        apply(doc, [{"op": "test", "path": path, "value": value}])
    for path, value in failing:
        with pytest.raises(sk.PatchTestFailed):
            apply(doc, [{"op": "test", "path": path, "value": value}])


def test_json_equal() -> None:
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert not json_equal(None, 0)
    assert not json_equal([1], (1,))
    assert not json_equal({"a": 1}, {"b": 1})
    deep_a: Any = 1
    deep_b: Any = 1
    for _ in range(sys.getrecursionlimit() * 2):
        deep_a, deep_b = [deep_a], [deep_b]
    assert json_equal(deep_a, deep_b)


def test_move_over_an_existing_key_and_into_parent() -> None:
    doc = freeze({"a": {"b": 1, "c": 2}, "x": 9})
    new, _ = apply(doc, [{"op": "move", "from": "/a/b", "path": "/x"}])
    assert new == {"a": {"c": 2}, "x": 1}
    new, _ = apply(doc, [{"op": "move", "from": "/a/b", "path": "/a"}])
    assert new == {"a": 1, "x": 9}
    new, _ = apply(doc, [{"op": "move", "from": "/a", "path": ""}])
    assert new == {"b": 1, "c": 2}


def test_copy_then_change_the_copy_leaves_the_original() -> None:
    doc = freeze({"a": {"xs": [1]}})
    new, _ = apply(
        doc,
        [
            {"op": "add", "path": "/a/xs/-", "value": 2},  # a/xs now owned by this patch
            {"op": "copy", "from": "/a", "path": "/b"},
            {"op": "add", "path": "/b/xs/-", "value": 3},
            {"op": "replace", "path": "/a/xs/0", "value": 0},
        ],
    )
    assert dump(new) == dump({"a": {"xs": [0, 2]}, "b": {"xs": [1, 2, 3]}})
    assert doc == {"a": {"xs": [1]}}


def test_repeated_edits_in_one_patch() -> None:
    doc = freeze({"xs": []})
    ops = [{"op": "add", "path": "/xs/-", "value": i} for i in range(100)]
    ops += [{"op": "remove", "path": "/xs/0"} for _ in range(50)]
    new, applied = apply(doc, ops)
    assert new == {"xs": list(range(50, 100))}
    assert applied[99] == {"op": "add", "path": "/xs/99", "value": 99}
    assert doc == {"xs": []}
    assert_frozen(new)


def test_values_are_frozen_and_subclasses_normalized() -> None:
    class Tagged(dict[str, Any]):
        pass

    value: dict[str, Any] = {"od": OrderedDict(a=1), "tagged": Tagged(b=[1]), "plain": [{"c": 2}]}
    new, applied = apply(freeze({}), [{"op": "add", "path": "/v", "value": value}])
    assert_frozen(new)
    for op in applied:
        assert_frozen(op)
    value["plain"][0]["c"] = 99  # the caller's object is not shared
    assert new["v"]["plain"][0]["c"] == 2


def test_frozen_values_are_reused_without_copy() -> None:
    part = freeze({"big": list(range(100))})
    new, _ = apply(freeze({}), [{"op": "add", "path": "/p", "value": part}])
    assert new["p"] is part


def test_structural_sharing() -> None:
    doc = freeze({"left": {"deep": [1, 2, 3]}, "right": {"x": {"y": [1]}}})
    new, _ = apply(doc, [{"op": "replace", "path": "/right/x/y/0", "value": 2}])
    assert new["left"] is doc["left"]
    assert new["right"] is not doc["right"]
    assert doc["right"]["x"]["y"] == [1]


def test_deep_document_needs_no_recursion() -> None:
    depth = sys.getrecursionlimit() * 3
    nested: Any = {"leaf": 0}
    for _ in range(depth):
        nested = {"n": nested}
    doc = freeze_json(nested)
    path = "/n" * depth + "/leaf"
    new, _ = apply(doc, [{"op": "replace", "path": path, "value": 1}])
    assert _paths.get(new, _paths.parse(path)) == 1
    assert _paths.get(doc, _paths.parse(path)) == 0
    assert json_equal(doc, doc)
    new, undo = apply_with_inverse(doc, [{"op": "remove", "path": path}])[0::2]
    assert json_equal(apply(new, undo)[0], doc)


# ---------------------------------------------------- set_in / add_in / remove_in


def test_set_in() -> None:
    doc = freeze({"user": {"name": "ann"}, "xs": [1]})
    assert set_in(doc, ("user", "name"), "bob") == {"user": {"name": "bob"}, "xs": [1]}
    assert set_in(doc, ("user", "email"), "e") == {"user": {"name": "ann", "email": "e"}, "xs": [1]}
    assert set_in(doc, (), {"a": [1]}) == {"a": [1]}
    assert_frozen(set_in(doc, ("xs", "0"), {"k": [2]}))
    with pytest.raises(sk.PathError, match="no key 'profile'"):
        set_in(doc, ("profile", "age"), 3)
    with pytest.raises(sk.PathError, match="out of range"):
        set_in(doc, ("xs", "1"), 2)
    with pytest.raises(sk.PathError, match="'-'"):
        set_in(doc, ("xs", "-"), 2)
    with pytest.raises(sk.PatchError, match="'/user/x' is not JSON"):
        set_in(doc, ("user", "x"), {1})
    assert doc == {"user": {"name": "ann"}, "xs": [1]}


def test_set_in_keeps_key_order_and_sharing() -> None:
    doc = freeze({"a": 1, "b": {"c": 2}, "d": 3})
    new = set_in(doc, ("a",), 5)
    assert list(new) == ["a", "b", "d"]
    assert new["b"] is doc["b"]
    assert set_in(doc, ("b",), doc["b"]) is doc  # same value: nothing rebuilt


def test_add_in_and_remove_in() -> None:
    doc = freeze({"xs": [1, 3]})
    assert add_in(doc, ("xs", "1"), 2) == {"xs": [1, 2, 3]}
    assert add_in(doc, ("xs", "-"), 4) == {"xs": [1, 3, 4]}
    assert add_in(doc, ("ys",), []) == {"xs": [1, 3], "ys": []}
    assert remove_in(doc, ("xs", "0")) == {"xs": [3]}
    assert remove_in(doc, ("xs",)) == {}
    with pytest.raises(sk.PathError):
        add_in(doc, ("zs", "0"), 1)
    with pytest.raises(sk.PathError):
        remove_in(doc, ("xs", "2"))
    with pytest.raises(sk.PatchError, match="whole document"):
        remove_in(doc, ())
    assert doc == {"xs": [1, 3]}


def test_freeze_json() -> None:
    assert_frozen(freeze_json({"a": [{"b": []}]}))
    assert freeze_json(3) == 3
    with pytest.raises(sk.PatchError, match=r"value at '/a/0' is not JSON"):
        freeze_json({"a": [1j]})
    with pytest.raises(sk.PatchError, match=r"value at '' is not JSON"):
        freeze_json({1: 2})
    with pytest.raises(sk.PatchError, match=r"value at '/p/q' is not JSON"):
        freeze_json(float("-inf"), "/p/q")


# ----------------------------------------------------------------- inverse


def test_inverse_of_each_op() -> None:
    doc = freeze({"a": {"b": 1}, "xs": ["x", "y"], "k": 0})
    cases: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        ({"op": "add", "path": "/a/c", "value": 2}, [{"op": "remove", "path": "/a/c"}]),
        (
            {"op": "add", "path": "/a/b", "value": 2},
            [{"op": "replace", "path": "/a/b", "value": 1}],
        ),
        ({"op": "add", "path": "/xs/-", "value": 2}, [{"op": "remove", "path": "/xs/2"}]),
        ({"op": "add", "path": "", "value": 2}, [{"op": "replace", "path": "", "value": doc}]),
        ({"op": "remove", "path": "/xs/0"}, [{"op": "add", "path": "/xs/0", "value": "x"}]),
        (
            {"op": "replace", "path": "/k", "value": 5},
            [{"op": "replace", "path": "/k", "value": 0}],
        ),
        ({"op": "test", "path": "/k", "value": 0}, []),
        (
            {"op": "move", "from": "/xs/0", "path": "/xs/-"},
            [{"op": "move", "from": "/xs/1", "path": "/xs/0"}],
        ),
        (
            {"op": "move", "from": "/a/b", "path": "/a"},
            [
                {"op": "replace", "path": "/a", "value": {}},
                {"op": "add", "path": "/a/b", "value": 1},
            ],
        ),
        ({"op": "copy", "from": "/a", "path": "/k"}, [{"op": "replace", "path": "/k", "value": 0}]),
        ({"op": "copy", "from": "/a", "path": "/xs/1"}, [{"op": "remove", "path": "/xs/1"}]),
        ({"op": "move", "from": "/k", "path": "/k"}, []),
    ]
    for op, expected in cases:
        undo = inverse(doc, op)
        assert undo == expected, op
        new, _ = apply(doc, [op])
        assert dump(apply(new, undo)[0]) == dump(doc), op


def test_inverse_of_move_into_a_shifted_array() -> None:
    # The move's target path is a proper prefix of its source once indexes
    # shift: undoing it cannot be a move (RFC forbids moving into a child).
    doc = freeze({"xs": [{"z": 1}, {"z": 2}]})
    op = {"op": "move", "from": "/xs/1/z", "path": "/xs/1"}
    new, _ = apply(doc, [op])
    assert new == {"xs": [{"z": 1}, 2, {}]}
    undo = inverse(doc, op)
    assert [u["op"] for u in undo] == ["remove", "add"]
    assert dump(apply(new, undo)[0]) == dump(doc)


def test_apply_with_inverse_matches_inverse_per_op() -> None:
    doc = freeze({"xs": [1], "o": {"a": {"b": [1]}}})
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/o/a/b/-", "value": 2},
        {"op": "move", "from": "/o/a", "path": "/moved"},
        {"op": "add", "path": "/moved/b/0", "value": 0},  # changes what the move's undo names
        {"op": "copy", "from": "/moved", "path": "/xs/0"},
        {"op": "replace", "path": "/moved/b/1", "value": 9},
    ]
    new, applied, undo = apply_with_inverse(doc, ops)
    current, expected_undo = doc, list[dict[str, Any]]()
    for op in ops:
        expected_undo[:0] = inverse(current, op)
        current, _ = apply(current, [op])
    assert dump(current) == dump(new)
    assert undo == expected_undo
    assert dump(apply(new, undo)[0]) == dump(doc)
    assert dump(apply(doc, applied)[0]) == dump(new)


# -------------------------------------------------------------- Hypothesis

keys = st.text(alphabet=st.sampled_from("ab/~0-1 "), max_size=3)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.text(max_size=2)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=15,
).filter(lambda d: isinstance(d, (dict, list)))


def all_paths(doc: Any) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    pending: list[tuple[tuple[str, ...], Any]] = [((), doc)]
    while pending:
        parts, node = pending.pop()
        found.append(parts)
        if isinstance(node, dict):
            pending.extend(((*parts, k), v) for k, v in node.items())
        elif isinstance(node, list):
            pending.extend(((*parts, str(i)), v) for i, v in enumerate(node))
    return found


def draw_op(data: st.DataObject, doc: Any) -> dict[str, Any]:
    paths = all_paths(doc)
    containers = [p for p in paths if isinstance(_paths.get(doc, p), (dict, list))]
    name = data.draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]))

    def target() -> str:
        parent = data.draw(st.sampled_from(containers)) if containers else ()
        node = _paths.get(doc, parent)
        if isinstance(node, dict):
            key = data.draw(st.sampled_from([*node, "new"]) if node else keys)
        elif isinstance(node, list):
            key = data.draw(st.sampled_from(["-", *map(str, range(len(node) + 1))]))
        else:
            return _paths.format(parent)
        return _paths.format((*parent, key))

    def existing(root_ok: bool) -> str:
        choices = paths if root_ok else paths[1:] or paths
        return _paths.format(data.draw(st.sampled_from(choices)))

    if name == "add":
        return {"op": "add", "path": target(), "value": data.draw(json_values)}
    if name == "remove":
        return {"op": "remove", "path": existing(root_ok=False)}
    if name == "replace":
        return {"op": "replace", "path": existing(root_ok=True), "value": data.draw(json_values)}
    if name == "test":
        path = existing(root_ok=True)
        value = _paths.get(doc, _paths.parse(path))
        if data.draw(st.booleans()):
            value = data.draw(json_values)
        return {"op": "test", "path": path, "value": value}
    return {"op": name, "from": existing(root_ok=name == "copy"), "path": target()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.data())
def test_random_patches(document: Any, data: st.DataObject) -> None:
    doc0 = freeze_json(document)
    text0 = dump(doc0)
    docs = [doc0]
    texts = [text0]
    ops: list[dict[str, Any]] = []
    undo_groups: list[list[dict[str, Any]]] = []
    current = doc0
    for _ in range(data.draw(st.integers(1, 8))):
        op = draw_op(data, current)
        before = dump(current)
        try:
            undo = inverse(current, op)
            new, applied = apply(current, [op])
        except (sk.PathError, sk.PatchError):
            assert dump(current) == before  # a failed op changes nothing
            continue
        assert dump(current) == before
        # Undoing the step gives the previous document back.
        assert dump(apply(new, undo)[0]) == before
        # Replaying the normalized record gives the same document.
        assert dump(apply(current, applied)[0]) == dump(new)
        ops.append(op)
        undo_groups.append(undo)
        docs.append(new)
        texts.append(dump(new))
        current = new

    # One patch of every op: same result as step by step, doc0 untouched.
    final, applied, undo = apply_with_inverse(doc0, ops)
    assert dump(final) == dump(current)
    assert_frozen(final)
    for op in applied:
        assert_frozen(op)
    assert dump(doc0) == text0
    assert dump(apply(doc0, applied)[0]) == dump(final)
    assert dump(apply(final, undo)[0]) == text0

    # The per-op inverses, in reverse order, restore the original.
    restored = final
    for group in reversed(undo_groups):
        restored, _ = apply(restored, group)
    assert dump(restored) == text0

    # No intermediate document was changed by later operations.
    assert [dump(d) for d in docs] == texts
    assert thaw(doc0) == json.loads(text0)
