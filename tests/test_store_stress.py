"""Store under threads, asyncio sessions and churn; leak checks with gc + weakref."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import statekit as sk
from statekit._engine import Node


def _state(store: sk.Store) -> Any:
    return store._state()


def run_in_threads(count: int, work: Callable[[int], Any]) -> None:
    """Run ``work(i)`` in ``count`` threads, started together, in the current scope."""
    scope = sk.current_scope()
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        with scope:
            barrier.wait()
            work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --------------------------------------------------------------------------
# threads


@pytest.mark.slow
def test_16_threads_x_10000_updates_are_exact() -> None:
    store = sk.Store({"count": 0, "other": 0}, history=10)

    def work(_: int) -> None:
        for _ in range(10_000):
            store.update("count", lambda n: n + 1)

    run_in_threads(16, work)
    assert store.get("count") == 160_000
    assert store.version == 160_000


def test_on_patch_is_delivered_in_version_order_across_threads() -> None:
    store = sk.Store({"n": 0, "log": []})
    seen: list[int] = []
    values: list[int] = []

    def on_patch(ops: Any, version: int) -> None:
        seen.append(version)
        values.append(ops[0]["value"])

    store.on_patch(on_patch)

    def work(_: int) -> None:
        for _ in range(1_000):
            store.update("n", lambda n: n + 1)

    run_in_threads(8, work)
    assert seen == list(range(1, 8_001))
    assert values == list(range(1, 8_001))  # each commit's ops, in commit order


def test_listeners_run_outside_the_store_lock() -> None:
    # A listener that waits for another thread's write would deadlock if it
    # ran under the lock (foundation runs observers under its lock).
    store = sk.Store({"a": 0, "b": 0})
    scope = sk.current_scope()
    done: list[bool] = []

    def listener(value: Any) -> None:
        def other() -> None:
            with scope:
                store.set("b", value)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=5)
        done.append(not thread.is_alive())

    store.listen("a", listener)
    store.on_patch(lambda ops, v: None)
    store.set("a", 1)
    assert done == [True]
    assert store.get("b") == 1


def test_transaction_isolates_other_threads() -> None:
    store = sk.Store({"a": 0})
    scope = sk.current_scope()
    inside = threading.Event()
    release = threading.Event()
    observed: list[Any] = []

    def writer() -> None:
        with scope, store.transaction():
            store.set("a", 1)
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    inside.wait(5)
    observed.append(store.get("a"))  # the other thread's uncommitted change is invisible
    release.set()
    thread.join()
    observed.append(store.get("a"))
    assert observed == [0, 1]


def test_concurrent_writes_never_leave_a_selector_stale() -> None:
    store = sk.Store({"xs": [0] * 8})

    @store.selector("total")
    def total(get: Any) -> int:
        return sum(get("xs"))

    seen: list[int] = []
    store.listen("total", seen.append)

    def work(i: int) -> None:
        for _ in range(500):
            store.update(f"xs/{i}", lambda n: n + 1)

    run_in_threads(8, work)
    assert total.value == 4_000 == sum(store.get("xs"))
    assert seen[-1] == 4_000  # the last notification carries the final value


# --------------------------------------------------------------------------
# asyncio sessions


async def test_1000_sessions_in_parallel_tasks_never_see_each_other() -> None:
    cart = sk.Store({"owner": None, "items": []}, scope="session", name="cart")
    start = asyncio.Event()

    async def visit(i: int) -> None:
        with sk.session(f"s{i}"):
            await start.wait()
            cart.set("owner", i)
            for step in range(5):
                await asyncio.sleep(0)
                assert cart.get("owner") == i
                cart.update("items", lambda xs: [*xs, f"{i}-{step}"])
                await asyncio.sleep(0)
                assert cart.get("items") == [f"{i}-{s}" for s in range(step + 1)]

    tasks = [asyncio.create_task(visit(i)) for i in range(1_000)]
    await asyncio.sleep(0)
    start.set()
    await asyncio.gather(*tasks)
    for i in range(1_000):
        with sk.session(f"s{i}"):
            assert cart.snapshot() == {"owner": i, "items": [f"{i}-{s}" for s in range(5)]}


def test_disposing_a_session_frees_its_store_copy() -> None:
    store = sk.Store({"n": 0}, scope="session")
    refs = []
    for i in range(100):
        with sk.session(f"d{i}") as scope:
            store.set("n", i)
            store.listen("n", lambda v: None)
            refs.append(weakref.ref(_state(store)))
        scope.dispose()
    gc.collect()
    assert all(ref() is None for ref in refs)


# --------------------------------------------------------------------------
# views: one tracked node per path, pruned when nobody watches it


def test_views_of_100k_short_lived_effects_stay_bounded() -> None:
    store = sk.Store({"xs": list(range(100_000)), "n": 0})
    state = _state(store)
    keep: list[Any] = []
    long_lived = store.listen("n", keep.append)
    peak = 0
    for i in range(100_000):
        stop = sk.effect(lambda i=i: store.get(f"xs/{i}"))
        stop()
        peak = max(peak, len(state.views))
    assert peak <= 512, peak  # bounded: twice the watched paths, at least 256
    store.set("n", 1)  # the long-lived listener survived every prune
    assert keep == [1]
    long_lived()


def test_listen_off_churn_keeps_views_bounded_and_listeners_correct() -> None:
    store = sk.Store({"xs": list(range(5_000))})
    state = _state(store)
    live: dict[int, list[Any]] = {i: [] for i in range(0, 5_000, 500)}
    offs = [store.listen(f"xs/{i}", live[i].append) for i in live]
    for i in range(5_000):
        off = store.listen(f"xs/{i}", lambda v: None)
        off()
    assert len(state.views) <= 512
    for i in live:
        store.set(f"xs/{i}", -i - 1)
    assert all(live[i] == [-i - 1] for i in live)
    for off in offs:
        off()


def test_pruned_views_are_collected() -> None:
    store = sk.Store({"xs": list(range(1_000))})
    state = _state(store)
    stop = sk.effect(lambda: store.get("xs/0"))
    # Nodes cannot be weakly referenced (a compiled engine's cannot): the
    # view is found among the collector's live objects by its unique name.
    name = state.views[("xs", "0")].name

    def alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, Node) and o.name == name)

    assert alive() == 1
    stop()
    for i in range(1, 1_000):
        sk.effect(lambda i=i: store.get(f"xs/{i}"))()
    assert alive() == 0
    assert ("xs", "0") not in state.views


def test_a_write_costs_nothing_for_views_nobody_watches() -> None:
    # Unwatched views are unlinked from the document: a write does not walk them.
    store = sk.Store({"xs": list(range(2_000)), "n": 0})
    for i in range(2_000):
        sk.effect(lambda i=i: store.get(f"xs/{i}"))()
    root = _state(store).root
    subscribers = 0
    link = root.subs
    while link is not None:
        subscribers += 1
        link = link.next_sub
    assert subscribers <= 512


# --------------------------------------------------------------------------
# leaks after unsubscribe / delete


class Callback:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)


def test_unsubscribed_listeners_are_released() -> None:
    store = sk.Store({"n": 0})
    listener, patch_listener = Callback(), Callback()
    off = store.listen("n", listener)
    off_patch = store.on_patch(patch_listener)
    store.set("n", 1)
    refs = [weakref.ref(listener), weakref.ref(patch_listener)]
    off()
    off_patch()
    del listener, patch_listener
    gc.collect()
    assert all(ref() is None for ref in refs)
    store.set("n", 2)  # nothing left to call


def test_listener_on_a_deleted_path_can_be_released() -> None:
    store = sk.Store({"todo": [{"t": "a"}]})
    listener = Callback()
    off = store.listen("todo/0", listener)
    store.delete("todo/0")
    assert listener.calls == [(None,)]
    ref = weakref.ref(listener)
    off()
    del listener
    for i in range(600):  # enough new views to trigger a prune
        sk.effect(lambda i=i: store.has(f"x{i}") or store.get(""))()
    gc.collect()
    assert ref() is None


def test_100k_listen_off_cycles_leave_nothing() -> None:
    store = sk.Store({"n": 0})
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(100_000):
        store.listen("n", lambda v: None)()
    gc.collect()
    assert len(gc.get_objects()) - before < 1_000
