"""Each store/state-manager defect measured in flet-asp and provide-foundation
(ANCHORS.md §1), as a test showing the Store does not have it."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

import pytest

import statekit as sk
from test_store import recorded_errors
from test_store_stress import run_in_threads

# ------------------------------------------------------------------ flet-asp


def test_flet_asp_unknown_keys_are_not_created_by_get_or_set() -> None:
    store = sk.Store({"user": {"name": "ann"}})
    with pytest.raises(sk.PathError, match="no key 'nmae'"):
        store.get("user/nmae")
    with pytest.raises(sk.PathError, match="no key 'emial'"):
        store.set("user/emial", "x")
    with pytest.raises(sk.PathError):
        store.update("count", lambda n: (n or 0) + 1)
    assert store.snapshot() == {"user": {"name": "ann"}}
    assert store.version == 0


def test_flet_asp_reset_restores_the_default_not_none() -> None:
    store = sk.Store({"theme": "dark"})
    theme = store.atom("theme", "light")
    volume = store.atom("volume", 7)
    volume.value = 3
    theme.reset()
    volume.reset()
    assert theme.value == "light" and volume.value == 7
    store.delete("volume")
    volume.reset()  # re-declares the deleted key with its default
    assert store.get("volume") == 7
    store.reset()
    assert store.snapshot() == {"theme": "dark"}  # the initial document, not {}


def test_flet_asp_selector_dependencies_are_not_frozen_at_creation() -> None:
    store = sk.Store({"flag": True, "a": "A", "b": "B"})

    @store.selector("shown")
    def shown(get: Any) -> str:
        return get("a") if get("flag") else get("b")  # type: ignore[no-any-return]

    seen: list[str] = []
    store.listen("shown", seen.append)
    store.set("flag", False)
    store.set("b", "B2")  # only a dependency since the flag flipped
    assert shown.value == "B2"
    assert seen == ["B", "B2"]


def test_flet_asp_in_place_mutation_cannot_leave_a_selector_stale() -> None:
    store = sk.Store({"items": [1, 2]})

    @store.selector("count")
    def count(get: Any) -> int:
        return len(get("items"))

    seen: list[int] = []
    store.listen("count", seen.append)
    items = store.get("items")
    with pytest.raises(sk.ReadOnlyError):
        items.append(3)  # values are frozen: no change behind the store's back
    store.set("items", [*items, 3])
    assert count.value == 3 and seen == [3]


def test_flet_asp_updates_are_not_dropped_by_a_writing_listener_or_a_second_thread() -> None:
    store = sk.Store({"n": 0, "echo": 0, "other": 0})
    store.listen("n", lambda n: store.set("echo", n))  # writes back
    scope = sk.current_scope()

    def second() -> None:
        with scope:
            for _ in range(2_000):
                store.update("other", lambda v: v + 1)

    thread = threading.Thread(target=second)
    thread.start()
    for i in range(1, 2_001):
        store.set("n", i)
    thread.join()
    assert store.get("n") == store.get("echo") == 2_000
    assert store.get("other") == 2_000


async def test_flet_asp_async_results_land_in_order() -> None:
    store = sk.Store({"uid": 0})
    delays = {1: 0.03, 2: 0.01, 3: 0.02}

    @sk.computed
    async def user() -> str:
        uid = store.get("uid")
        await asyncio.sleep(delays.get(uid, 0))
        return f"user {uid}"

    await user.wait()
    for uid in (1, 2, 3):
        store.set("uid", uid)
        user.value
        await asyncio.sleep(0)
    assert await user.wait() == "user 3"
    await asyncio.sleep(0.05)  # the slower, older runs finish later...
    assert user.value == "user 3"  # ...and never win


async def test_flet_asp_async_errors_reach_the_reader() -> None:
    store = sk.Store({"uid": 0})

    @sk.computed
    async def user() -> str:
        if store.get("uid") == 1:
            raise LookupError("no user 1")
        return "ok"

    await user.wait()
    store.set("uid", 1)
    with pytest.raises(LookupError):
        await user.wait()
    assert isinstance(user.error, LookupError)


def test_flet_asp_a_raising_listener_does_not_stop_later_ones() -> None:
    store = sk.Store({"n": 0})
    calls: list[str] = []
    store.listen("n", lambda v: calls.append("before"))
    store.listen("n", lambda v: 1 / 0)
    store.listen("n", lambda v: calls.append("after"))
    with recorded_errors() as errors:
        store.set("n", 1)
    assert sorted(calls) == ["after", "before"]
    assert isinstance(errors[0][0], ZeroDivisionError)


def test_flet_asp_listeners_are_released_by_unsubscribe() -> None:
    class Listener:
        def __call__(self, value: Any) -> None:
            pass

    store = sk.Store({"n": 0})
    listener = Listener()
    off = store.listen("n", listener)
    ref = weakref.ref(listener)
    del listener
    off()
    gc.collect()
    assert ref() is None


def test_flet_asp_an_unwatched_selector_does_not_keep_recomputing() -> None:
    store = sk.Store({"n": 0})
    runs: list[int] = []

    @store.selector("double")
    def double(get: Any) -> int:
        runs.append(1)
        return get("n") * 2  # type: ignore[no-any-return]

    off = store.listen("double", lambda v: None)
    off()
    before = len(runs)
    for i in range(1, 100):
        store.set("n", i)
    assert len(runs) == before


def test_flet_asp_readme_lambda_is_not_stored_as_a_value() -> None:
    store = sk.Store({})
    with pytest.raises(sk.PatchError, match="function is not a JSON type"):
        store.atom("double", lambda: 2)
    assert store.snapshot() == {}


# --------------------------------------------------------- provide-foundation


def test_foundation_concurrent_read_modify_write_loses_nothing() -> None:
    store = sk.Store({"count": 0})

    def work(_: int) -> None:
        for _ in range(2_000):
            store.update("count", lambda n: n + 1)

    run_in_threads(8, work)
    assert store.get("count") == 16_000  # foundation ended at 9,599


def test_foundation_observer_errors_are_not_swallowed() -> None:
    store = sk.Store({"n": 0}, name="obs")
    store.on_patch(lambda ops, v: 1 / 0)
    with recorded_errors() as errors:
        store.set("n", 1)
    ((exc, where),) = errors
    assert isinstance(exc, ZeroDivisionError) and "store 'obs'" in where


def test_foundation_freezing_is_deep() -> None:
    store = sk.Store({"a": {"b": {"c": [1, {"d": 2}]}}})
    inner = store.get("a/b/c/1")
    with pytest.raises(sk.ReadOnlyError):
        inner["d"] = 3
    assert isinstance(store.get("a/b/c"), sk.FrozenList)


def test_foundation_reset_keeps_the_initial_document_and_history_exists() -> None:
    store = sk.Store({"timeout": 30, "features": ["a"]})
    store.set("timeout", 60)
    store.reset()
    assert store.snapshot() == {"timeout": 30, "features": ["a"]}
    assert store.undo() and store.get("timeout") == 60  # and reset is undoable
