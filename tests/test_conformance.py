"""Conformance: every semantic of DESIGN §4 for atoms, computeds and effects.

Each test counts how often user functions run and asserts exact values and
exact run counts, so a glitch, a redundant recompute or a lost notification
fails the test rather than passing unnoticed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import statekit as sk

# --------------------------------------------------------------------------
# helpers


class Counter:
    """Counts calls per key."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def hit(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)


@pytest.fixture
def errors() -> Iterator[list[tuple[BaseException, str]]]:
    """Install an error hook that records ``(exc, where)``; restore the old one."""
    seen: list[tuple[BaseException, str]] = []

    def hook(exc: BaseException, where: str) -> None:
        seen.append((exc, where))

    old = sk.set_error_hook(hook)
    try:
        yield seen
    finally:
        sk.set_error_hook(old)


# --------------------------------------------------------------------------
# basics of the public surface


def test_atom_reads_and_writes() -> None:
    a = sk.atom(1, name="a")
    assert a.value == 1
    assert a.get() == 1
    assert a.peek() == 1
    a.value = 2
    assert a.get() == 2
    a.set(3)
    assert a.value == 3
    assert a.update(lambda n: n * 10) == 30
    assert a.value == 30
    a.reset()
    assert a.value == 1
    assert a.name == "a"
    assert a.scope == "app"


def test_computed_reads_like_an_atom() -> None:
    a = sk.atom(2, name="a")
    double = sk.computed(lambda: a.value * 2, name="double")
    assert double.value == 4
    assert double.get() == 4
    assert double.peek() == 4
    a.value = 5
    assert double.value == 10
    assert double.name == "double"


def test_computed_as_decorator() -> None:
    a = sk.atom(3, name="a")

    @sk.computed
    def label() -> str:
        return f"{a.value} items"

    assert label.value == "3 items"
    a.value = 4
    assert label.value == "4 items"


def test_computed_is_read_only() -> None:
    a = sk.atom(1)
    c = sk.computed(lambda: a.value + 1)
    with pytest.raises((AttributeError, TypeError, sk.StatekitError)):
        c.value = 5  # type: ignore[misc]
    assert c.value == 2


# --------------------------------------------------------------------------
# glitch freedom and minimal recomputation


def test_diamond_is_glitch_free_and_minimal() -> None:
    runs = Counter()
    a = sk.atom(1, name="a")

    def _b() -> int:
        runs.hit("b")
        return a.value * 2

    def _c() -> int:
        runs.hit("c")
        return a.value + 10

    b = sk.computed(_b, name="b")
    c = sk.computed(_c, name="c")

    def _d() -> tuple[int, int]:
        runs.hit("d")
        return (b.value, c.value)

    d = sk.computed(_d, name="d")
    seen: list[tuple[int, int, int]] = []

    def watch() -> None:
        runs.hit("e")
        bv, cv = d.value
        seen.append((a.value, bv, cv))

    stop = sk.effect(watch)
    assert seen == [(1, 2, 11)]
    assert (runs["b"], runs["c"], runs["d"], runs["e"]) == (1, 1, 1, 1)

    for i, v in enumerate([2, 3, 10, -4], start=2):
        a.value = v
        assert (runs["b"], runs["c"], runs["d"], runs["e"]) == (i, i, i, i)
        assert seen[-1] == (v, v * 2, v + 10)
    # every observation is consistent: never a mix of old and new values
    for av, bv, cv in seen:
        assert bv == av * 2
        assert cv == av + 10
    assert len(seen) == 5
    stop()


def test_effect_reading_atom_and_derived_sees_consistent_pair() -> None:
    a = sk.atom(0, name="a")
    neg = sk.computed(lambda: -a.value, name="neg")
    plus = sk.computed(lambda: neg.value + a.value, name="plus")
    seen: list[tuple[int, int, int]] = []
    stop = sk.effect(lambda: seen.append((a.value, neg.value, plus.value)))
    for v in range(1, 20):
        a.value = v
    assert len(seen) == 20
    assert all(n == -x and p == 0 for x, n, p in seen)
    assert [x for x, _, _ in seen] == list(range(20))
    stop()


def test_listener_on_computed_sees_consistent_values() -> None:
    a = sk.atom(1, name="a")
    b = sk.computed(lambda: a.value * 3, name="b")
    pair = sk.computed(lambda: (a.value, b.value), name="pair")
    seen: list[tuple[int, int]] = []
    off = pair.subscribe(seen.append)
    a.value = 2
    a.value = 7
    assert seen == [(2, 6), (7, 21)]
    off()


def test_each_node_recomputes_once_per_write_in_a_wide_graph() -> None:
    runs = Counter()
    a = sk.atom(0, name="a")
    layer1 = []
    for i in range(10):

        def fn(i: int = i) -> int:
            runs.hit(f"l1-{i}")
            return a.value + i

        layer1.append(sk.computed(fn, name=f"l1-{i}"))

    def _total() -> int:
        runs.hit("total")
        return sum(c.value for c in layer1)

    total = sk.computed(_total, name="total")
    out: list[int] = []
    stop = sk.effect(lambda: out.append(total.value))
    for n in range(1, 6):
        a.value = n
        assert runs["total"] == n + 1
        assert all(runs[f"l1-{i}"] == n + 1 for i in range(10))
        assert out[-1] == 10 * n + 45
    assert len(out) == 6
    stop()


# --------------------------------------------------------------------------
# equality cut-off


