"""The js-reactivity-benchmark cases, checked for values *and* run counts.

Faithful translations of the kairo cases (``src/kairo/*.ts``: avoidable, broad,
deep, diamond, mux, repeated, triangle, unstable) and of the cellx benchmark
(``src/cellxBench.ts``) of the js-reactivity-benchmark repository, built with
``sk.atom`` / ``sk.computed`` / ``sk.effect``. ``signal.write(v)`` is
``atom.value = v``, ``withBatch`` is ``sk.batch()``.

The benchmark runs each case's iteration function several times; so do these
tests (``ITERATIONS``), checking after every write that each computed and
effect ran exactly as often as a minimal, glitch-free engine must: once for
each write that changed one of its inputs, never otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import statekit as sk

ITERATIONS = 3  # the benchmark calls each case's iteration function 3 times before timing


def iterations(size: int) -> int:
    """The large variants (the sizes of our own benchmark) run the iteration once."""
    return ITERATIONS if size < 1000 else 1


class Counts:
    """Run counts per node name, with snapshot/diff helpers."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}

    def hit(self, key: str) -> None:
        self.n[key] = self.n.get(key, 0) + 1

    def __getitem__(self, key: str) -> int:
        return self.n.get(key, 0)

    def snapshot(self) -> dict[str, int]:
        return dict(self.n)

    def delta(self, before: dict[str, int]) -> dict[str, int]:
        keys = set(self.n) | set(before)
        out = {k: self.n.get(k, 0) - before.get(k, 0) for k in keys}
        return {k: v for k, v in out.items() if v}


