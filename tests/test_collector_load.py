"""What a commit leaves for Python's cycle collector to scan: next to nothing.

A store's undo history and the sync server's replay log keep every commit for
a while (``history=`` and ``log_size`` commits), long enough to reach the
oldest generation. Kept as op dicts they were about five tracked objects per
commit for every session's copy; a server with a few hundred sessions then
spent most of each full collection (tens to 160 ms, all requests stalled)
scanning them (benchmarks/RESULTS.md, session 12). Kept as tuples of strings
and numbers, and as JSON text, they cost the collector nothing: CPython stops
tracking such tuples at their first collection.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

import statekit as sk

N = 400  # commits per run: more than the default history (100) holds


def tracked_growth(write: Callable[[int], None], n: int = N) -> float:
    """Tracked objects added per call of ``write(k)``, as the oldest generation gets them.

    An object goes through two collections (generations 0 and 1) before it
    reaches the oldest; each untracks one level of nested tuples.
    """
    write(0)  # first-use costs (the copy, caches) are not per commit
    gc.collect()
    before = len(gc.get_objects())
    for k in range(1, n + 1):
        write(k)
    gc.collect()
    gc.collect()
    return (len(gc.get_objects()) - before) / n


@pytest.mark.parametrize("history", [0, 100])
def test_patches_with_scalar_values_add_no_tracked_objects(history: int) -> None:
    store = sk.Store({"n": 0, "s": ""}, name="draft", history=history)
    # One op, two ops, an add and a remove: each kind of undo record.
    patches = [
        lambda k: [{"op": "replace", "path": "/n", "value": k}],
        lambda k: [
            {"op": "replace", "path": "/n", "value": k},
            {"op": "replace", "path": "/s", "value": f"v{k}"},
        ],
        lambda k: [{"op": "add", "path": f"/k{k}", "value": k}, {"op": "remove", "path": f"/k{k}"}],
    ]
    for patch in patches:
        assert tracked_growth(lambda k, patch=patch: store.patch(patch(k))) < 0.05


def test_set_adds_no_tracked_objects() -> None:
    store = sk.Store({"n": 0, "deep": {"n": 0}}, name="draft")
    assert tracked_growth(lambda k: store.set("n", k)) < 0.05
    assert tracked_growth(lambda k: store.set("deep/n", k)) < 0.05


def test_the_servers_log_adds_no_tracked_objects() -> None:
    pytest.importorskip("starlette")
    from statekit.server._hub import Hub

    store = sk.Store({"n": 0}, name="draft")
    hub = Hub()  # log_size 1000: every commit of the run stays in the log
    copy = hub.copy(store)
    growth = tracked_growth(
        lambda k: hub.commit(copy, [{"op": "replace", "path": "/n", "value": k}])
    )
    assert growth < 0.05
    assert len(copy.log) == N  # write(0) changed nothing


def test_undo_and_redo_still_walk_packed_records() -> None:
    store = sk.Store({"n": 0, "xs": [1]}, name="draft")
    store.patch(
        [{"op": "replace", "path": "/n", "value": 1}, {"op": "add", "path": "/xs/-", "value": 2}]
    )
    store.patch([{"op": "move", "from": "/xs/0", "path": "/m"}])
    store.set("n", 2)
    seen = []
    store.on_patch(lambda ops, version: seen.append(list(ops)))
    assert store.undo() and store.undo()
    assert store.snapshot() == {"n": 1, "xs": [1, 2]}
    assert store.undo()
    assert store.snapshot() == {"n": 0, "xs": [1]}
    assert store.redo() and store.redo() and store.redo()
    assert store.snapshot() == {"n": 2, "xs": [2], "m": 1}
    # Undo and redo ops reach patch listeners as frozen dicts, as every change's do.
    assert all(isinstance(op, sk.FrozenDict) for ops in seen for op in ops)
    assert seen[0] == [{"op": "replace", "path": "/n", "value": 1}]