def test_unchanged_computed_stops_propagation() -> None:
    runs = Counter()
    a = sk.atom(0, name="a")

    def _parity() -> int:
        runs.hit("parity")
        return a.value % 2

    parity = sk.computed(_parity, name="parity")

    def _label() -> str:
        runs.hit("label")
        return "odd" if parity.value else "even"

    label = sk.computed(_label, name="label")
    seen: list[str] = []
    stop = sk.effect(lambda: seen.append(label.value))
    assert seen == ["even"]

    a.value = 2  # parity recomputes to the same 0: label and the effect do not run
    assert runs["parity"] == 2
    assert runs["label"] == 1
    assert seen == ["even"]

    a.value = 3
    assert runs["parity"] == 3
    assert runs["label"] == 2
    assert seen == ["even", "odd"]

    a.value = 5
    assert (runs["parity"], runs["label"]) == (4, 2)
    assert seen == ["even", "odd"]
    stop()


def test_writing_an_equal_value_notifies_nobody() -> None:
    runs = Counter()
    a = sk.atom([1, 2], name="a")
    calls: list[Any] = []
    off = a.subscribe(calls.append)

    def watch() -> None:
        runs.hit("e")
        a.value

    stop = sk.effect(watch)
    a.value = [1, 2]  # a new but equal list
    a.set([1, 2])
    a.update(list)
    assert calls == []
    assert runs["e"] == 1
    a.value = [1, 2, 3]
    assert calls == [[1, 2, 3]]
    assert runs["e"] == 2
    off()
    stop()


def test_custom_equals_on_computed() -> None:
    runs = Counter()
    a = sk.atom(1.0, name="a")

    def close(x: float, y: float) -> bool:
        return abs(x - y) < 1.0

    rounded = sk.computed(lambda: a.value, name="rounded", equals=close)

    def _down() -> float:
        runs.hit("down")
        return rounded.value * 10

    down = sk.computed(_down, name="down")
    seen: list[float] = []
    stop = sk.effect(lambda: seen.append(down.value))
    assert seen == [10.0]
    a.value = 1.5  # "equal" to 1.0: nothing downstream runs
    assert runs["down"] == 1
    assert seen == [10.0]
    a.value = 3.0
    assert runs["down"] == 2
    assert seen == [10.0, 30.0]
    stop()


def test_custom_equals_on_atom() -> None:
    a = sk.atom("Alice", name="name", equals=lambda x, y: x.lower() == y.lower())
    calls: list[str] = []
    off = a.subscribe(calls.append)
    runs = Counter()

    def watch() -> None:
        runs.hit("e")
        a.value

    stop = sk.effect(watch)
    a.value = "ALICE"
    assert calls == []
    assert runs["e"] == 1
    a.value = "Bob"
    assert calls == ["Bob"]
    assert a.value == "Bob"
    assert runs["e"] == 2
    off()
    stop()


def test_equals_always_false_notifies_every_write() -> None:
    a = sk.atom(0, name="a", equals=lambda x, y: False)
    calls: list[int] = []
    off = a.subscribe(calls.append)
    a.value = 0
    a.value = 0
    assert calls == [0, 0]
    off()


# --------------------------------------------------------------------------
# dynamic dependencies


def test_dynamic_dependencies_are_retracked_and_dropped() -> None:
    runs = Counter()
    use_x = sk.atom(True, name="use_x")
    x = sk.atom(1, name="x")
    y = sk.atom(100, name="y")

    def _pick() -> int:
        runs.hit("pick")
        return x.value if use_x.value else y.value

    pick = sk.computed(_pick, name="pick")
    seen: list[int] = []

    def watch() -> None:
        runs.hit("e")
        seen.append(pick.value)

    stop = sk.effect(watch)
    assert seen == [1]

    y.value = 101  # not a dependency yet
    assert (runs["pick"], runs["e"]) == (1, 1)

    use_x.value = False  # switch: now reads y, x is dropped
    assert seen == [1, 101]
    assert (runs["pick"], runs["e"]) == (2, 2)

    x.value = 2  # a dropped dependency: nothing re-runs
    x.value = 3
    assert (runs["pick"], runs["e"]) == (2, 2)
    assert seen == [1, 101]

    y.value = 102
    assert seen == [1, 101, 102]
    assert (runs["pick"], runs["e"]) == (3, 3)

    use_x.value = True
    assert seen[-1] == 3
    y.value = 103  # dropped again
    assert (runs["pick"], runs["e"]) == (4, 4)
    assert pick.value == 3
    stop()


def test_effect_dynamic_dependencies() -> None:
    runs = Counter()
    show = sk.atom(False, name="show")
    detail = sk.atom("d0", name="detail")
    seen: list[str | None] = []

    def watch() -> None:
        runs.hit("e")
        seen.append(detail.value if show.value else None)

    stop = sk.effect(watch)
    detail.value = "d1"  # not read yet
    assert runs["e"] == 1
    show.value = True
    assert seen == [None, "d1"]
    detail.value = "d2"
    assert seen == [None, "d1", "d2"]
    show.value = False
    detail.value = "d3"  # dropped
    assert seen == [None, "d1", "d2", None]
    assert runs["e"] == 4
    stop()


def test_dependency_read_many_times_counts_once() -> None:
    runs = Counter()
    a = sk.atom(1, name="a")

    def _many() -> int:
        runs.hit("many")
        return sum(a.value for _ in range(50))

    many = sk.computed(_many, name="many")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(many.value))
    a.value = 2
    assert seen == [50, 100]
    assert runs["many"] == 2
    stop()


# --------------------------------------------------------------------------
# laziness


def test_unwatched_computed_is_lazy() -> None:
    runs = Counter()
    a = sk.atom(0, name="a")

    def _c() -> int:
        runs.hit("c")
        return a.value + 1

    c = sk.computed(_c, name="c")
    assert runs["c"] == 0  # not evaluated on creation
    for v in range(1, 11):
        a.value = v
    assert runs["c"] == 0  # writes do not evaluate an unwatched computed
    assert c.value == 11
    assert runs["c"] == 1
    assert c.value == 11
    assert c.get() == 11
    assert c.peek() == 11
    assert runs["c"] == 1  # cached
    for v in range(20, 30):
        a.value = v
    assert runs["c"] == 1
    assert c.value == 30
    assert runs["c"] == 2


