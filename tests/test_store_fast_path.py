"""``Store.set``'s fast path against the general commit path.

``set`` commits inline when no transaction, schema, backend or patch listener
needs the change's ops (``Store.set`` in ``_store.py``); anything else goes
through ``_commit``. An ``on_patch`` listener is one of the things that sends
a store down the general path, so two stores fed the same random writes, one
with a patch listener and one without, must agree on everything observable:
documents, versions, errors, listener calls, undo and redo (including the
ops an undo of a fast-path write produces, built lazily from its record).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statekit as sk
from statekit._frozen import FrozenDict
from statekit._store_hot import _DISPLAY_COPY_MAX
from test_store_properties import _all_paths, _pointer

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEYS = st.sampled_from(["a", "b", "0", "1", "x/y", "m~n"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from([0.0, 1.0, 1.5])
    | st.sampled_from(["", "s"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=5,
)
DOCS = st.dictionaries(KEYS, VALUES, min_size=1, max_size=4)


def _draw_path(data: st.DataObject, doc: Any) -> Any:
    """An existing path (mostly), a missing or invalid one, as a string or a list."""
    paths = [path for path in _all_paths(doc) if path] or [("a",)]
    parts = data.draw(st.sampled_from(paths))
    tail = data.draw(st.sampled_from(["", "", "", "key", "index", "bad"]))
    if tail == "key":
        parts = (*parts, data.draw(KEYS))
    elif tail == "index":
        parts = (*parts, str(data.draw(st.integers(0, 3))))
    elif tail == "bad":
        parts = (*parts, data.draw(st.sampled_from(["-1", "01", "-"])))
    if data.draw(st.booleans()):
        return list(parts)
    pointer = _pointer(parts)
    return pointer[1:] if pointer and data.draw(st.booleans()) else pointer


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except Exception as exc:  # the same error, word for word, on both paths
        return (type(exc).__name__, str(exc))


@SETTINGS
@given(initial=DOCS, data=st.data())
def test_fast_and_general_set_agree(initial: Any, data: st.DataObject) -> None:
    with sk.new_app_scope("fast-path"):
        fast = sk.Store(initial, name="same")
        general = sk.Store(initial, name="same")
        streams: dict[str, list[Any]] = {"general": []}
        general.on_patch(lambda ops, version: streams["general"].append((list(ops), version)))
        heard: dict[str, list[Any]] = {"fast": [], "general": []}
        for _ in range(data.draw(st.integers(1, 3))):
            path = _draw_path(data, initial)
            for label, store in (("fast", fast), ("general", general)):
                off = _outcome(
                    lambda store=store, label=label, path=path: store.listen(
                        path,
                        lambda value, label=label, path=path: heard[label].append((path, value)),
                    )
                )
                assert off[0] == "ok"
        for _ in range(data.draw(st.integers(1, 12))):
            doc = fast.snapshot()
            kind = data.draw(st.sampled_from(["set", "set", "set", "same", "undo", "redo"]))
            if kind in ("set", "same"):
                path = _draw_path(data, doc)
                value = data.draw(VALUES)
                results = []
                for store in (fast, general):
                    if kind == "same":  # the store's own value: unchanged, by identity
                        current = _outcome(lambda store=store, path=path: store.get(path))
                        value = current[1] if current[0] == "ok" else None
                    results.append(
                        _outcome(lambda store=store, path=path, value=value: store.set(path, value))
                    )
            else:
                results = [_outcome(getattr(s, kind)) for s in (fast, general)]
            assert results[0] == results[1]
            assert fast.snapshot() == general.snapshot()
            assert fast.version == general.version
            assert heard["fast"] == heard["general"]
        # Undo everything on both, now with a patch listener on the fast one
        # too: the ops its lazy records expand to are the general path's.
        streams["fast"] = []
        fast.on_patch(lambda ops, version: streams["fast"].append((list(ops), version)))
        mark = len(streams["general"])
        while True:
            undone = fast.undo()
            assert general.undo() is undone
            if not undone:
                break
        assert streams["fast"] == streams["general"][mark:]
        assert fast.snapshot() == general.snapshot() == sk.Store(initial).snapshot()
        assert heard["fast"] == heard["general"]


def test_fast_set_notifies_an_effect_and_a_view() -> None:
    """The root signal is still written for the engine: tracked reads follow it."""
    with sk.new_app_scope("fast-effect"):
        store = sk.Store({"n": 0, "deep": {"x": [1, 2]}})
        seen: list[Any] = []
        stop = sk.effect(lambda: seen.append((store.get("n"), store.get("deep/x/1"))))
        store.set("n", 1)
        store.set("deep/x/1", 5)
        store.set("deep/x/0", 9)  # not read by the effect: no run
        store.set("n", 1)  # no change: no run
        stop()
        assert seen == [(0, 2), (1, 2), (1, 5)]
        assert store.version == 3


def test_fast_set_inside_batch_notifies_once_at_the_end() -> None:
    with sk.new_app_scope("fast-batch"):
        store = sk.Store({"n": 0})
        seen: list[int] = []
        store.listen("n", seen.append)
        with sk.batch():
            store.set("n", 1)
            store.set("n", 2)
            assert seen == []
        assert seen == [2]


def test_fast_set_refuses_a_write_from_a_computed() -> None:
    with sk.new_app_scope("fast-computed"):
        store = sk.Store({"n": 0})
        bad = sk.computed(lambda: store.set("n", 1))
        with pytest.raises(sk.StatekitError, match="computed"):
            bad.value
        assert store.get("n") == 0 and store.version == 0


def test_fast_set_with_a_missing_key_names_the_store() -> None:
    with sk.new_app_scope("fast-missing"):
        store = sk.Store({"n": 0}, name="named")
        with pytest.raises(sk.PathError, match=r"no key 'm'.*store 'named'"):
            store.set("m", 1)
        assert store.version == 0


def test_lock_free_root_write_never_leaves_a_tracked_reader_stale() -> None:
    """A writer skips the engine lock while nothing depends on the root.

    Each round, on a fresh store (a store read in a tracked context keeps a
    view linked to its root), one thread starts an effect reading it, the
    root's first dependent, as another writes it; once both are done, the
    effect must hold the written value: a write that raced the subscription
    and was neither seen by the effect's read nor propagated to it would
    leave the effect stale. The switch interval is made tiny and the write
    lands at a different point each round, so that the two threads
    interleave inside those few lines.
    """
    rounds = 6000
    with sk.new_app_scope("fast-race") as app:
        stores = [sk.Store({"n": 0}) for _ in range(rounds)]
        start = threading.Barrier(2)
        effects: list[tuple[list[int], Any]] = []

        def reader() -> None:
            with app:
                for store in stores:
                    start.wait()
                    seen: list[int] = []
                    stop = sk.effect(lambda seen=seen, store=store: seen.append(store.get("n")))
                    effects.append((seen, stop))
                    start.wait()

        thread = threading.Thread(target=reader)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        stale = []
        try:
            thread.start()
            for i, store in enumerate(stores):
                start.wait()
                for _ in range(i % 50):
                    pass
                store.set("n", 1)
                start.wait()
                seen, stop = effects[-1]
                if seen[-1] != 1:
                    stale.append(i)
                stop()
        finally:
            sys.setswitchinterval(interval)
            thread.join(30)
        assert not stale, f"{len(stale)} of {rounds} effects missed the write"


# -- the parsed-path cache (``_paths.PARSED``, read directly by set, get and a selector's get)

PATH_TEXT = st.text(alphabet="ab/~01-", max_size=8)


@SETTINGS
@given(path=PATH_TEXT)
def test_cached_parse_agrees_with_parsing(path: str) -> None:
    from statekit import _paths

    _paths.PARSED.clear()
    try:
        fresh = _paths._split(path)
    except sk.PathError as exc:
        # An invalid path raises every time and is never remembered.
        for _ in range(2):
            with pytest.raises(sk.PathError) as again:
                _paths.parse(path)
            assert str(again.value) == str(exc)
        assert path not in _paths.PARSED
        return
    assert _paths.parse(path) == fresh  # a miss: parsed and remembered
    assert _paths.PARSED[path] == fresh
    assert _paths.parse(path) == fresh  # a hit
    store = sk.Store({})
    assert store._parse(path) == fresh


@SETTINGS
@given(initial=DOCS, data=st.data())
def test_set_and_get_agree_with_and_without_the_parsed_cache(
    initial: Any, data: st.DataObject
) -> None:
    """A write through a cached path does what the same write does on a miss."""
    from statekit import _paths

    path = data.draw(st.sampled_from([_pointer(p) for p in _all_paths(initial) if p] or ["/a"]))
    path = path if data.draw(st.booleans()) else path.lstrip("/")
    value = data.draw(VALUES)
    results = []
    for warm in (False, True):
        _paths.PARSED.clear()
        if warm:
            _paths.parse(path)
        with sk.new_app_scope(f"cache-{warm}"):
            store = sk.Store(initial)
            seen: list[Any] = []
            store.listen(path, seen.append)
            first = _outcome(lambda: store.set(path, value))
            if warm:
                _paths.PARSED.clear()
                _paths.parse(path)
            read = _outcome(lambda: store.get(path))
            results.append((first, read, store.snapshot(), store.version, seen))
    assert results[0] == results[1]


def test_parsed_cache_is_bounded() -> None:
    from statekit import _paths

    _paths.PARSED.clear()
    for i in range(_paths._CACHE_SIZE + 10):
        assert _paths.parse(f"k{i}/x") == (f"k{i}", "x")
    assert len(_paths.PARSED) <= _paths._CACHE_SIZE
    store = sk.Store({"k1": {"x": 1}})
    store.set("k1/x", 2)  # a miss after the clear: parsed again
    assert store.get("/k1/x") == 2


@pytest.mark.parametrize("size", [2, _DISPLAY_COPY_MAX, _DISPLAY_COPY_MAX + 1, 100])
def test_fast_set_copies_small_and_large_documents_alike(size: int) -> None:
    # A top-level write copies the document one of two ways, chosen by its
    # number of keys (_store_hot.store_set); both must be the same commit.
    initial = {f"k{i}": i for i in range(size)}
    fast, general = sk.Store(initial), sk.Store(initial)
    ops: list[Any] = []
    general.on_patch(lambda batch, version: ops.extend(batch))  # the general path
    heard: list[Any] = []
    fast.listen("k0", heard.append)
    before = fast.snapshot()
    for store in (fast, general):
        store.set("k0", "new")
        store.set(f"k{size - 1}", [1, 2])
    after = fast.snapshot()
    assert type(after) is FrozenDict
    assert after == general.snapshot() == {**initial, "k0": "new", f"k{size - 1}": [1, 2]}
    assert list(after) == list(initial)  # key order kept
    assert before == initial  # the old document is untouched
    assert heard == ["new"]
    assert fast.version == general.version == 2
    assert ops[0] == {"op": "replace", "path": "/k0", "value": "new"}
    assert fast.undo() and fast.undo()
    assert fast.snapshot() == initial
