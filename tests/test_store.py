"""Store: JSON Pointer and JSON Patch conformance through the public API,
writes, frozen values, listeners, selectors, transactions, history, schema."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import statekit as sk
from test_paths import RFC_DOC, RFC_TABLE  # the RFC 6901 §5 table, shared

# --------------------------------------------------------------------------
# helpers


class Probe:
    """Records what a store tells the outside world: listener calls and patches."""

    def __init__(self, store: sk.Store, *paths: str) -> None:
        self.store = store
        self.calls: dict[str, list[Any]] = {path: [] for path in paths}
        self.patches: list[tuple[list[Any], int]] = []
        self.offs = [store.listen(path, self.calls[path].append) for path in paths]
        self.offs.append(store.on_patch(lambda ops, v: self.patches.append((ops, v))))

    def quiet(self) -> bool:
        return not self.patches and not any(self.calls.values())

    def close(self) -> None:
        for off in self.offs:
            off()


@contextmanager
def recorded_errors() -> Iterator[list[tuple[BaseException, str]]]:
    """What reaches the error hook (raising listeners and effects) in the block."""
    seen: list[tuple[BaseException, str]] = []
    old = sk.set_error_hook(lambda exc, where: seen.append((exc, where)))
    try:
        yield seen
    finally:
        sk.set_error_hook(old)


@pytest.fixture
def errors() -> Iterator[list[tuple[BaseException, str]]]:
    with recorded_errors() as seen:
        yield seen


def refused(store: sk.Store, action: Callable[[], Any], error: type[Exception]) -> Exception:
    """Run ``action``, expect ``error``, and check that nothing changed or was told."""
    before, version = store.snapshot(), store.version
    probe = Probe(store, "")
    with pytest.raises(error) as info:
        action()
    assert store.snapshot() is before
    assert store.version == version
    assert probe.quiet()
    probe.close()
    return info.value


# --------------------------------------------------------------------------
# RFC 6901 §5, through Store.get

RFC6901_DOC = RFC_DOC
RFC6901_TABLE = [
    *RFC_TABLE,
    # the leading "/" is optional
    ("foo/1", "baz"),
    ("a~1b", 1),
    ("m~0n", 8),
]


@pytest.mark.parametrize(("pointer", "expected"), RFC6901_TABLE)
def test_rfc6901_examples(pointer: str, expected: Any) -> None:
    store = sk.Store(RFC6901_DOC)
    assert store.get(pointer) == expected
    assert store.has(pointer)


EXTRA_DOC = {
    "~1": "tilde-one",
    "/": "slash",
    "~": "tilde",
    "0": "zero key",
    "01": "leading zero key",
    "-": "dash key",
    "-1": "minus one key",
    "xs": [10, 20, 30],
    "": {"": {"": "deep empty"}},
    "nested": {"0": {"1": "numeric keys"}},
}

EXTRA_TABLE = [
    ("/~01", "tilde-one"),  # ~01 is "~1", not "/"
    ("/~1", "slash"),
    ("/~0", "tilde"),
    ("/0", "zero key"),  # in an object every part is a key
    ("/01", "leading zero key"),
    ("/-", "dash key"),
    ("/-1", "minus one key"),
    ("/xs/0", 10),
    ("/xs/2", 30),
    ("//", {"": "deep empty"}),
    ("///", "deep empty"),
    ("/nested/0/1", "numeric keys"),
    (("nested", 0, "1"), "numeric keys"),  # a sequence of parts, ints allowed
    (["~1"], "tilde-one"),  # parts are taken as decoded
]


@pytest.mark.parametrize(("pointer", "expected"), EXTRA_TABLE)
def test_escapes_empty_and_numeric_keys(pointer: Any, expected: Any) -> None:
    assert sk.Store(EXTRA_DOC).get(pointer) == expected


BAD_POINTERS = [
    ("/xs/3", "3", "out of range"),
    ("/xs/-1", "-1", "not a valid array index"),
    ("/xs/-", "-", "only 'add'"),
    ("/xs/01", "01", "not a valid array index"),
    ("/xs/+1", "+1", "not a valid array index"),
    ("/xs/1.0", "1.0", "not a valid array index"),
    ("/xs/ 1", " 1", "not a valid array index"),
    ("/xs/99999999999999999999999", "99999999999999999999999", "out of range"),
    ("/xs/0/x", "x", "cannot index into int"),
    ("/missing", "missing", "no key 'missing'"),
    ("/nested/0/2", "2", "no key '2'"),
    ("/a/~2", "~2", "invalid escape"),
    ("/a~", "a~", "invalid escape"),
]


@pytest.mark.parametrize(("pointer", "part", "reason"), BAD_POINTERS)
def test_bad_pointers_raise_path_error_naming_path_part_and_store(
    pointer: str, part: str, reason: str
) -> None:
    store = sk.Store(EXTRA_DOC, name="extra")
    with pytest.raises(sk.PathError) as info:
        store.get(pointer)
    assert info.value.part == part
    assert reason in str(info.value)
    assert "store 'extra'" in str(info.value)
    assert isinstance(info.value, KeyError)
    if "escape" in reason:
        with pytest.raises(sk.PathError):
            store.has(pointer)  # a malformed pointer is an error, not "absent"
    else:
        assert not store.has(pointer)


@pytest.mark.parametrize(("pointer", "part", "reason"), BAD_POINTERS)
def test_bad_pointers_change_nothing_on_write(pointer: str, part: str, reason: str) -> None:
    store = sk.Store(EXTRA_DOC, name="extra")
    for action in (
        lambda: store.set(pointer, 1),
        lambda: store.update(pointer, lambda v: v),
        lambda: store.delete(pointer),
    ):
        error = refused(store, action, sk.PathError)
        assert getattr(error, "part", None) == part


def test_error_messages_never_show_document_contents() -> None:
    store = sk.Store({"secret": {"password": "hunter2"}}, name="s")
    with pytest.raises(sk.PathError) as info:
        store.get("/secret/password/0")
    assert "hunter2" not in str(info.value)
    with pytest.raises(sk.PatchTestFailed) as failed:
        store.patch([{"op": "test", "path": "/secret/password", "value": "guess"}])
    assert "hunter2" not in str(failed.value)


def test_dash_appends_only_through_add() -> None:
    store = sk.Store({"xs": [1]})
    store.add("xs/-", 2)
    store.add("/xs/-", 3)
    assert store.get("xs") == [1, 2, 3]
    refused(store, lambda: store.set("xs/-", 4), sk.PathError)
    refused(store, lambda: store.delete("xs/-"), sk.PathError)
    store.add("xs/3", 4)  # index == length appends too
    refused(store, lambda: store.add("xs/5", 9), sk.PathError)
    assert store.get("xs") == [1, 2, 3, 4]


def test_negative_index_never_writes_the_last_element() -> None:
    # HTeaLeaf's "-1 silently writes the last element".
    store = sk.Store({"xs": [1, 2, 3]})
    refused(store, lambda: store.set("xs/-1", 9), sk.PathError)
    assert store.get("xs") == [1, 2, 3]


def test_numeric_looking_keys_are_keys_in_objects() -> None:
    store = sk.Store({"by_id": {"0": "a", "10": "b"}})
    store.set("by_id/10", "B")
    store.add("by_id/007", "bond")  # not an index: a key, kept as written
    assert store.get("by_id") == {"0": "a", "10": "B", "007": "bond"}
    store.delete("by_id/0")
    assert store.get("by_id") == {"10": "B", "007": "bond"}


def test_empty_keys_are_writable() -> None:
    store = sk.Store({"": {"": 1}})
    store.set("//", 2)
    store.add("/new", {"": []})
    store.add("/new//-", "x")
    assert store.snapshot() == {"": {"": 2}, "new": {"": ["x"]}}


# --------------------------------------------------------------------------
# RFC 6902 appendix A, through Store.patch

APPENDIX_A = [
    (
        "A.1 add an object member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2 add an array element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    (
        "A.3 remove an object member",
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    (
        "A.4 remove an array element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5 replace a value",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6 move a value",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7 move an array element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8 test a value: success",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10 add a nested member object",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11 ignore unrecognized elements",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "A.14 ~ escape ordering",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (
        "A.16 add an array value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
]


@pytest.mark.parametrize(
    ("title", "doc", "ops", "expected"), APPENDIX_A, ids=[case[0] for case in APPENDIX_A]
)
def test_rfc6902_appendix_a(title: str, doc: Any, ops: Any, expected: Any) -> None:
    store = sk.Store(doc)
    probe = Probe(store, "")
    store.patch(ops)
    assert store.snapshot() == expected
    changed = expected != doc
    assert store.version == (1 if changed else 0)
    assert len(probe.patches) == (1 if changed else 0)
    assert probe.calls[""] == ([expected] if changed else [])
    # and the change undoes exactly
    if changed:
        assert store.undo()
        assert store.snapshot() == doc


APPENDIX_A_FAILING = [
    (
        "A.9 test a value: error",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        sk.PatchTestFailed,
    ),
    (
        "A.12 add to a nonexistent target",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        sk.PathError,
    ),
    (
        "A.13 invalid JSON Patch document (duplicate 'op': the last one wins)",
        {"foo": "bar"},
        json.loads('[{"op": "add", "path": "/baz", "value": "qux", "op": "remove"}]'),
        sk.PathError,
    ),
    (
        "A.15 comparing strings and numbers",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        sk.PatchTestFailed,
    ),
]


@pytest.mark.parametrize(
    ("title", "doc", "ops", "error"),
    APPENDIX_A_FAILING,
    ids=[case[0] for case in APPENDIX_A_FAILING],
)
def test_rfc6902_appendix_a_failures_change_nothing(
    title: str, doc: Any, ops: Any, error: type[Exception]
) -> None:
    store = sk.Store(doc, name="rfc")
    raised = refused(store, lambda: store.patch(ops), error)
    assert "store 'rfc'" in str(raised)
    assert store.snapshot() == doc


def test_patch_is_all_or_nothing() -> None:
    store = sk.Store({"a": 1, "xs": [1, 2]})
    ops = [
        {"op": "replace", "path": "/a", "value": 2},
        {"op": "add", "path": "/xs/-", "value": 3},
        {"op": "remove", "path": "/xs/0"},
        {"op": "remove", "path": "/nope"},  # fails: nothing above happens
    ]
    error = refused(store, lambda: store.patch(ops), sk.PathError)
    assert "op 3" in str(error)
    assert store.snapshot() == {"a": 1, "xs": [1, 2]}


MALFORMED_PATCHES = [
    ({"op": "add", "path": "/a", "value": 1}, "list of operations"),
    ("add /a", "list of operations"),
    ([["add", "/a"]], "an operation is an object"),
    ([{"path": "/a"}], "missing member 'op'"),
    ([{"op": "frobnicate", "path": "/a"}], "unknown op"),
    ([{"op": "add", "path": "/a"}], "missing member 'value'"),
    ([{"op": "add", "value": 1}], "missing member 'path'"),
    ([{"op": "add", "path": 3, "value": 1}], "must be a JSON Pointer string"),
    ([{"op": "move", "path": "/b"}], "missing member 'from'"),
    ([{"op": "move", "from": "/a", "path": "/a/b"}], "own child"),
    ([{"op": "add", "path": "/b", "value": {1, 2}}], "not JSON"),
    ([{"op": "add", "path": "/b", "value": float("nan")}], "not a JSON number"),
    ([{"op": "add", "path": "/b", "value": {"k": object()}}], "'/b/k'"),
    ([{"op": "add", "path": "/b", "value": {1: "int key"}}], "not a string"),
    ([{"op": "remove", "path": ""}], "whole document"),
    ([{"op": "replace", "path": "", "value": [1, 2]}], "must stay an object"),
]


@pytest.mark.parametrize(("ops", "message"), MALFORMED_PATCHES)
def test_malformed_patches_are_refused_with_a_clear_error(ops: Any, message: str) -> None:
    store = sk.Store({"a": {"x": 1}}, name="m")
    error = refused(store, lambda: store.patch(ops), sk.PatchError)
    assert message in str(error)
    assert "store 'm'" in str(error)


def test_patch_stream_is_normalized() -> None:
    store = sk.Store({"xs": ["a"], "o": {}})
    seen: list[Any] = []
    store.on_patch(lambda ops, version: seen.append((list(ops), version)))
    store.patch(
        [
            {"op": "add", "path": "xs/-", "value": "b"},
            {"op": "test", "path": "/xs/0", "value": "a"},
            {"op": "copy", "from": "/xs", "path": "/o/copy"},
            {"op": "move", "from": "/o", "path": "/o"},
        ]
    )
    assert seen == [
        (
            [
                {"op": "add", "path": "/xs/1", "value": "b"},
                {"op": "copy", "from": "/xs", "path": "/o/copy"},
            ],
            1,
        )
    ]


# --------------------------------------------------------------------------
# writes


def test_set_replaces_and_never_creates_keys() -> None:
    store = sk.Store({"user": {"name": "ann"}}, name="s")
    store.set("user/name", "bob")
    assert store.get("user") == {"name": "bob"}
    error = refused(store, lambda: store.set("user/email", "x"), sk.PathError)
    assert "no key 'email'" in str(error)
    store.add("user/email", "x")  # creating a key is explicit
    assert store.get("user/email") == "x"


def test_set_to_an_equal_value_is_not_a_change() -> None:
    store = sk.Store({"n": 1, "s": "text", "flag": True})
    probe = Probe(store, "n", "s")
    store.set("n", 1)
    store.set("s", "te" + "xt")
    store.update("n", lambda n: n)
    store.patch([{"op": "test", "path": "/n", "value": 1}])
    assert store.version == 0
    assert probe.quiet()
    store.set("flag", 1)  # 1 is not True in JSON: a change
    assert store.get("flag") == 1 and store.get("flag") is not True
    assert store.version == 1


def test_update_is_atomic_and_returns_the_stored_value() -> None:
    store = sk.Store({"todo": [{"title": "a"}]})
    new = store.update("todo", lambda todo: [*todo, {"title": "b"}])
    assert new is store.get("todo")
    assert isinstance(new, sk.FrozenList)
    with pytest.raises(ZeroDivisionError):
        store.update("todo", lambda todo: 1 / 0)
    assert store.get("todo") == [{"title": "a"}, {"title": "b"}]
    refused(store, lambda: store.update("todo", lambda todo: {1, 2}), sk.PatchError)


def test_delete_and_restore_and_reset() -> None:
    store = sk.Store({"a": 1, "b": {"c": [1, 2]}})
    store.delete("b/c/0")
    store.delete("a")
    assert store.snapshot() == {"b": {"c": [2]}}
    refused(store, lambda: store.delete("a"), sk.PathError)
    snap = store.snapshot()
    store.restore({"z": 0})
    assert store.snapshot() == {"z": 0}
    store.restore(snap)
    assert store.snapshot() is snap  # restoring a snapshot reuses it
    store.reset()
    assert store.snapshot() == {"a": 1, "b": {"c": [1, 2]}}
    refused(store, lambda: store.restore([1]), sk.PatchError)  # type: ignore[arg-type]


def test_initial_document_is_checked_and_copied() -> None:
    initial = {"xs": [1]}
    store = sk.Store(initial)
    initial["xs"].append(2)  # the caller's dict is not the store's
    assert store.get("xs") == [1]
    with pytest.raises(sk.PatchError, match="'/when'"):
        sk.Store({"when": object()}, name="bad")
    with pytest.raises(TypeError, match="store 'l'"):
        sk.Store([1, 2], name="l")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history"):
        sk.Store({}, history=-1)


def test_atom_declares_a_key_once() -> None:
    store = sk.Store({"email": "kept"})
    email = store.atom("email", "")
    assert email.value == "kept"  # an existing value is not overwritten
    name = store.atom("name", "anon")
    assert store.get("name") == "anon"
    name.value = "ann"
    assert name.peek() == "ann" and name.get() == "ann"
    assert name.update(lambda n: n.upper()) == "ANN"
    name.reset()
    assert name.value == "anon"
    assert name.path == "/name"
    with pytest.raises(sk.PatchError):
        store.atom("f", lambda: 2)  # a lambda is not a value (flet-asp stored it)


def test_store_atom_subscribe() -> None:
    store = sk.Store({})
    n = store.atom("n", 0)
    seen: list[int] = []
    off = n.subscribe(seen.append)
    n.set(1)
    n.value = 2
    off()
    n.value = 3
    assert seen == [1, 2]


def test_writing_inside_a_computed_is_refused() -> None:
    store = sk.Store({"n": 0}, name="w")
    bad = sk.computed(lambda: store.set("n", 1))
    with pytest.raises(sk.StatekitError, match="store 'w'"):
        bad.value
    assert store.get("n") == 0


# --------------------------------------------------------------------------
# frozen values


def test_values_handed_out_are_deeply_frozen() -> None:
    store = sk.Store({"todo": [{"title": "a", "tags": ["x"]}], "meta": {"n": 1}})
    todo = store.get("todo")
    snap = store.snapshot()
    for attempt in (
        lambda: todo.append({}),
        lambda: todo[0].update(title="b"),
        lambda: todo[0]["tags"].append("y"),
        lambda: snap["meta"].__setitem__("n", 2),
        snap.clear,
    ):
        with pytest.raises(sk.ReadOnlyError):
            attempt()
    assert store.snapshot() == {"todo": [{"title": "a", "tags": ["x"]}], "meta": {"n": 1}}
    assert json.loads(json.dumps(snap)) == snap  # still plain JSON


def test_values_written_are_copied_in() -> None:
    store = sk.Store({"todo": []})
    item = {"title": "a", "tags": ["x"]}
    store.add("todo/-", item)
    item["tags"].append("sneaky")  # the caller's object is not the store's
    assert store.get("todo/0/tags") == ["x"]


def test_snapshots_are_immutable_history() -> None:
    store = sk.Store({"n": 0, "big": {"k": list(range(10))}})
    snaps = [store.snapshot()]
    for i in range(1, 5):
        store.set("n", i)
        snaps.append(store.snapshot())
    assert [snap["n"] for snap in snaps] == [0, 1, 2, 3, 4]
    # copy-on-write: the untouched subtree is shared, not copied
    assert all(snap["big"] is snaps[0]["big"] for snap in snaps)


# --------------------------------------------------------------------------
# listeners


def test_listener_precision() -> None:
    store = sk.Store({"todo": [{"done": False}, {"done": False}], "filter": "all"})
    probe = Probe(store, "todo", "todo/0", "todo/1", "todo/0/done", "filter")
    store.set("todo/0/done", True)
    assert probe.calls["todo/1"] == []  # not called for a sibling's change
    assert probe.calls["filter"] == []
    assert probe.calls["todo"] == [[{"done": True}, {"done": False}]]  # above: called
    assert probe.calls["todo/0"] == [{"done": True}]
    assert probe.calls["todo/0/done"] == [True]
    store.set("filter", "done")
    assert probe.calls["filter"] == ["done"]
    assert len(probe.calls["todo"]) == 1


def test_listener_under_a_replaced_parent() -> None:
    store = sk.Store({"todo": [{"done": False}, {"done": False}]})
    probe = Probe(store, "todo/0/done", "todo/1/done")
    store.set("todo", [{"done": True}, {"done": False}])  # replaced wholesale
    assert probe.calls["todo/0/done"] == [True]
    assert probe.calls["todo/1/done"] == []  # rebuilt, but equal: no call
    store.restore({"todo": [{"done": False}]})
    assert probe.calls["todo/0/done"] == [True, False]
    assert probe.calls["todo/1/done"] == [None]  # stopped existing
    store.add("todo/-", {"done": True})
    assert probe.calls["todo/1/done"] == [None, True]  # exists again


def test_listener_order_and_arguments_across_a_transaction() -> None:
    store = sk.Store({"a": 0, "b": 0})
    probe = Probe(store, "a", "b", "")
    with store.transaction():
        store.set("a", 1)
        store.set("a", 2)
        store.set("b", 1)
    assert probe.calls["a"] == [2]  # one notification with the final value
    assert probe.calls["b"] == [1]
    assert probe.calls[""] == [{"a": 2, "b": 1}]
    assert [v for _, v in probe.patches] == [1]


def test_raising_listener_does_not_stop_others(errors: list[Any]) -> None:
    store = sk.Store({"n": 0}, name="r")
    seen: list[str] = []

    def bad(value: Any) -> None:
        raise RuntimeError("listener boom")

    def bad_patch(ops: Any, version: int) -> None:
        raise RuntimeError("patch boom")

    store.listen("n", lambda v: seen.append("first"))
    store.listen("n", bad)
    store.listen("n", lambda v: seen.append("last"))
    store.on_patch(bad_patch)
    store.on_patch(lambda ops, v: seen.append("patch"))
    store.set("n", 1)
    assert sorted(seen) == ["first", "last", "patch"]
    assert store.get("n") == 1  # the write stands
    assert sorted(str(exc) for exc, _ in errors) == ["listener boom", "patch boom"]
    assert any("store 'r'" in where for _, where in errors)


def test_listener_can_write_back() -> None:
    store = sk.Store({"celsius": 0, "fahrenheit": 32})
    store.listen("celsius", lambda c: store.set("fahrenheit", c * 9 / 5 + 32))
    patches: list[int] = []
    store.on_patch(lambda ops, v: patches.append(v))
    store.set("celsius", 100)
    assert store.get("fahrenheit") == 212
    assert patches == [1, 2]  # the listener's commit comes after, in order


def test_unsubscribe_stops_calls() -> None:
    store = sk.Store({"n": 0})
    seen: list[Any] = []
    off = store.listen("n", seen.append)
    off_patch = store.on_patch(lambda ops, v: seen.append(v))
    store.set("n", 1)
    off()
    off_patch()
    off()  # idempotent
    off_patch()
    store.set("n", 2)
    assert seen == [1, 1]


def test_effects_track_store_paths_precisely() -> None:
    store = sk.Store({"a": {"x": 1}, "b": 1})
    runs: list[Any] = []
    stop = sk.effect(lambda: runs.append(store.get("a/x")))
    store.set("b", 2)
    store.add("a/y", 1)  # the parent changed, /a/x did not
    store.set("a/x", 5)
    stop()
    assert runs == [1, 5]


def test_effect_on_a_missing_path_runs_when_it_appears(errors: list[Any]) -> None:
    store = sk.Store({})
    runs: list[Any] = []

    def body() -> None:
        runs.append(store.get("later") if store.has("later") else None)
        store.get("")  # depend on the document

    stop = sk.effect(body)
    store.add("later", 1)
    stop()
    assert runs == [None, 1]
    seen: list[Any] = []
    stop = sk.effect(lambda: seen.append(store.get("nope")))
    assert isinstance(errors[-1][0], sk.PathError)
    store.add("nope", 3)  # the failed read was tracked: the effect re-runs
    stop()
    assert seen == [3]


# --------------------------------------------------------------------------
# selectors


def test_selector_computes_and_caches() -> None:
    store = sk.Store({"todo": [{"done": True}, {"done": False}], "filter": "all"})
    runs = []

    @store.selector("remaining")
    def remaining(get: Any) -> int:
        runs.append(1)
        return sum(not t["done"] for t in get("todo"))

    assert remaining.value == 1 and store.get("remaining") == 1
    assert len(runs) == 1
    seen: list[int] = []
    store.listen("remaining", seen.append)
    store.set("filter", "done")  # not a dependency
    assert len(runs) == 1
    store.set("todo/1/done", True)
    assert seen == [0]
    with pytest.raises(sk.InvalidDefinition, match="already has a selector"):
        store.selector("remaining")(lambda get: 0)
    with pytest.raises(sk.InvalidDefinition, match="shadows a key"):
        store.selector("filter")(lambda get: 0)


def test_selector_dependencies_are_dynamic() -> None:
    store = sk.Store({"flag": True, "a": 1, "b": 10})
    runs: list[Any] = []

    @store.selector("pick")
    def pick(get: Any) -> int:
        value = get("a") if get("flag") else get("b")
        runs.append(value)
        return value  # type: ignore[no-any-return]

    seen: list[int] = []
    store.listen("pick", seen.append)
    store.set("b", 11)  # not read while flag is set
    assert seen == [] and runs == [1]
    store.set("flag", False)
    assert seen == [11]
    store.set("a", 2)  # dropped dependency: no re-run
    assert runs == [1, 11]
    store.set("b", 12)
    assert seen == [11, 12]


def test_selector_over_another_selector_and_atoms() -> None:
    store = sk.Store({"items": [1, 2, 3]})
    factor = sk.atom(2)

    @store.selector("total")
    def total(get: Any) -> int:
        return sum(get("items"))

    @store.selector("scaled")
    def scaled(get: Any) -> int:
        return get("total") * factor.value  # type: ignore[no-any-return]

    assert scaled.value == 12
    factor.value = 3
    store.add("items/-", 4)
    assert scaled.value == 30


# --------------------------------------------------------------------------
# transactions


def test_transaction_is_one_commit_and_reads_its_own_writes() -> None:
    store = sk.Store({"a": 0, "xs": []})
    probe = Probe(store, "a")
    with store.transaction() as tx:
        tx.set("a", 1)
        assert store.get("a") == 1  # this thread sees its own changes
        store.add("xs/-", store.get("a"))
        store.update("a", lambda a: a + 1)
        assert store.snapshot() == {"a": 2, "xs": [1]}
        assert probe.quiet()  # nothing is told before the end
    assert store.version == 1
    ((ops, version),) = probe.patches
    assert version == 1 and len(ops) == 3
    assert probe.calls["a"] == [2]
    assert store.undo() and store.snapshot() == {"a": 0, "xs": []}


def test_transaction_rolls_back_on_error() -> None:
    store = sk.Store({"a": 0})
    probe = Probe(store, "a")
    with pytest.raises(RuntimeError), store.transaction():
        store.set("a", 1)
        raise RuntimeError("abort")
    assert store.get("a") == 0 and store.version == 0 and probe.quiet()


def test_nested_transaction_failure_rolls_back_only_its_changes() -> None:
    store = sk.Store({"a": 0, "b": 0})
    with store.transaction():
        store.set("a", 1)
        with pytest.raises(sk.PathError), store.transaction():
            store.set("b", 1)
            store.set("missing", 1)
        assert store.get("b") == 0
        store.set("a", 2)
    assert store.snapshot() == {"a": 2, "b": 0}
    assert store.version == 1


def test_empty_transaction_is_no_commit() -> None:
    store = sk.Store({"a": 0})
    with store.transaction():
        store.set("a", 1)
        store.set("a", 0)
    with store.transaction():
        pass
    # a change and its reversal still commit (the stream says what happened)
    assert store.version == 1 and store.snapshot() == {"a": 0}


def test_undo_inside_a_transaction_is_refused() -> None:
    store = sk.Store({"a": 0}, name="t")
    with store.transaction():
        with pytest.raises(sk.StatekitError, match="store 't': undo"):
            store.undo()
        with pytest.raises(sk.StatekitError, match="redo"):
            store.redo()


# --------------------------------------------------------------------------
# history


def test_undo_redo() -> None:
    store = sk.Store({"n": 0})
    for i in range(1, 4):
        store.set("n", i)
    assert store.undo() and store.undo()
    assert store.get("n") == 1
    assert store.redo() and store.get("n") == 2
    store.set("n", 10)  # a new change clears the redo stack
    assert not store.redo()
    assert store.undo() and store.get("n") == 2
    assert store.undo() and store.undo() and store.get("n") == 0
    assert not store.undo()
    assert store.version == 10  # every step is a commit


def test_history_is_bounded() -> None:
    store = sk.Store({"n": 0}, history=3)
    for i in range(1, 11):
        store.set("n", i)
    assert [store.undo() for _ in range(4)] == [True, True, True, False]
    assert store.get("n") == 7
    no_history = sk.Store({"n": 0}, history=0)
    no_history.set("n", 1)
    assert not no_history.undo()


def test_undo_emits_patches_that_replay() -> None:
    store = sk.Store({"xs": [1, 2], "o": {"k": "v"}})
    stream: list[Any] = []
    store.on_patch(lambda ops, v: stream.extend(ops))
    store.patch(
        [
            {"op": "move", "from": "/o/k", "path": "/xs/0"},
            {"op": "copy", "from": "/xs", "path": "/o/xs"},
        ]
    )
    store.undo()
    assert store.snapshot() == {"xs": [1, 2], "o": {"k": "v"}}
    doc = store.snapshot()
    from statekit import _patch

    replayed, _ = _patch.apply(_patch.freeze_json({"xs": [1, 2], "o": {"k": "v"}}), stream)
    assert replayed == doc


# --------------------------------------------------------------------------
# schema


pydantic = pytest.importorskip("pydantic")


class Todo(pydantic.BaseModel):  # type: ignore[name-defined,misc]
    title: str
    done: bool = False


class TodoDoc(pydantic.BaseModel):  # type: ignore[name-defined,misc]
    model_config = pydantic.ConfigDict(extra="forbid")
    todo: list[Todo] = []
    filter: str = "all"


def test_schema_fills_defaults_at_creation() -> None:
    store = sk.Store({}, schema=TodoDoc)
    assert store.snapshot() == {"todo": [], "filter": "all"}
    with pytest.raises(sk.ValidationError):
        sk.Store({"filter": 3}, schema=TodoDoc)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.set("filter", ["not", "a", "string"]),
        lambda s: s.add("todo/-", {"done": True}),  # no title
        lambda s: s.add("extra", 1),
        lambda s: s.update("todo", lambda todo: [*todo, {"title": 3}]),
        lambda s: s.patch([{"op": "remove", "path": "/todo/0/title"}]),
        lambda s: s.restore({"todo": "nope"}),
    ],
)
def test_schema_refuses_invalid_changes(change: Callable[[sk.Store], None]) -> None:
    store = sk.Store({"todo": [{"title": "a"}]}, schema=TodoDoc, name="typed")
    error = refused(store, lambda: change(store), sk.ValidationError)
    assert "store 'typed'" in str(error)


def test_schema_coercion_is_recorded_in_the_stream() -> None:
    store = sk.Store({"todo": []}, schema=TodoDoc)
    stream: list[Any] = []
    store.on_patch(lambda ops, v: stream.extend(ops))
    store.add("todo/-", {"title": "a"})  # done=False is filled in by the model
    assert store.get("todo/0") == {"title": "a", "done": False}
    from statekit import _patch

    replayed, _ = _patch.apply(_patch.freeze_json({"todo": [], "filter": "all"}), stream)
    assert replayed == store.snapshot()
    assert store.undo() and store.snapshot() == {"todo": [], "filter": "all"}


def test_schema_validates_a_transaction_once_at_the_end() -> None:
    store = sk.Store({"todo": []}, schema=TodoDoc)
    with store.transaction():
        store.add("todo/-", {})  # invalid for a moment...
        store.add("todo/0/title", "fixed")  # ...valid at the end
    assert store.get("todo/0/title") == "fixed"
    before = store.snapshot()
    with pytest.raises(sk.ValidationError), store.transaction():
        store.set("filter", 1)
    assert store.snapshot() is before and store.version == 1


# --------------------------------------------------------------------------
# scopes


def test_session_store_has_one_copy_per_session() -> None:
    cart = sk.Store({"items": []}, scope="session", name="cart")
    with sk.session("a"):
        cart.add("items/-", "apple")
    with sk.session("b"):
        assert cart.get("items") == []
        cart.add("items/-", "pear")
    with sk.session("a"):
        assert cart.get("items") == ["apple"]
    with pytest.raises(sk.ScopeError):
        cart.get("items")  # no session here