def test_computed_becomes_lazy_again_after_its_watcher_stops() -> None:
    runs = Counter()
    a = sk.atom(0, name="a")

    def _c() -> int:
        runs.hit("c")
        return a.value * 2

    c = sk.computed(_c, name="c")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(c.value))
    a.value = 1
    assert runs["c"] == 2
    stop()
    for v in range(2, 12):
        a.value = v
    assert runs["c"] == 2
    assert seen == [0, 2]
    assert c.value == 22
    assert runs["c"] == 3


def test_branch_not_taken_is_not_computed() -> None:
    runs = Counter()
    flag = sk.atom(False, name="flag")
    a = sk.atom(1, name="a")

    def _expensive() -> int:
        runs.hit("expensive")
        return a.value * 1000

    expensive = sk.computed(_expensive, name="expensive")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(expensive.value if flag.value else -1))
    a.value = 2
    a.value = 3
    assert runs["expensive"] == 0
    flag.value = True
    assert seen == [-1, 3000]
    assert runs["expensive"] == 1
    stop()


def test_subscribed_computed_is_eager_and_unsubscribed_is_lazy() -> None:
    runs = Counter()
    a = sk.atom(0, name="a")

    def _c() -> int:
        runs.hit("c")
        return a.value + 100

    c = sk.computed(_c, name="c")
    got: list[int] = []
    off = c.subscribe(got.append)
    a.value = 1
    a.value = 2
    assert got == [101, 102]
    assert c.value == 102
    off()
    before = runs["c"]
    a.value = 3
    a.value = 4
    assert runs["c"] == before
    assert got == [101, 102]
    assert c.value == 104


# --------------------------------------------------------------------------
# errors in computeds: cached until a dependency changes


def test_computed_error_is_cached_and_reraised_until_a_dependency_changes() -> None:
    runs = Counter()
    a = sk.atom(-1, name="a")
    other = sk.atom(0, name="other")

    def _root() -> float:
        runs.hit("root")
        if a.value < 0:
            raise ValueError(f"negative: {a.value}")
        return a.value**0.5

    root = sk.computed(_root, name="root")
    with pytest.raises(ValueError, match="negative: -1"):
        root.value
    with pytest.raises(ValueError, match="negative: -1"):
        root.get()
    with pytest.raises(ValueError, match="negative: -1"):
        root.peek()
    assert runs["root"] == 1  # the error is cached, not recomputed per read

    other.value = 5  # not a dependency
    with pytest.raises(ValueError):
        root.value
    assert runs["root"] == 1

    a.value = -4
    with pytest.raises(ValueError, match="negative: -4"):
        root.value
    assert runs["root"] == 2

    a.value = 9
    assert root.value == 3.0
    assert runs["root"] == 3


def test_computed_error_flows_to_dependents() -> None:
    a = sk.atom(0, name="a")
    inv = sk.computed(lambda: 1 / a.value, name="inv")
    plus = sk.computed(lambda: inv.value + 1, name="plus")
    with pytest.raises(ZeroDivisionError):
        plus.value
    a.value = 2
    assert plus.value == 1.5
    a.value = 0
    with pytest.raises(ZeroDivisionError):
        plus.value


