"""Listeners on store selectors, run by the store's listener loop (``_store_select``).

The engine path they replace is still there: ``selector.subscribe(cb)`` (the
selector's computed, watched by an engine watcher). Both are fed the same
writes and must call back with the same values, in the same order, and
report the same errors; plus what the loop adds: a selector runs only when
a path its last run read changed, one that reads an atom moves to the
engine without repeating or dropping a value, writes from a selector are
refused, results are frozen, ``off`` stops everything.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statekit as sk

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PATHS = ["a", "b", "flag", "deep/x", "deep/y", "deep", "xs/0", "xs/1", "nope"]
VALUES = st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([1.0, "s", ""])


def _initial() -> dict[str, Any]:
    return {"a": 1, "b": 2, "flag": True, "deep": {"x": 1, "y": 2}, "xs": [1, 2]}


def _selector(kind: str, paths: tuple[str, str, str]) -> Any:
    first, second, third = paths

    def select(get: Any) -> Any:
        if kind == "one":
            return get(first)
        if kind == "branch":  # dynamic: reads first or second depending on third
            return get(first) if get(third) else get(second)
        if kind == "sum":
            return [get(first), get(second)]
        return repr(get(first)) + repr(get(second))

    return select


def _double(get: Any) -> int:
    return get("n") * 2  # type: ignore[no-any-return]


@pytest.fixture
def errors() -> Any:
    found: list[tuple[str, str]] = []
    old = sk.set_error_hook(lambda exc, where: found.append((where, repr(exc))))
    yield found
    sk.set_error_hook(old)


@SETTINGS
@given(
    kind=st.sampled_from(["one", "branch", "sum", "text"]),
    paths=st.tuples(*[st.sampled_from(PATHS)] * 3),
    writes=st.lists(st.tuples(st.sampled_from(PATHS[:-1]), VALUES), max_size=12),
)
def test_loop_and_engine_selector_listeners_agree(
    kind: str, paths: tuple[str, str, str], writes: list[tuple[str, Any]], errors: Any
) -> None:
    with sk.new_app_scope("select-agree"):
        loop_store = sk.Store(_initial(), name="same")
        engine_store = sk.Store(_initial(), name="same")
        stores = {"loop": loop_store, "engine": engine_store}
        derived = {
            label: store.selector("sel")(_selector(kind, paths)) for label, store in stores.items()
        }
        heard: dict[str, list[Any]] = {"loop": [], "engine": []}
        outcome: dict[str, Any] = {}
        for label, store in stores.items():

            def listen(label: str = label, store: sk.Store = store) -> Any:
                callback = heard[label].append
                if label == "loop":
                    return store.listen("sel", callback)
                return derived[label].subscribe(callback)

            try:
                outcome[label] = ("ok", listen())
            except Exception as exc:
                outcome[label] = (type(exc).__name__, str(exc))
        assert outcome["loop"][0] == outcome["engine"][0]
        if outcome["loop"][0] != "ok":
            assert outcome["loop"][1] == outcome["engine"][1]
            return
        for path, value in writes:
            for store in stores.values():
                try:
                    store.set(path, value)
                except sk.PathError:
                    pass  # e.g. deep/x once deep is a scalar: the same on both
            assert loop_store.snapshot() == engine_store.snapshot()
            assert heard["loop"] == heard["engine"]
            # Each write's error reported once by each path, in the same words.
            assert len(errors) % 2 == 0
            assert errors[0::2] == errors[1::2]
        for label in stores:
            outcome[label][1]()
        loop_store.set("a", 99)
        engine_store.set("a", 99)
        assert heard["loop"] == heard["engine"]


def test_a_selector_runs_only_when_a_path_it_read_changed() -> None:
    with sk.new_app_scope("select-precise"):
        store = sk.Store({"flag": True, "a": 1, "b": 10, "other": 0})
        runs: list[str] = []

        @store.selector("pick")
        def pick(get: Any) -> int:
            runs.append("run")
            return get("a") if get("flag") else get("b")  # type: ignore[no-any-return]

        seen: list[int] = []
        off = store.listen("pick", seen.append)
        assert runs == ["run"] and seen == []
        store.set("other", 1)
        store.set("b", 11)  # not read while flag is true
        assert runs == ["run"] and seen == []
        store.set("a", 2)
        assert seen == [2] and len(runs) == 2
        store.set("flag", False)
        assert seen == [2, 11]
        store.set("a", 3)  # not read any more
        assert len(runs) == 3 and seen == [2, 11]
        store.set("b", 11.0)  # a change to the document, not to the value: no call
        assert len(runs) == 4 and seen == [2, 11]
        off()
        store.set("b", 12)
        assert len(runs) == 4 and seen == [2, 11]
        assert pick.value == 12  # the selector itself is still a lazy computed


def test_a_selector_reading_an_atom_moves_to_the_engine_without_a_gap() -> None:
    with sk.new_app_scope("select-atom"):
        store = sk.Store({"n": 1, "use": False})
        bonus = sk.atom(100, name="bonus")

        @store.selector("total")
        def total(get: Any) -> int:
            return get("n") + (bonus.value if get("use") else 0)  # type: ignore[no-any-return]

        seen: list[int] = []
        off = store.listen("total", seen.append)
        store.set("n", 2)
        bonus.value = 200  # not read yet
        assert seen == [2]
        store.set("use", True)  # this run reads the atom: the engine takes over
        assert seen == [2, 202]
        bonus.value = 300
        store.set("n", 3)
        store.set("n", 3)
        assert seen == [2, 202, 302, 303]
        with sk.batch():
            bonus.value = 1
            store.set("n", 4)
        assert seen == [2, 202, 302, 303, 5]
        off()
        bonus.value = 2
        store.set("n", 5)
        assert seen == [2, 202, 302, 303, 5]


def test_a_selector_reading_an_atom_from_the_start_is_an_engine_listener() -> None:
    with sk.new_app_scope("select-atom-start"):
        store = sk.Store({"n": 1})
        factor = sk.atom(2)

        @store.selector("scaled")
        def scaled(get: Any) -> int:
            return get("n") * factor.value  # type: ignore[no-any-return]

        seen: list[int] = []
        off = store.listen("scaled", seen.append)
        factor.value = 3
        store.set("n", 2)
        assert seen == [3, 6]
        off()
        factor.value = 4
        assert seen == [3, 6]


def test_a_selector_reading_another_selector() -> None:
    with sk.new_app_scope("select-chain"):
        store = sk.Store({"n": 1, "m": 0})

        store.selector("double")(_double)

        @store.selector("quad")
        def quad(get: Any) -> int:
            return get("double") * 2  # type: ignore[no-any-return]

        seen: list[int] = []
        store.listen("quad", seen.append)
        store.set("n", 2)
        store.set("m", 1)
        assert seen == [8]


def test_errors_are_raised_at_listen_then_reported(errors: Any) -> None:
    with sk.new_app_scope("select-errors"):
        store = sk.Store({"n": 0, "m": 1}, name="st")

        @store.selector("inverse")
        def inverse(get: Any) -> float:
            return 1 / get("n")  # type: ignore[no-any-return]

        with pytest.raises(ZeroDivisionError):
            store.listen("inverse", print)
        store.set("n", 2)
        seen: list[float] = []
        store.listen("inverse", seen.append)
        store.set("n", 0)
        store.set("n", 4)
        assert seen == [0.25]
        assert errors == [
            ("effect 'listener of st.inverse'", "ZeroDivisionError('division by zero')")
        ]

        @store.selector("missing")
        def missing(get: Any) -> Any:
            return get("m") and get("gone")

        with pytest.raises(sk.PathError, match="gone"):
            store.listen("missing", print)


def test_a_selector_may_not_write(errors: Any) -> None:
    with sk.new_app_scope("select-write"):
        store = sk.Store({"n": 0, "m": 1}, name="st")
        counter = sk.atom(0, name="counter")

        @store.selector("bad")
        def bad(get: Any) -> int:
            if get("n") > 0:
                counter.value = 5
            return get("n")  # type: ignore[no-any-return]

        seen: list[int] = []
        store.listen("bad", seen.append)
        store.set("n", 1)
        assert seen == [] and counter.value == 0
        assert len(errors) == 1 and "tried to write" in errors[0][1]

        @store.selector("worse")
        def worse(get: Any) -> int:
            store.set("m", 2)
            return 1

        with pytest.raises(sk.StatekitError, match="computed"):
            store.listen("worse", print)
        assert store.get("m") == 1


def test_selector_results_are_frozen_and_compared_by_equality() -> None:
    with sk.new_app_scope("select-frozen"):
        store = sk.Store({"xs": [3, 1, 2], "other": 0})

        @store.selector("ordered")
        def ordered(get: Any) -> list[int]:
            return sorted(get("xs"))

        seen: list[Any] = []
        store.listen("ordered", seen.append)
        store.set("xs", [2, 3, 1])  # another list, the same sorted value: no call
        store.set("xs", [5, 4])
        assert seen == [[4, 5]]
        assert isinstance(seen[0], sk.FrozenList)


def test_selector_listener_in_a_batch_and_a_transaction_hears_once() -> None:
    with sk.new_app_scope("select-batch"):
        store = sk.Store({"n": 0})

        store.selector("double")(_double)
        seen: list[int] = []
        store.listen("double", seen.append)
        with sk.batch():
            store.set("n", 1)
            store.set("n", 2)
            assert seen == []
        with store.transaction():
            store.set("n", 3)
            store.set("n", 4)
        assert seen == [4, 8]
        store.undo()
        assert seen == [4, 8, 4]


def test_selector_listener_per_scope_and_disposal() -> None:
    with sk.new_app_scope("select-scopes"):
        store = sk.Store({"n": 0}, scope="session")

        with sk.session("a"):  # the shadowing check reads the store: a session is needed
            store.selector("double")(_double)
        heard: dict[str, list[int]] = {"a": [], "b": []}
        for sid, log in heard.items():
            with sk.session(sid):
                store.listen("double", log.append)
        with sk.session("a"):
            store.set("n", 1)
        with sk.session("b") as b:
            store.set("n", 5)
        assert heard == {"a": [2], "b": [10]}
        b.dispose()
        with sk.session("a"):
            store.set("n", 2)
        assert heard == {"a": [2, 4], "b": [10]}


def test_selector_listener_ends_on_the_last_value_under_threads() -> None:
    with sk.new_app_scope("select-threads") as app:
        store = sk.Store({"n": 0})

        store.selector("double")(_double)
        seen: list[int] = []
        store.listen("double", seen.append)

        def writer() -> None:
            with app:
                for _ in range(500):
                    store.update("n", lambda n: n + 1)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert store.get("n") == 2000
        assert seen[-1] == 4000
        assert seen == sorted(set(seen))  # in order, never twice the same


def test_listening_to_a_cached_selector_starts_from_its_value() -> None:
    with sk.new_app_scope("select-seed"):
        store = sk.Store({"n": 1, "m": 0})
        runs: list[int] = []

        @store.selector("double")
        def double(get: Any) -> int:
            runs.append(1)
            return get("n") * 2  # type: ignore[no-any-return]

        assert double.value == 2 and len(runs) == 1
        seen: list[int] = []
        store.listen("double", seen.append)  # seeded from the cached value: no run
        assert len(runs) == 1
        store.set("m", 1)  # not read: still no run
        assert len(runs) == 1 and seen == []
        store.set("n", 5)
        assert seen == [10] and len(runs) == 2
        store.set("n", 2)  # the computed is stale now: listening runs the selector
        store.listen("double", seen.append)
        assert len(runs) == 4 and seen == [10, 4]
