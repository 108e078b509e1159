"""Hypothesis: random changes through every Store method.

Each example starts a store from a random document and applies a random
sequence of ``set``, ``update``, ``add``, ``delete``, ``patch``,
``transaction`` (of the same), ``undo`` and ``redo``, with paths that exist
and paths that do not. Checked:

* a refused change (PathError, PatchError) leaves the document, the version
  and the stream exactly as they were;
* the ``on_patch`` stream, replayed by an independent RFC 6902 applier (on
  plain dicts and lists) onto a copy of the initial snapshot, reproduces the
  store exactly, after every step;
* versions in the stream are 1, 2, 3... with no gap;
* the store agrees with a plain model that applies each change directly;
* undoing everything returns the initial snapshot.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statekit as sk

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEYS = st.sampled_from(["a", "b", "0", "1", "", "x/y", "m~n", "-"])
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "s", "t"])
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)
DOCS = st.dictionaries(KEYS, VALUES, max_size=4)


# --------------------------------------------------------------------------
# an independent RFC 6902 applier, on plain (thawed) values


def _parse(pointer: str) -> list[str]:
    if pointer == "":
        return []
    assert pointer.startswith("/"), pointer  # the stream is canonical
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    if isinstance(parent, list):
        parent.insert(int(parts[-1]), value)
    else:
        parent[parts[-1]] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _resolve(doc, parts[:-1])
    return parent.pop(int(parts[-1]) if isinstance(parent, list) else parts[-1])


def replay(doc: Any, ops: list[Any]) -> Any:
    for op in ops:
        parts = _parse(op["path"])
        kind = op["op"]
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(sk.thaw(op["value"])))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            if not parts:
                doc = copy.deepcopy(sk.thaw(op["value"]))
            else:
                parent = _resolve(doc, parts[:-1])
                key = int(parts[-1]) if isinstance(parent, list) else parts[-1]
                parent[key] = copy.deepcopy(sk.thaw(op["value"]))
        elif kind == "move":
            value = _remove(doc, _parse(op["from"]))
            doc = _add(doc, parts, value)
        elif kind == "copy":
            value = copy.deepcopy(_resolve(doc, _parse(op["from"])))
            doc = _add(doc, parts, value)
        else:
            raise AssertionError(f"unexpected op in the stream: {op}")
    return doc


# --------------------------------------------------------------------------
# random paths and changes


def _all_paths(doc: Any) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = [()]
    stack: list[tuple[tuple[str, ...], Any]] = [((), doc)]
    while stack:
        prefix, node = stack.pop()
        children = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, child in children:
            path = (*prefix, str(key))
            found.append(path)
            stack.append((path, child))
    return found


def _pointer(parts: tuple[str, ...]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def draw_path(data: st.DataObject, doc: Any, *, for_add: bool = False) -> tuple[str, ...]:
    paths = _all_paths(doc)
    base = data.draw(st.sampled_from(paths))
    tail = data.draw(st.sampled_from(["", "key", "index", "dash", "bad"]))
    if tail == "key":
        return (*base, data.draw(KEYS))
    if tail == "index":
        return (*base, str(data.draw(st.integers(0, 4))))
    if tail == "dash" and for_add:
        return (*base, "-")
    if tail == "bad":
        return (*base, data.draw(st.sampled_from(["-1", "01", "zz"])))
    return base


def draw_op(data: st.DataObject, doc: Any) -> dict[str, Any]:
    kind = data.draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]))
    op: dict[str, Any] = {"op": kind, "path": _pointer(draw_path(data, doc, for_add=True))}
    if kind in ("add", "replace", "test"):
        op["value"] = data.draw(VALUES)
    if kind in ("move", "copy"):
        op["from"] = _pointer(draw_path(data, doc))
    return op


def apply_change(store: sk.Store, data: st.DataObject, depth: int = 0) -> None:
    doc = store.snapshot()
    kind = data.draw(
        st.sampled_from(["set", "update", "add", "delete", "patch", "transaction", "undo", "redo"])
    )
    if kind == "set":
        store.set(draw_path(data, doc), data.draw(VALUES))
    elif kind == "update":
        value = data.draw(VALUES)
        store.update(draw_path(data, doc), lambda old: [old, value])
    elif kind == "add":
        store.add(draw_path(data, doc, for_add=True), data.draw(VALUES))
    elif kind == "delete":
        store.delete(draw_path(data, doc))
    elif kind == "patch":
        ops = []
        for _ in range(data.draw(st.integers(1, 3))):
            ops.append(draw_op(data, doc))
        store.patch(ops)
    elif kind == "transaction" and depth < 2:
        fail = data.draw(st.booleans())
        try:
            with store.transaction():
                for _ in range(data.draw(st.integers(0, 3))):
                    try:
                        apply_change(store, data, depth + 1)
                    except (sk.PathError, sk.PatchError, sk.StatekitError):
                        pass
                if fail:
                    raise _Abort
        except _Abort:
            pass
    elif kind == "undo" and depth == 0:
        store.undo()
    elif kind == "redo" and depth == 0:
        store.redo()


class _Abort(Exception):
    pass


@SETTINGS
@given(initial=DOCS, data=st.data())
def test_patch_stream_replays_and_undo_returns_to_start(initial: Any, data: st.DataObject) -> None:
    with sk.new_app_scope("prop"):
        store = sk.Store(initial, history=10_000)
        start = store.snapshot()
        mirror = copy.deepcopy(sk.thaw(start))
        versions: list[int] = []

        def on_patch(ops: Any, version: int) -> None:
            nonlocal mirror
            versions.append(version)
            mirror = replay(mirror, list(ops))

        store.on_patch(on_patch)
        for _ in range(data.draw(st.integers(1, 12))):
            before, version, seen = store.snapshot(), store.version, len(versions)
            try:
                apply_change(store, data)
            except (sk.PathError, sk.PatchError):
                assert store.snapshot() is before
                assert store.version == version
                assert len(versions) == seen
            assert mirror == store.snapshot()
            assert versions == list(range(1, store.version + 1))
        while store.undo():
            assert mirror == store.snapshot()
        assert store.snapshot() == start
        assert mirror == sk.thaw(start)


@SETTINGS
@given(initial=DOCS, data=st.data())
def test_store_agrees_with_a_plain_model(initial: Any, data: st.DataObject) -> None:
    """set/add/delete/update against the same change done on a plain dict."""
    with sk.new_app_scope("model"):
        store = sk.Store(initial)
        model = copy.deepcopy(sk.thaw(store.snapshot()))
        for _ in range(data.draw(st.integers(1, 10))):
            kind = data.draw(st.sampled_from(["set", "add", "delete", "update"]))
            parts = draw_path(data, store.snapshot(), for_add=kind == "add")
            pointer = _pointer(parts)
            value = data.draw(VALUES)
            expected: Any = copy.deepcopy(model)
            try:
                if kind == "set":
                    expected = replay(expected, [_model_replace(expected, parts, value)])
                elif kind == "add":
                    expected = replay(expected, [_model_add(expected, parts, value)])
                elif kind == "delete":
                    _strict(expected, parts)  # must exist
                    if not parts:
                        raise _Invalid
                    expected = replay(expected, [{"op": "remove", "path": pointer}])
                else:
                    old = _strict(expected, parts)
                    expected = replay(
                        expected, [{"op": "replace", "path": pointer, "value": [old, value]}]
                    )
                valid = isinstance(expected, dict)
            except (_Invalid, KeyError, IndexError, ValueError, TypeError):
                valid = False
            action = {
                "set": lambda: store.set(pointer, value),
                "add": lambda: store.add(pointer, value),
                "delete": lambda: store.delete(pointer),
                "update": lambda: store.update(pointer, lambda old: [old, value]),
            }[kind]
            if valid:
                action()
                model = expected
            else:
                before = store.snapshot()
                try:
                    action()
                except (sk.PathError, sk.PatchError):
                    pass
                else:
                    raise AssertionError(f"{kind} {pointer!r} should have been refused")
                assert store.snapshot() is before
            assert store.snapshot() == model


class _Invalid(Exception):
    pass


def _strict(doc: Any, parts: tuple[str, ...]) -> Any:
    """RFC 6901 resolution for the model: canonical indexes only."""
    for part in parts:
        if isinstance(doc, list):
            doc = doc[_check_index(doc, part, end_ok=False)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise _Invalid
    return doc


def _check_index(parent: Any, part: str, *, end_ok: bool) -> int:
    if part == "-" and end_ok:
        return len(parent)
    if not part.isdigit() or (part.startswith("0") and part != "0"):
        raise _Invalid
    at = int(part)
    if at > len(parent) or (at == len(parent) and not end_ok):
        raise _Invalid
    return at


def _model_replace(doc: Any, parts: tuple[str, ...], value: Any) -> dict[str, Any]:
    if parts:
        parent = _strict(doc, parts[:-1])
        if isinstance(parent, list):
            _check_index(parent, parts[-1], end_ok=False)
        elif isinstance(parent, dict):
            if parts[-1] not in parent:
                raise _Invalid  # set never creates a key
        else:
            raise _Invalid
    return {"op": "replace", "path": _pointer(parts), "value": value}


def _model_add(doc: Any, parts: tuple[str, ...], value: Any) -> dict[str, Any]:
    if not parts:
        return {"op": "replace", "path": "", "value": value}
    parent = _strict(doc, parts[:-1])
    if isinstance(parent, list):
        at = _check_index(parent, parts[-1], end_ok=True)
        return {"op": "add", "path": _pointer((*parts[:-1], str(at))), "value": value}
    if not isinstance(parent, dict):
        raise _Invalid
    return {"op": "add", "path": _pointer(parts), "value": value}