def test_effect_reading_a_failing_computed_reports_and_recovers(
    errors: list[tuple[BaseException, str]],
) -> None:
    a = sk.atom(0, name="a")
    inv = sk.computed(lambda: 10 // a.value, name="inv")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(inv.value), name="show-inv")
    assert seen == []
    assert len(errors) == 1
    assert isinstance(errors[0][0], ZeroDivisionError)
    a.value = 5
    assert seen == [2]  # the effect still depends on inv and re-runs
    a.value = 0
    assert len(errors) == 2
    a.value = 2
    assert seen == [2, 5]
    stop()


# --------------------------------------------------------------------------
# errors in listeners and effects


def test_failing_listener_does_not_stop_others_nor_undo_the_write(
    errors: list[tuple[BaseException, str]],
) -> None:
    a = sk.atom(0, name="a")
    got: list[str] = []

    def first(v: int) -> None:
        got.append(f"first {v}")

    def bad(v: int) -> None:
        raise RuntimeError(f"listener boom {v}")

    def last(v: int) -> None:
        got.append(f"last {v}")

    offs = [a.subscribe(first), a.subscribe(bad), a.subscribe(last)]
    a.value = 1
    assert a.value == 1
    assert got == ["first 1", "last 1"]
    assert len(errors) == 1
    exc, where = errors[0]
    assert isinstance(exc, RuntimeError)
    assert str(exc) == "listener boom 1"
    assert isinstance(where, str)
    assert where
    a.value = 2
    assert got == ["first 1", "last 1", "first 2", "last 2"]
    assert len(errors) == 2
    for off in offs:
        off()


def test_failing_effect_does_not_stop_others_nor_undo_the_write(
    errors: list[tuple[BaseException, str]],
) -> None:
    a = sk.atom(0, name="a")
    got: list[str] = []
    stops = [sk.effect(lambda: got.append(f"one {a.value}"), name="one")]

    def bad() -> None:
        if a.value:
            raise KeyError(f"effect boom {a.value}")

    stops.append(sk.effect(bad, name="bad-effect"))
    stops.append(sk.effect(lambda: got.append(f"three {a.value}"), name="three"))
    a.value = 1
    assert a.value == 1
    assert sorted(got) == sorted(["one 0", "three 0", "one 1", "three 1"])
    assert len(errors) == 1
    assert isinstance(errors[0][0], KeyError)
    assert "bad-effect" in errors[0][1]
    a.value = 2  # the failing effect is still alive and still runs
    assert len(errors) == 2
    assert "one 2" in got and "three 2" in got
    for stop in stops:
        stop()


def test_failing_first_run_of_effect_goes_to_hook(
    errors: list[tuple[BaseException, str]],
) -> None:
    a = sk.atom(1, name="a")
    runs = Counter()

    def bad() -> None:
        runs.hit("e")
        if a.value == 1:
            raise ValueError("first run fails")

    stop = sk.effect(bad, name="bad")  # must not raise
    assert len(errors) == 1
    assert isinstance(errors[0][0], ValueError)
    a.value = 2
    assert runs["e"] == 2
    assert len(errors) == 1
    stop()


def test_failing_cleanup_goes_to_hook(errors: list[tuple[BaseException, str]]) -> None:
    a = sk.atom(0, name="a")
    runs = Counter()

    def watch() -> Callable[[], None]:
        runs.hit("e")
        a.value

        def cleanup() -> None:
            raise RuntimeError("cleanup boom")

        return cleanup

    stop = sk.effect(watch, name="with-cleanup")
    a.value = 1
    assert runs["e"] == 2
    assert len(errors) == 1
    assert isinstance(errors[0][0], RuntimeError)
    stop()
    assert len(errors) == 2


def test_default_error_hook_logs(caplog: pytest.LogCaptureFixture) -> None:
    a = sk.atom(0, name="a")

    def bad(v: int) -> None:
        raise RuntimeError("logged boom")

    off = a.subscribe(bad)
    with caplog.at_level(logging.ERROR, logger="statekit"):
        a.value = 1
    assert a.value == 1
    records = [r for r in caplog.records if r.name.startswith("statekit")]
    assert records, "the default error hook must log to the 'statekit' logger"
    assert any(r.levelno >= logging.ERROR for r in records)
    assert any(
        (r.exc_info is not None and "logged boom" in str(r.exc_info[1]))
        or "logged boom" in r.getMessage()
        for r in records
    )
    off()


def test_set_error_hook_returns_previous() -> None:
    def h1(exc: BaseException, where: str) -> None:
        pass

    def h2(exc: BaseException, where: str) -> None:
        pass

    original = sk.set_error_hook(h1)
    try:
        assert sk.set_error_hook(h2) is h1
        assert sk.set_error_hook(h1) is h2
    finally:
        assert sk.set_error_hook(original) is h1


# --------------------------------------------------------------------------
# cycles


def test_two_node_cycle_raises_cycle_error_naming_nodes() -> None:
    holder: dict[str, Any] = {}
    alpha = sk.computed(lambda: holder["beta"].value + 1, name="alpha")
    beta = sk.computed(lambda: alpha.value + 1, name="beta")
    holder["beta"] = beta
    with pytest.raises(sk.CycleError) as info:
        alpha.value
    err = info.value
    assert isinstance(err, sk.StatekitError)
    assert "alpha" in err.nodes
    assert "beta" in err.nodes
    assert "alpha" in str(err)
    assert "beta" in str(err)


def test_self_cycle_raises_cycle_error() -> None:
    holder: dict[str, Any] = {}
    me = sk.computed(lambda: holder["me"].value + 1, name="selfish")
    holder["me"] = me
    with pytest.raises(sk.CycleError) as info:
        me.value
    assert "selfish" in info.value.nodes


def test_three_node_cycle_names_all_nodes() -> None:
    holder: dict[str, Any] = {}
    n1 = sk.computed(lambda: holder["n3"].value, name="n1")
    n2 = sk.computed(lambda: n1.value, name="n2")
    n3 = sk.computed(lambda: n2.value, name="n3")
    holder["n3"] = n3
    with pytest.raises(sk.CycleError) as info:
        n2.value
    # The loop in the order the runs nested, from the node read back to it
    # (followed through each run's caller: no Python frames, so compiled too).
    assert info.value.nodes == ["n2", "n1", "n3", "n2"]


def test_effect_feeding_itself_is_reported_as_cycle(
    errors: list[tuple[BaseException, str]],
) -> None:
    a = sk.atom(0, name="loop-atom")

    def feed() -> None:
        a.value = a.value + 1

    stop: Callable[[], None] | None = None
    raised: BaseException | None = None
    try:
        stop = sk.effect(feed, name="feeder")
    except sk.CycleError as exc:
        raised = exc
    cycles = [e for e, _ in errors if isinstance(e, sk.CycleError)]
    assert raised is not None or cycles, "an effect that re-triggers itself forever is a cycle"
    err = raised if raised is not None else cycles[0]
    assert isinstance(err, sk.CycleError)
    assert "feeder" in err.nodes or "loop-atom" in err.nodes
    if stop is not None:
        stop()


# --------------------------------------------------------------------------
# batching


def test_batch_runs_effects_once_after_the_outermost_batch() -> None:
    runs = Counter()
    a = sk.atom(0, name="a")
    b = sk.atom(0, name="b")
    total = sk.computed(lambda: a.value + b.value, name="total")
    seen: list[int] = []

    def watch() -> None:
        runs.hit("e")
        seen.append(total.value)

    stop = sk.effect(watch)
    with sk.batch():
        a.value = 1
        b.value = 2
        with sk.batch():
            a.value = 3
            b.value = 4
        assert runs["e"] == 1  # the inner batch's end is not the outer's
        a.value = 5
        assert runs["e"] == 1
    assert runs["e"] == 2
    assert seen == [0, 9]
    stop()


def test_reads_inside_a_batch_see_new_values() -> None:
    a = sk.atom(1, name="a")
    double = sk.computed(lambda: a.value * 2, name="double")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(double.value))
    with sk.batch():
        a.value = 5
        assert a.value == 5
        assert double.value == 10
        assert seen == [2]
    assert seen == [2, 10]
    stop()