def counted(counts: Counts, key: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        counts.hit(key)
        return fn()

    return run


def busy() -> None:
    a = 0
    for _ in range(100):
        a += 1


# --------------------------------------------------------------------------
# deep propagation


@pytest.mark.parametrize("length", [50, 1000])
def test_deep_propagation(length: int) -> None:
    counts = Counts()
    head = sk.atom(0, name="head")
    current: Any = head
    for i in range(length):
        c = current
        current = sk.computed(counted(counts, f"c{i}", lambda c=c: c.value + 1), name=f"c{i}")
    last = current
    stop = sk.effect(counted(counts, "effect", lambda: last.value))
    assert counts["effect"] == 1
    assert last.value == length
    # (how often each link ran while first built is pinned by test_deep.py)

    all_changed = {f"c{i}": 1 for i in range(length)} | {"effect": 1}
    iters = 50
    for _ in range(iterations(length)):
        before = counts.snapshot()
        with sk.batch():
            head.value = 1
        assert counts.delta(before) == all_changed
        for i in range(iters):
            before = counts.snapshot()
            with sk.batch():
                head.value = i
            assert last.value == length + i
            assert counts.delta(before) == all_changed  # every write changes head
    stop()


# --------------------------------------------------------------------------
# broad propagation


@pytest.mark.parametrize("width", [50, 1000])
def test_broad_propagation(width: int) -> None:
    counts = Counts()
    head = sk.atom(0, name="head")
    last: Any = head
    seconds = []
    stops = []
    for i in range(width):
        current = sk.computed(
            counted(counts, f"a{i}", lambda i=i: head.value + i), name=f"current{i}"
        )
        current2 = sk.computed(
            counted(counts, f"b{i}", lambda c=current: c.value + 1), name=f"current2_{i}"
        )
        stops.append(sk.effect(counted(counts, f"e{i}", lambda c=current2: c.value)))
        last = current2
        seconds.append(current2)

    every = {f"{p}{i}": 1 for i in range(width) for p in "abe"}
    for _ in range(iterations(width)):
        before = counts.snapshot()
        with sk.batch():
            head.value = 1
        assert counts.delta(before) == every
        for i in range(50):
            before = counts.snapshot()
            with sk.batch():
                head.value = i
            assert last.value == i + width
            assert counts.delta(before) == every
        assert [s.value for s in seconds] == [49 + j + 1 for j in range(width)]
    for stop in stops:
        stop()


# --------------------------------------------------------------------------
# diamond


@pytest.mark.parametrize("width", [5, 1000])
def test_diamond(width: int) -> None:
    counts = Counts()
    head = sk.atom(0, name="head")
    current = [
        sk.computed(counted(counts, f"c{i}", lambda: head.value + 1), name=f"c{i}")
        for i in range(width)
    ]
    total = sk.computed(counted(counts, "sum", lambda: sum(x.value for x in current)), name="sum")
    stop = sk.effect(counted(counts, "effect", lambda: total.value))
    assert counts["sum"] == 1
    assert counts["effect"] == 1

    every = {f"c{i}": 1 for i in range(width)} | {"sum": 1, "effect": 1}
    for _ in range(iterations(width)):
        before = counts.snapshot()
        with sk.batch():
            head.value = 1
        assert total.value == 2 * width
        assert counts.delta(before) == every
        effect_before = counts["effect"]
        for i in range(500):
            before = counts.snapshot()
            with sk.batch():
                head.value = i
            assert total.value == (i + 1) * width
            assert counts.delta(before) == every
        assert counts["effect"] - effect_before == 500  # the benchmark's own assertion
    stop()


# --------------------------------------------------------------------------
# triangle


def test_triangle() -> None:
    width = 10
    counts = Counts()
    head = sk.atom(0, name="head")
    current: Any = head
    items: list[Any] = []
    for i in range(width):
        c = current
        items.append(current)
        current = sk.computed(counted(counts, f"c{i + 1}", lambda c=c: c.value + 1), name=f"c{i}")
    # ``current`` (c10) is never read by anything: it must never be computed.
    total = sk.computed(counted(counts, "sum", lambda: sum(x.value for x in items)), name="sum")
    stop = sk.effect(counted(counts, "effect", lambda: total.value))

    constant = sum(range(1, width + 1))
    every = {f"c{i}": 1 for i in range(1, width)} | {"sum": 1, "effect": 1}
    for _ in range(ITERATIONS):
        before = counts.snapshot()
        with sk.batch():
            head.value = 1
            assert total.value == constant
        assert counts.delta(before) == every
        effect_before = counts["effect"]
        for i in range(100):
            before = counts.snapshot()
            with sk.batch():
                head.value = i
                assert total.value == constant - width + i * width
            assert counts.delta(before) == every
        assert counts["effect"] - effect_before == 100  # the benchmark's own assertion
    assert counts[f"c{width}"] == 0
    stop()


# --------------------------------------------------------------------------
# mux


def test_mux() -> None:
    counts = Counts()
    heads = [sk.atom(0, name=f"head{i}") for i in range(100)]
    mux = sk.computed(
        counted(counts, "mux", lambda: dict(enumerate(h.value for h in heads))), name="mux"
    )
    split = [
        sk.computed(counted(counts, f"s{i}", lambda i=i: mux.value[i]), name=f"split{i}")
        for i in range(100)
    ]
    plus = [
        sk.computed(counted(counts, f"p{i}", lambda x=x: x.value + 1), name=f"plus{i}")
        for i, x in enumerate(split)
    ]
    stops = [sk.effect(counted(counts, f"e{i}", lambda x=x: x.value)) for i, x in enumerate(plus)]
    assert counts["mux"] == 1

    values = [0] * 100

    def write(i: int, v: int) -> None:
        before = counts.snapshot()
        changed = values[i] != v
        values[i] = v
        heads[i].value = v
        assert plus[i].value == v + 1
        if not changed:
            assert counts.delta(before) == {}
            return
        # mux runs once, every splitter re-reads it once, but only the one
        # whose value changed lets propagation through.
        expected = {"mux": 1} | {f"s{j}": 1 for j in range(100)} | {f"p{i}": 1, f"e{i}": 1}
        assert counts.delta(before) == expected

    for _ in range(ITERATIONS):
        for i in range(10):
            write(i, i)
        for i in range(10):
            write(i, i * 2)
    assert [p.value for p in plus] == [i * 2 + 1 for i in range(10)] + [1] * 90
    for stop in stops:
        stop()


# --------------------------------------------------------------------------
# repeated observers


def test_repeated_observers() -> None:
    size = 30
    counts = Counts()
    head = sk.atom(0, name="head")

    def _current() -> int:
        result = 0
        for _ in range(size):
            result += head.value
        return result

    current = sk.computed(counted(counts, "current", _current), name="current")
    stop = sk.effect(counted(counts, "effect", lambda: current.value))
    every = {"current": 1, "effect": 1}
    for _ in range(ITERATIONS):
        before = counts.snapshot()
        with sk.batch():
            head.value = 1
        assert current.value == size
        assert counts.delta(before) == every
        for i in range(100):
            before = counts.snapshot()
            with sk.batch():
                head.value = i
            assert current.value == i * size
            assert counts.delta(before) == every
    stop()


# --------------------------------------------------------------------------
# unstable


def test_unstable() -> None:
    counts = Counts()
    head = sk.atom(0, name="head")
    double = sk.computed(counted(counts, "double", lambda: head.value * 2), name="double")
    inverse = sk.computed(counted(counts, "inverse", lambda: -head.value), name="inverse")

    def _current() -> int:
        result = 0
        for _ in range(20):
            result += double.value if head.value % 2 else inverse.value
        return result

    current = sk.computed(counted(counts, "current", _current), name="current")
    stop = sk.effect(counted(counts, "effect", lambda: current.value))
    assert (counts["double"], counts["inverse"]) == (0, 1)

    def expected_delta(h: int) -> dict[str, int]:
        # only the branch taken for the new head is evaluated
        return {"current": 1, "effect": 1, ("double" if h % 2 else "inverse"): 1}

    for _ in range(ITERATIONS):
        before = counts.snapshot()
        with sk.batch():
            head.value = 1
        assert current.value == 40
        assert counts.delta(before) == expected_delta(1)
        effect_before = counts["effect"]
        for i in range(100):
            before = counts.snapshot()
            with sk.batch():
                head.value = i
            assert current.value == (i * 2 * 20 if i % 2 else -i * 20)
            assert counts.delta(before) == expected_delta(i)
        assert counts["effect"] - effect_before == 100  # the benchmark's own assertion
    stop()


# --------------------------------------------------------------------------
# avoidable propagation


def test_avoidable_propagation() -> None:
    counts = Counts()
    head = sk.atom(0, name="head")
    c1 = sk.computed(counted(counts, "c1", lambda: head.value), name="c1")
    c2 = sk.computed(counted(counts, "c2", lambda: (c1.value, 0)[1]), name="c2")

    def _c3() -> int:
        busy()
        return c2.value + 1

    c3 = sk.computed(counted(counts, "c3", _c3), name="c3")
    c4 = sk.computed(counted(counts, "c4", lambda: c3.value + 2), name="c4")
    c5 = sk.computed(counted(counts, "c5", lambda: c4.value + 3), name="c5")

    def _effect() -> None:
        c5.value
        busy()

    stop = sk.effect(counted(counts, "effect", _effect))
    assert counts.snapshot() == {"c1": 1, "c2": 1, "c3": 1, "c4": 1, "c5": 1, "effect": 1}

    for _ in range(ITERATIONS):
        before = counts.snapshot()
        head.value = 1
        assert c5.value == 6
        assert counts.delta(before) == {"c1": 1, "c2": 1}
        for i in range(1000):
            before = counts.snapshot()
            with sk.batch():
                head.value = i
                assert c5.value == 6
            assert counts.delta(before) == {"c1": 1, "c2": 1}
    # the heavy part never re-ran
    assert (counts["c3"], counts["c4"], counts["c5"], counts["effect"]) == (1, 1, 1, 1)
    stop()


# --------------------------------------------------------------------------
# cellx


CELLX_EXPECTED = {
    1000: ((-3, -6, -2, 2), (-2, -4, 2, 3)),
    2500: ((-3, -6, -2, 2), (-2, -4, 2, 3)),
    5000: ((2, 4, -1, -6), (-2, 1, -4, -4)),
}


def _cellx_reference(layers: int, start: tuple[int, int, int, int]) -> list[tuple[int, ...]]:
    """Plain evaluation of every layer (index 0 is the start atoms)."""
    out = [start]
    p1, p2, p3, p4 = start
    for _ in range(layers):
        p1, p2, p3, p4 = p2, p1 - p3, p2 + p4, p3  # each reads the previous layer
        out.append((p1, p2, p3, p4))
    return out


@pytest.mark.parametrize("layers", sorted(CELLX_EXPECTED))
def test_cellx(layers: int) -> None:
    counts = Counts()
    start = [sk.atom(v, name=f"start.prop{k + 1}") for k, v in enumerate((1, 2, 3, 4))]
    layer: list[Any] = list(start)
    stops = []
    all_layers: list[list[Any]] = []
    for i in range(layers, 0, -1):
        m = layer
        s = [
            sk.computed(counted(counts, f"{i}.1", lambda m=m: m[1].value), name=f"{i}.prop1"),
            sk.computed(
                counted(counts, f"{i}.2", lambda m=m: m[0].value - m[2].value), name=f"{i}.prop2"
            ),
            sk.computed(
                counted(counts, f"{i}.3", lambda m=m: m[1].value + m[3].value), name=f"{i}.prop3"
            ),
            sk.computed(counted(counts, f"{i}.4", lambda m=m: m[2].value), name=f"{i}.prop4"),
        ]
        for k, node in enumerate(s):
            stops.append(sk.effect(counted(counts, f"{i}.e{k + 1}", lambda n=node: n.value)))
        layer = s
        all_layers.append(s)
    end = layer

    # every node was computed exactly once while building (each has an effect)
    assert all(v == 1 for v in counts.n.values())
    assert len(counts.n) == 8 * layers

    expected_before, expected_after = CELLX_EXPECTED[layers]
    before_values = tuple(n.value for n in end)
    assert before_values == expected_before

    ref_before = _cellx_reference(layers, (1, 2, 3, 4))
    ref_after = _cellx_reference(layers, (4, 3, 2, 1))
    assert ref_before[-1] == expected_before  # the reference model is right
    assert ref_after[-1] == expected_after

    snap = counts.snapshot()
    with sk.batch():
        start[0].value = 4
        start[1].value = 3
        start[2].value = 2
        start[3].value = 1
    after_values = tuple(n.value for n in end)
    assert after_values == expected_after

    # exact run counts: a computed runs once iff one of its inputs changed,
    # an effect runs once iff its computed's value changed.
    deps = ((1,), (0, 2), (1, 3), (2,))
    expected: dict[str, int] = {}
    for depth in range(1, layers + 1):
        i = layers - depth + 1  # the name index used while building
        prev_b, prev_a = ref_before[depth - 1], ref_after[depth - 1]
        cur_b, cur_a = ref_before[depth], ref_after[depth]
        for k in range(4):
            if any(prev_b[d] != prev_a[d] for d in deps[k]):
                expected[f"{i}.{k + 1}"] = 1
            if cur_b[k] != cur_a[k]:
                expected[f"{i}.e{k + 1}"] = 1
    assert counts.delta(snap) == expected
    for depth, nodes in enumerate(all_layers, start=1):
        assert tuple(n.value for n in nodes) == ref_after[depth]
    for stop in stops:
        stop()
