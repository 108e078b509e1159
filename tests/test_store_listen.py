"""Store listeners' dispatch loop (``_store_listen``): batching, re-entry, threads, scopes."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

import statekit as sk


def test_a_batch_notifies_once_at_its_end_with_the_final_value() -> None:
    store = sk.Store({"n": 0, "m": 0})
    seen: list[Any] = []
    store.listen("n", seen.append)
    with sk.batch():
        store.set("n", 1)
        store.set("n", 2)
        store.set("m", 5)
        assert seen == []  # nothing inside the batch
    assert seen == [2]
    with sk.batch():
        store.set("n", 3)
        store.set("n", 2)  # ends where it began: no change
    assert seen == [2]


def test_a_write_from_an_effect_notifies_after_the_effect() -> None:
    store = sk.Store({"n": 0})
    trigger = sk.atom(0)
    order: list[str] = []
    store.listen("n", lambda v: order.append(f"listener {v}"))

    def effect() -> None:
        value = trigger.value
        if value:
            store.set("n", value)
            order.append("effect done")

    stop = sk.effect(effect)
    trigger.value = 7
    assert order == ["effect done", "listener 7"]  # never nested in the effect's run
    stop()


def test_listener_reads_are_not_tracked_by_a_surrounding_effect() -> None:
    store = sk.Store({"n": 0, "other": 0})
    trigger = sk.atom(0)
    runs: list[int] = []
    store.listen("n", lambda v: store.get("other"))

    def effect() -> None:
        runs.append(trigger.value)
        if trigger.peek() == 1:
            store.set("n", 1)  # the listener runs later, untracked

    stop = sk.effect(effect)
    trigger.value = 1
    store.set("other", 1)  # the effect did not come to depend on it
    assert runs == [0, 1]
    stop()


def test_a_listener_writing_its_own_path_does_not_nest_and_ends_on_the_last_value() -> None:
    store = sk.Store({"n": 0})
    seen: list[int] = []
    depth = [0]

    def bump(value: int) -> None:
        depth[0] += 1
        assert depth[0] == 1, "listener calls must not nest"
        seen.append(value)
        if value < 5:
            store.set("n", value + 1)
        depth[0] -= 1

    store.listen("n", bump)
    store.set("n", 1)
    assert seen == [1, 2, 3, 4, 5]
    assert store.get("n") == 5


def test_a_listener_that_always_rewrites_is_reported_as_a_cycle() -> None:
    errors: list[tuple[BaseException, str]] = []
    old_hook = sk.set_error_hook(lambda exc, where: errors.append((exc, where)))
    store = sk.Store({"n": 0}, name="loop")
    calls = [0]

    def again(value: int) -> None:
        calls[0] += 1
        store.set("n", value + 1)

    store.listen("n", again)
    try:
        store.set("n", 1)  # terminates
    finally:
        sk.set_error_hook(old_hook)
    assert 50 <= calls[0] <= 200
    assert any(isinstance(exc, sk.CycleError) for exc, _ in errors)
    assert any("loop" in where for _, where in errors)


def test_a_listener_added_by_a_listener_starts_from_the_current_value() -> None:
    store = sk.Store({"n": 0})
    late: list[Any] = []

    def first(value: int) -> None:
        if value == 1:
            store.listen("n", late.append)

    store.listen("n", first)
    store.set("n", 1)
    assert late == []  # it started at 1: no call for the value it began with
    store.set("n", 2)
    assert late == [2]


def test_unsubscribing_during_delivery_skips_the_rest() -> None:
    store = sk.Store({"n": 0})
    seen: list[str] = []
    offs: list[Any] = []
    store.listen("n", lambda v: (seen.append("a"), offs[0]()))
    offs.append(store.listen("n", lambda v: seen.append("b")))
    store.set("n", 1)
    store.set("n", 2)
    assert seen == ["a", "a"]


def test_listeners_run_in_their_stores_scope() -> None:
    store = sk.Store({"n": 0}, scope="session")
    where: list[Any] = []
    with sk.session("s1") as s1:
        store.listen("n", lambda v: where.append((v, sk.current_scope())))
    with sk.session("s2") as s2:
        store.listen("n", lambda v: where.append((v, sk.current_scope())))
        store.set("n", 2)
    with s1:
        store.set("n", 1)

    def write_from_elsewhere() -> None:
        with s2:
            store.set("n", 3)

    with sk.session("s3"):
        write_from_elsewhere()
    assert where == [(2, s2), (1, s1), (3, s2)]


def test_a_disposed_scope_stops_its_listeners_and_refuses_new_ones() -> None:
    store = sk.Store({"n": 0}, scope="session")
    seen: list[Any] = []
    with sk.session("gone") as scope:
        store.listen("n", seen.append)
        store.set("n", 1)
    scope.dispose()
    assert seen == [1]
    with pytest.raises(sk.DisposedError):
        with scope:
            store.listen("n", seen.append)


def test_threads_never_run_one_listener_concurrently_and_it_ends_on_the_last_value() -> None:
    store = sk.Store({"n": 0})
    inside = [0]
    overlaps = [0]
    seen: list[int] = []

    def listener(value: int) -> None:
        inside[0] += 1
        if inside[0] > 1:
            overlaps[0] += 1
        seen.append(value)
        inside[0] -= 1

    store.listen("n", listener)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        scope = sk.current_scope()

        def work() -> None:
            for _ in range(500):
                store.update("n", lambda n: n + 1)

        threads = [threading.Thread(target=scope.run, args=(work,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old)
    assert overlaps[0] == 0
    assert store.get("n") == 4000
    assert seen[-1] == 4000
    assert seen == sorted(seen)  # in order, never an older value after a newer one