def test_listener_runs_once_after_batch_with_final_value() -> None:
    a = sk.atom(0, name="a")
    calls: list[int] = []
    off = a.subscribe(calls.append)
    with sk.batch():
        a.value = 1
        a.value = 2
        a.value = 3
        assert calls == []
    assert calls == [3]
    off()


def test_batch_that_reverts_through_computed_runs_nothing() -> None:
    runs = Counter()
    a = sk.atom(0, name="a")

    def _c() -> int:
        runs.hit("c")
        return a.value * 2

    c = sk.computed(_c, name="c")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(c.value))
    with sk.batch():
        a.value = 1
        a.value = 0
    assert seen == [0]
    assert runs["c"] <= 2
    stop()


def test_batch_exception_keeps_writes_and_still_runs_effects() -> None:
    a = sk.atom(0, name="a")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(a.value))
    with pytest.raises(RuntimeError, match="inside batch"), sk.batch():
        a.value = 7
        raise RuntimeError("inside batch")
    assert a.value == 7
    assert seen == [0, 7]
    a.value = 8
    assert seen == [0, 7, 8]  # batching is not stuck after the exception
    stop()


def test_effect_created_in_batch_runs_immediately() -> None:
    a = sk.atom(1, name="a")
    seen: list[int] = []
    with sk.batch():
        stop = sk.effect(lambda: seen.append(a.value))
        assert seen == [1]
        a.value = 2
        assert seen == [1]
    assert seen == [1, 2]
    stop()


def test_many_effects_each_once_per_batch() -> None:
    atoms = [sk.atom(i, name=f"a{i}") for i in range(20)]
    runs = Counter()
    stops = []
    for i in range(20):

        def watch(i: int = i) -> None:
            runs.hit(f"e{i}")
            sum(a.value for a in atoms)

        stops.append(sk.effect(watch))
    with sk.batch():
        for a in atoms:
            a.update(lambda n: n + 1)
    assert all(runs[f"e{i}"] == 2 for i in range(20))
    for stop in stops:
        stop()


def test_effect_writing_another_atom_propagates_once() -> None:
    runs = Counter()
    a = sk.atom(1, name="a")
    b = sk.atom(0, name="b")

    def copy() -> None:
        runs.hit("copy")
        b.value = a.value * 10

    seen: list[int] = []

    def show() -> None:
        runs.hit("show")
        seen.append(b.value)

    stop1 = sk.effect(copy)
    stop2 = sk.effect(show)
    assert seen == [10]
    a.value = 2
    assert seen == [10, 20]
    assert (runs["copy"], runs["show"]) == (2, 2)
    with sk.batch():
        a.value = 3
        a.value = 4
    assert seen == [10, 20, 40]
    assert (runs["copy"], runs["show"]) == (3, 3)
    stop1()
    stop2()


# --------------------------------------------------------------------------
# untracked and peek


def test_untracked_reads_do_not_subscribe() -> None:
    runs = Counter()
    a = sk.atom(1, name="a")
    b = sk.atom(10, name="b")
    seen: list[tuple[int, int]] = []

    def watch() -> None:
        runs.hit("e")
        seen.append((a.value, sk.untracked(lambda: b.value)))

    stop = sk.effect(watch)
    b.value = 11
    b.value = 12
    assert runs["e"] == 1
    a.value = 2
    assert seen == [(1, 10), (2, 12)]
    stop()


def test_untracked_returns_value_and_works_outside_tracking() -> None:
    a = sk.atom(3, name="a")
    assert sk.untracked(lambda: a.value * 2) == 6


def test_peek_does_not_subscribe_in_computed_or_effect() -> None:
    runs = Counter()
    a = sk.atom(1, name="a")
    b = sk.atom(100, name="b")
    b2 = sk.computed(lambda: b.value * 2, name="b2")

    def _c() -> int:
        runs.hit("c")
        return a.value + b.peek() + b2.peek()

    c = sk.computed(_c, name="c")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(c.value))
    b.value = 200
    assert runs["c"] == 1
    assert seen == [301]
    a.value = 2
    assert seen == [301, 602]
    stop()


def test_untracked_inside_computed() -> None:
    runs = Counter()
    a = sk.atom(1, name="a")
    b = sk.atom(5, name="b")

    def _c() -> int:
        runs.hit("c")
        return a.value * sk.untracked(lambda: b.value)

    c = sk.computed(_c, name="c")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(c.value))
    b.value = 6
    assert seen == [5]
    a.value = 2
    assert seen == [5, 12]
    stop()


# --------------------------------------------------------------------------
# subscribe / unsubscribe


def test_subscribe_is_not_called_at_subscribe_time_and_stops_after_off() -> None:
    a = sk.atom(0, name="a")
    calls: list[int] = []
    off = a.subscribe(calls.append)
    assert calls == []
    a.value = 1
    a.update(lambda n: n + 1)
    a.set(2)  # equal: no call
    a.set(5)
    assert calls == [1, 2, 5]
    off()
    a.value = 6
    assert calls == [1, 2, 5]
    off()  # a second off() is harmless
    a.value = 7
    assert calls == [1, 2, 5]


def test_two_subscriptions_of_the_same_callback_are_independent() -> None:
    a = sk.atom(0, name="a")
    calls: list[int] = []
    off1 = a.subscribe(calls.append)
    off2 = a.subscribe(calls.append)
    a.value = 1
    assert calls == [1, 1]
    off1()
    a.value = 2
    assert calls == [1, 1, 2]
    off2()
    a.value = 3
    assert calls == [1, 1, 2]


def test_subscribe_on_computed_only_when_value_changes() -> None:
    a = sk.atom(0, name="a")
    sign = sk.computed(lambda: (a.value > 0) - (a.value < 0), name="sign")
    calls: list[int] = []
    off = sign.subscribe(calls.append)
    for v in [1, 2, 3, -1, -5, 0, 0, 4]:
        a.value = v
    assert calls == [1, -1, 0, 1]
    off()


def test_reset_notifies() -> None:
    a = sk.atom(5, name="a")
    calls: list[int] = []
    off = a.subscribe(calls.append)
    a.value = 6
    a.reset()
    assert a.value == 5
    assert calls == [6, 5]
    off()


def test_listener_may_write_another_atom() -> None:
    a = sk.atom(0, name="a")
    b = sk.atom(0, name="b")
    off = a.subscribe(lambda v: b.set(v * 2))
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(b.value))
    a.value = 4
    assert b.value == 8
    assert seen == [0, 8]
    off()
    stop()


def test_unsubscribe_inside_listener() -> None:
    a = sk.atom(0, name="a")
    calls: list[str] = []
    offs: dict[str, Callable[[], None]] = {}

    def once(v: int) -> None:
        calls.append(f"once {v}")
        offs["once"]()

    offs["once"] = a.subscribe(once)
    offs["all"] = a.subscribe(lambda v: calls.append(f"all {v}"))
    a.value = 1
    a.value = 2
    assert calls.count("once 1") == 1
    assert "once 2" not in calls
    assert "all 1" in calls and "all 2" in calls
    offs["all"]()


# --------------------------------------------------------------------------
# effects: lifecycle and cleanup


def test_effect_runs_now_and_after_each_change() -> None:
    a = sk.atom(0, name="a")
    seen: list[int] = []
    e = sk.effect(lambda: seen.append(a.value), name="show")
    assert seen == [0]
    a.value = 1
    a.value = 2
    assert seen == [0, 1, 2]
    e()
    a.value = 3
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("how", ["call", "stop", "dispose"])
def test_effect_stop_spellings_run_cleanup_once(how: str) -> None:
    a = sk.atom(0, name="a")
    log: list[str] = []

    def watch() -> Callable[[], None]:
        v = a.value
        log.append(f"run {v}")
        return lambda: log.append(f"cleanup {v}")

    e = sk.effect(watch)
    a.value = 1
    assert log == ["run 0", "cleanup 0", "run 1"]
    if how == "call":
        e()
    elif how == "stop":
        e.stop()
    else:
        e.dispose()
    assert log == ["run 0", "cleanup 0", "run 1", "cleanup 1"]
    a.value = 2
    e()  # stopping again is harmless and does not re-run the cleanup
    assert log == ["run 0", "cleanup 0", "run 1", "cleanup 1"]


def test_cleanup_reads_are_not_tracked() -> None:
    a = sk.atom(0, name="a")
    other = sk.atom(0, name="other")
    runs = Counter()

    def watch() -> Callable[[], None]:
        runs.hit("e")
        a.value
        return lambda: other.value

    stop = sk.effect(watch)
    a.value = 1  # cleanup runs and reads `other`
    other.value = 1
    assert runs["e"] == 2
    stop()


def test_effect_stopping_itself() -> None:
    a = sk.atom(0, name="a")
    seen: list[int] = []
    holder: dict[str, Any] = {}

    def watch() -> None:
        seen.append(a.value)
        if a.value >= 2:
            holder["e"]()

    holder["e"] = sk.effect(watch)
    a.value = 1
    a.value = 2
    a.value = 3
    assert seen == [0, 1, 2]


def test_stopping_other_effect_inside_an_effect_prevents_its_run() -> None:
    a = sk.atom(0, name="a")
    seen: list[str] = []
    holder: dict[str, Any] = {}

    def first() -> None:
        seen.append(f"first {a.value}")
        if a.value == 1 and "second" in holder:
            holder["second"]()

    s1 = sk.effect(first)
    holder["second"] = sk.effect(lambda: seen.append(f"second {a.value}"))
    a.value = 1
    a.value = 2
    assert "second 2" not in seen
    assert seen.count("first 2") == 1
    s1()


def test_effect_without_dependencies_runs_once() -> None:
    runs = Counter()
    stop = sk.effect(lambda: runs.hit("e"))
    a = sk.atom(0)
    a.value = 1
    assert runs["e"] == 1
    stop()


def test_nested_effect_reads_are_tracked_separately() -> None:
    a = sk.atom(0, name="a")
    b = sk.atom(0, name="b")
    runs = Counter()
    inner_stops: list[Any] = []

    def outer() -> Callable[[], None]:
        runs.hit("outer")
        a.value

        def inner() -> None:
            runs.hit("inner")
            b.value

        stop_inner = sk.effect(inner)
        inner_stops.append(stop_inner)
        return stop_inner

    stop = sk.effect(outer)
    b.value = 1  # only the inner effect depends on b
    assert (runs["outer"], runs["inner"]) == (1, 2)
    a.value = 1  # outer re-runs: its cleanup stops the old inner, a new inner starts
    assert (runs["outer"], runs["inner"]) == (2, 3)
    b.value = 2
    assert (runs["outer"], runs["inner"]) == (2, 4)
    stop()
    b.value = 3
    assert runs["inner"] == 4


# --------------------------------------------------------------------------
# frozen values


def test_list_values_are_frozen() -> None:
    a = sk.atom([1, 2, 3], name="items")
    calls: list[Any] = []
    off = a.subscribe(calls.append)
    xs = a.value
    assert isinstance(xs, list)
    assert isinstance(xs, sk.FrozenList)
    assert xs == [1, 2, 3]
    mutations: list[Callable[[], Any]] = [
        lambda: xs.append(4),
        lambda: xs.extend([4]),
        lambda: xs.insert(0, 0),
        xs.pop,
        lambda: xs.remove(1),
        xs.clear,
        lambda: xs.sort(reverse=True),
        xs.reverse,
        lambda: xs.__setitem__(0, 9),
        lambda: xs.__setitem__(slice(0, 2), [9]),
        lambda: xs.__delitem__(0),
        lambda: xs.__iadd__([4]),
        lambda: xs.__imul__(2),
    ]
    for mutate in mutations:
        with pytest.raises(sk.ReadOnlyError):
            mutate()
    with pytest.raises(TypeError):
        xs.append(5)
    assert a.value == [1, 2, 3]
    assert xs == [1, 2, 3]
    assert calls == []
    off()


def test_augmented_assignment_on_frozen_list_raises() -> None:
    a = sk.atom([1], name="items")
    xs = a.value
    with pytest.raises(sk.ReadOnlyError):
        xs += [2]
    assert a.value == [1]


def test_dict_values_are_frozen() -> None:
    a = sk.atom({"x": 1}, name="d")
    d = a.value
    assert isinstance(d, dict)
    assert isinstance(d, sk.FrozenDict)
    mutations: list[Callable[[], Any]] = [
        lambda: d.__setitem__("y", 2),
        lambda: d.__delitem__("x"),
        lambda: d.update(y=2),
        lambda: d.pop("x"),
        d.popitem,
        d.clear,
        lambda: d.setdefault("z", 3),
        lambda: d.__ior__({"q": 1}),
    ]
    for mutate in mutations:
        with pytest.raises(sk.ReadOnlyError):
            mutate()
    assert a.value == {"x": 1}


def test_set_values_become_frozenset() -> None:
    a = sk.atom({1, 2}, name="s")
    assert isinstance(a.value, frozenset)
    assert a.value == {1, 2}


def test_nested_values_are_frozen() -> None:
    a = sk.atom({"todo": [{"done": False}], "tags": {"x"}}, name="doc")
    doc = a.value
    with pytest.raises(sk.ReadOnlyError):
        doc["todo"].append({"done": True})
    with pytest.raises(sk.ReadOnlyError):
        doc["todo"][0]["done"] = True
    assert isinstance(doc["tags"], frozenset)
    assert a.value == {"todo": [{"done": False}], "tags": {"x"}}


def test_update_with_copies_works_and_result_is_frozen() -> None:
    a = sk.atom([1, 2], name="items")
    calls: list[Any] = []
    off = a.subscribe(calls.append)
    new = a.update(lambda xs: [*xs, 3])
    assert new == [1, 2, 3]
    assert a.value == [1, 2, 3]
    assert isinstance(a.value, sk.FrozenList)
    assert calls == [[1, 2, 3]]
    mutable = list(a.value)
    mutable.append(4)
    assert a.value == [1, 2, 3]
    off()


def test_the_written_object_is_not_aliased() -> None:
    src = [1, 2]
    a = sk.atom(src, name="items")
    src.append(3)  # the caller's own list stays theirs
    assert a.value == [1, 2]
    mine = [5]
    a.value = mine
    mine.append(6)
    assert a.value == [5]


# --------------------------------------------------------------------------
# no side effects in computeds


def test_writing_an_atom_inside_a_computed_raises() -> None:
    a = sk.atom(0, name="a")
    target = sk.atom(0, name="target")
    calls: list[int] = []
    off = target.subscribe(calls.append)

    bad_set = sk.computed(lambda: target.set(a.value + 1), name="bad-set")
    with pytest.raises(sk.StatekitError):
        bad_set.value

    def _assign() -> int:
        target.value = 5
        return 1

    bad_assign = sk.computed(_assign, name="bad-assign")
    with pytest.raises(sk.StatekitError):
        bad_assign.value

    bad_update = sk.computed(lambda: target.update(lambda n: n + 1), name="bad-update")
    with pytest.raises(sk.StatekitError):
        bad_update.value

    assert target.value == 0
    assert calls == []
    off()


def test_cycle_error_recovers_when_the_cycle_is_broken() -> None:
    holder: dict[str, Any] = {}
    closed = sk.atom(True, name="closed")
    alpha = sk.computed(
        lambda: holder["beta"].value + 1 if closed.value else 0,
        name="alpha",
    )
    beta = sk.computed(lambda: alpha.value + 1, name="beta")
    holder["beta"] = beta
    with pytest.raises(sk.CycleError):
        alpha.value
    with pytest.raises(sk.CycleError):
        beta.value
    closed.value = False  # the loop is open now: both must recover
    assert alpha.value == 0
    assert beta.value == 1


def test_cycle_error_recovers_for_the_node_read_first() -> None:
    holder: dict[str, Any] = {}
    closed = sk.atom(True, name="closed")
    alpha = sk.computed(
        lambda: holder["beta"].value + 1 if closed.value else 0,
        name="alpha",
    )
    beta = sk.computed(lambda: alpha.value + 1, name="beta")
    holder["beta"] = beta
    with pytest.raises(sk.CycleError):
        beta.value
    closed.value = False
    assert beta.value == 1
    assert alpha.value == 0


# --------------------------------------------------------------------------
# more frozen values: containers that are not exactly list/dict/set


@pytest.mark.parametrize(
    "make",
    [
        lambda: collections.OrderedDict(a=1),
        lambda: collections.defaultdict(int, a=1),
        lambda: collections.Counter(a=1),
    ],
    ids=["OrderedDict", "defaultdict", "Counter"],
)
def test_dict_subclasses_cannot_be_mutated_behind_the_atom(make: Callable[[], Any]) -> None:
    a = sk.atom(make(), name="mapping")
    calls: list[Any] = []
    off = a.subscribe(calls.append)
    d = a.value
    try:
        d["b"] = 2
    except sk.ReadOnlyError:
        pass
    assert dict(a.value) == {"a": 1}, "the atom's value changed without a write"
    assert calls == []
    off()


def test_list_subclass_and_bytearray_cannot_be_mutated_behind_the_atom() -> None:
    class Items(list):  # type: ignore[type-arg]
        pass

    a = sk.atom(Items([1]), name="items")
    try:
        a.value.append(2)
    except sk.ReadOnlyError:
        pass
    assert list(a.value) == [1]
    b = sk.atom(bytearray(b"ab"), name="buf")
    try:
        b.value.extend(b"cd")  # stored as bytes: there is no extend
    except (sk.ReadOnlyError, AttributeError):
        pass
    assert bytes(b.value) == b"ab"


def test_lists_inside_tuples_are_frozen() -> None:
    a = sk.atom((1, [2]), name="pair")
    with pytest.raises(sk.ReadOnlyError):
        a.value[1].append(3)
    assert a.value == (1, [2])


# --------------------------------------------------------------------------
# async computed: results applied in order, stale results never win


async def test_async_computed_stale_result_never_wins() -> None:
    uid = sk.atom(1, name="uid")
    delays = {1: 0.05, 2: 0.0, 3: 0.02}
    started: list[int] = []

    @sk.computed
    async def user() -> int:
        u = uid.value
        started.append(u)
        await asyncio.sleep(delays[u])
        return u * 10

    assert user.value is None  # no settled value yet
    assert user.loading is True
    uid.value = 2  # the slow run for 1 is outranked
    assert await asyncio.wait_for(user.wait(), 5) == 20
    assert user.loading is False
    await asyncio.sleep(0.1)  # give the old run every chance to land
    assert user.value == 20
    assert user.error is None
    assert started == [1, 2]


async def test_async_computed_settled_values_arrive_in_order() -> None:
    n = sk.atom(0, name="n")

    @sk.computed
    async def slow() -> int:
        v = n.value
        await asyncio.sleep(0.03 if v % 2 else 0.0)  # odd runs are slower
        return v

    assert await asyncio.wait_for(slow.wait(), 5) == 0
    seen: list[int] = []
    off = slow.subscribe(seen.append)
    for v in range(1, 6):
        n.value = v
        await asyncio.sleep(0.005)
    assert await asyncio.wait_for(slow.wait(), 5) == 5
    await asyncio.sleep(0.1)
    assert seen == sorted(seen), f"results applied out of order: {seen}"
    assert seen[-1] == 5
    assert slow.value == 5
    off()


async def test_async_computed_initial_loading_and_error() -> None:
    q = sk.atom("ok", name="q")

    async def fetch() -> list[str]:
        v = q.value
        await asyncio.sleep(0)
        if v == "bad":
            raise LookupError("no such thing")
        return [v]

    items = sk.computed(fetch, name="items", initial=["(loading)"])
    assert items.value == ["(loading)"]
    assert items.loading is True
    assert await asyncio.wait_for(items.wait(), 5) == ["ok"]
    assert items.loading is False
    assert items.error is None
    q.value = "bad"
    with pytest.raises(LookupError):
        await asyncio.wait_for(items.wait(), 5)
    assert isinstance(items.error, LookupError)
    assert items.value == ["ok"]  # the last settled value stays
    q.value = "fine"
    assert await asyncio.wait_for(items.wait(), 5) == ["fine"]
    assert items.error is None


async def test_async_computed_tracks_reads_before_first_await_only() -> None:
    before = sk.atom(1, name="before")
    after = sk.atom(100, name="after")
    runs = [0]

    @sk.computed
    async def combo() -> int:
        runs[0] += 1
        b = before.value
        await asyncio.sleep(0)
        return b + after.value

    assert await asyncio.wait_for(combo.wait(), 5) == 101
    after.value = 200  # read after the first await: not a dependency
    await asyncio.sleep(0.01)
    assert runs[0] == 1
    before.value = 2
    assert await asyncio.wait_for(combo.wait(), 5) == 202
    assert runs[0] == 2


# --------------------------------------------------------------------------
# writes from effects and listeners that settle, update errors


def test_effect_writing_its_own_dependency_until_it_settles(
    errors: list[tuple[BaseException, str]],
) -> None:
    a = sk.atom(0, name="a")
    seen: list[int] = []

    def climb() -> None:
        seen.append(a.value)
        if a.value < 3:
            a.value = a.value + 1

    stop = sk.effect(climb, name="climb")
    assert a.value == 3
    assert seen == [0, 1, 2, 3]
    a.value = 1
    assert seen == [0, 1, 2, 3, 1, 2, 3]
    assert errors == []  # settling is not a cycle
    stop()


def test_listener_clamping_its_own_atom() -> None:
    a = sk.atom(0, name="a")
    calls: list[int] = []

    def clamp(v: int) -> None:
        calls.append(v)
        if v > 10:
            a.set(10)

    off = a.subscribe(clamp)
    a.value = 50
    assert a.value == 10
    assert calls == [50, 10]
    a.value = 5
    assert calls == [50, 10, 5]
    off()


def test_failing_update_changes_nothing_and_releases_the_lock() -> None:
    a = sk.atom(1, name="a")
    calls: list[int] = []
    off = a.subscribe(calls.append)
    with pytest.raises(ZeroDivisionError):
        a.update(lambda n: n // 0)
    assert a.value == 1
    assert calls == []
    assert a.update(lambda n: n + 1) == 2
    assert calls == [2]
    off()
