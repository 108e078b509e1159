"""Hypothesis: random graphs of atoms, computeds and effects under random writes.

A graph is a list of atoms followed by computeds; each computed is a pure
function (a sum, a modulo, a clamp, a difference or a *dynamic* branch) of
earlier nodes, so the list order is a topological order. Effects are the same
kind of functions over any node. The same Python function drives statekit and
a plain model that evaluates everything from scratch.

After every step (a single write, or a batch of writes, possibly nested):

* every computed equals the from-scratch evaluation;
* every effect saw exactly the final values (no glitch);
* every computed and effect ran at most once, ran if one of the inputs it read
  last time changed value, and did not run unless one of those inputs was
  written with a different value during the step (an atom) or ended the step
  with a different value (a computed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statekit as sk

Spec = tuple[Any, ...]
Get = Callable[[int], int]

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def evaluate(spec: Spec, get: Get) -> int:
    """The pure function a computed or effect stands for."""
    kind = spec[0]
    if kind == "sum":
        return sum(get(i) for i in spec[1])
    if kind == "mod":
        return get(spec[1]) % spec[2]
    if kind == "clamp":
        return max(spec[2], min(spec[3], get(spec[1])))
    if kind == "diff":
        return get(spec[1]) - get(spec[2])
    if kind == "branch":  # dynamic dependencies: only one side is read
        _, cond, then, other = spec
        return get(then) if get(cond) % 2 else get(other)
    raise AssertionError(kind)


def tracked(spec: Spec, values: list[int]) -> tuple[int, dict[int, int]]:
    """Evaluate ``spec`` on ``values``; return the result and what it read."""
    seen: dict[int, int] = {}

    def get(i: int) -> int:
        seen[i] = values[i]
        return values[i]

    return evaluate(spec, get), seen


@st.composite
def func_spec(draw: st.DrawFn, n: int) -> Spec:
    idx = st.integers(0, n - 1)
    kind = draw(st.sampled_from(["sum", "mod", "clamp", "diff", "branch", "branch"]))
    if kind == "sum":
        return ("sum", tuple(draw(st.lists(idx, min_size=1, max_size=3))))
    if kind == "mod":
        return ("mod", draw(idx), draw(st.integers(2, 3)))
    if kind == "clamp":
        return ("clamp", draw(idx), draw(st.integers(-3, 0)), draw(st.integers(0, 3)))
    if kind == "diff":
        return ("diff", draw(idx), draw(idx))
    return ("branch", draw(idx), draw(idx), draw(idx))


@st.composite
def graphs(draw: st.DrawFn, with_effects: bool = True) -> dict[str, Any]:
    n_atoms = draw(st.integers(1, 4))
    atoms = draw(st.lists(st.integers(-3, 3), min_size=n_atoms, max_size=n_atoms))
    n_comp = draw(st.integers(1, 10))
    comps = [draw(func_spec(n_atoms + j)) for j in range(n_comp)]
    effects = draw(st.lists(func_spec(n_atoms + n_comp), max_size=4)) if with_effects else []
    write = st.tuples(st.integers(0, n_atoms - 1), st.integers(-3, 3))
    step = st.one_of(
        st.tuples(st.just("write"), write),
        st.tuples(
            st.just("batch"),
            st.lists(write, min_size=1, max_size=5),
            st.integers(0, 5),  # where a nested batch starts
        ),
    )
    steps = draw(st.lists(step, min_size=1, max_size=12))
    return {"atoms": atoms, "comps": comps, "effects": effects, "steps": steps}


@contextmanager
def fresh_app() -> Iterator[sk.Scope]:
    """A fresh app scope per example: nothing accumulates across examples."""
    app = sk.new_app_scope(name="prop")
    try:
        with app:
            yield app
    finally:
        if not app.disposed:
            app.dispose()


class Built:
    """The statekit side of a graph, with run counters."""

    def __init__(self, graph: dict[str, Any]) -> None:
        self.n_atoms = len(graph["atoms"])
        self.nodes: list[Any] = [sk.atom(v, name=f"a{i}") for i, v in enumerate(graph["atoms"])]
        self.runs: list[int] = []  # per computed, then per effect
        self.comp_specs: list[Spec] = graph["comps"]
        self.effect_specs: list[Spec] = graph["effects"]
        self.effect_seen: list[list[tuple[int, dict[int, int]]]] = []
        self.stops: list[Any] = []
        get: Get = lambda i: self.nodes[i].value  # noqa: E731
        for j, spec in enumerate(self.comp_specs):
            self.runs.append(0)

            def fn(j: int = j, spec: Spec = spec) -> int:
                self.runs[j] += 1
                return evaluate(spec, get)

            self.nodes.append(sk.computed(fn, name=f"c{j}"))
        for k, spec in enumerate(self.effect_specs):
            slot = len(self.runs)
            self.runs.append(0)
            self.effect_seen.append([])

            def run(slot: int = slot, k: int = k, spec: Spec = spec) -> None:
                self.runs[slot] += 1
                seen: dict[int, int] = {}

                def tget(i: int) -> int:
                    seen[i] = self.nodes[i].value
                    return seen[i]

                result = evaluate(spec, tget)
                self.effect_seen[k].append((result, seen))

            self.stops.append(sk.effect(run, name=f"e{k}"))

    def stop(self) -> None:
        for stop in self.stops:
            stop()


class Model:
    """The from-scratch side: current atom values and what each node last read."""

    def __init__(self, graph: dict[str, Any]) -> None:
        self.comp_specs: list[Spec] = graph["comps"]
        self.effect_specs: list[Spec] = graph["effects"]
        self.n_atoms = len(graph["atoms"])
        self.values: list[int] = list(graph["atoms"])
        self.last_read: list[dict[int, int]] = []  # per computed, then per effect
        for spec in self.comp_specs:
            value, seen = tracked(spec, self.values)
            self.values.append(value)
            self.last_read.append(seen)
        for spec in self.effect_specs:
            self.last_read.append(tracked(spec, self.values)[1])

    def from_scratch(self) -> list[int]:
        values = self.values[: self.n_atoms]
        for spec in self.comp_specs:
            values.append(evaluate(spec, values.__getitem__))
        return values

    def settle(self, touched: set[int]) -> tuple[list[bool], list[bool]]:
        """Recompute after a step; return (must run, may run) per computed/effect."""
        must: list[bool] = []
        may: list[bool] = []
        n = self.n_atoms
        for j, spec in enumerate(self.comp_specs):
            seen = self.last_read[j]
            changed = any(self.values[d] != v for d, v in seen.items())
            maybe = changed or any(d < n and d in touched for d in seen)
            must.append(changed)
            may.append(maybe)
            if maybe:
                value, new_seen = tracked(spec, self.values)
                self.values[n + j] = value
                self.last_read[j] = new_seen
        base = len(self.comp_specs)
        for k, spec in enumerate(self.effect_specs):
            seen = self.last_read[base + k]
            changed = any(self.values[d] != v for d, v in seen.items())
            maybe = changed or any(d < n and d in touched for d in seen)
            must.append(changed)
            may.append(maybe)
            if maybe:
                self.last_read[base + k] = tracked(spec, self.values)[1]
        return must, may


def apply_write(built: Built, model: Model, touched: set[int], atom: int, value: int) -> None:
    if model.values[atom] != value:
        touched.add(atom)
        model.values[atom] = value
    built.nodes[atom].value = value


def run_step(built: Built, model: Model, step: tuple[Any, ...]) -> set[int]:
    touched: set[int] = set()
    if step[0] == "write":
        atom, value = step[1]
        apply_write(built, model, touched, atom, value)
        return touched
    _, writes, split = step
    with sk.batch():
        for atom, value in writes[:split]:
            apply_write(built, model, touched, atom, value)
        with sk.batch():
            for atom, value in writes[split:]:
                apply_write(built, model, touched, atom, value)
    return touched


def check(built: Built, model: Model, must: list[bool], may: list[bool], before: list[int]) -> None:
    # read every computed (in reverse, to pull through chains) and compare
    got = [built.nodes[i].value for i in reversed(range(len(built.nodes)))][::-1]
    scratch = model.from_scratch()
    assert got == scratch, "a computed differs from a from-scratch evaluation"
    assert model.values == scratch
    for slot, (m, y) in enumerate(zip(must, may, strict=True)):
        ran = built.runs[slot] - before[slot]
        what = f"c{slot}" if slot < len(built.comp_specs) else f"e{slot - len(built.comp_specs)}"
        assert ran <= 1, f"{what} ran {ran} times in one step"
        if m:
            assert ran == 1, f"{what} did not run although an input changed"
        if not y:
            assert ran == 0, f"{what} ran although none of its inputs changed"
    # effects saw exactly the final values of what they read
    for k, spec in enumerate(built.effect_specs):
        result, seen = built.effect_seen[k][-1]
        assert all(scratch[d] == v for d, v in seen.items()), f"e{k} saw a glitch"
        assert result == evaluate(spec, scratch.__getitem__)


@SETTINGS
@given(graphs())
def test_random_graphs_stay_consistent_and_minimal(graph: dict[str, Any]) -> None:
    with fresh_app():
        built = Built(graph)
        model = Model(graph)
        # creation: effects ran exactly once, computeds they need at most once
        assert built.runs[len(built.comp_specs) :] == [1] * len(built.effect_specs)
        assert all(r <= 1 for r in built.runs)
        initial = [built.nodes[i].value for i in range(len(built.nodes))]
        assert initial == model.from_scratch()
        assert all(r <= 1 for r in built.runs)
        for step in graph["steps"]:
            before = list(built.runs)
            touched = run_step(built, model, step)
            must, may = model.settle(touched)
            check(built, model, must, may, before)
        built.stop()


@SETTINGS
@given(graphs(with_effects=False), st.data())
def test_unwatched_computeds_are_lazy(graph: dict[str, Any], data: st.DataObject) -> None:
    with fresh_app():
        built = Built(graph)
        model = Model(graph)
        for step in graph["steps"]:
            run_step(built, model, step)
        assert built.runs == [0] * len(built.comp_specs), "a write evaluated an unread computed"
        n = built.n_atoms
        wanted = data.draw(
            st.lists(st.integers(0, len(built.comp_specs) - 1), min_size=1, max_size=3)
        )
        values = model.from_scratch()
        # the dynamic dependency closure of what is read, from scratch
        needed: set[int] = set()
        todo = [n + j for j in wanted]
        while todo:
            node = todo.pop()
            if node < n or node in needed:
                continue
            needed.add(node)
            todo.extend(tracked(model.comp_specs[node - n], values)[1])
        for j in wanted:
            assert built.nodes[n + j].value == values[n + j]
        expected = [1 if n + j in needed else 0 for j in range(len(built.comp_specs))]
        assert built.runs == expected
        # reading again costs nothing
        for j in wanted:
            assert built.nodes[n + j].value == values[n + j]
        assert built.runs == expected


@SETTINGS
@given(
    st.lists(st.integers(-5, 5), min_size=1, max_size=30),
    st.lists(st.booleans(), min_size=1, max_size=30),
)
def test_listener_sees_each_distinct_value_once(values: list[int], batched: list[bool]) -> None:
    with fresh_app():
        a = sk.atom(0, name="a")
        calls: list[int] = []
        off = a.subscribe(calls.append)
        expected: list[int] = []
        current = 0
        for i, v in enumerate(values):
            if batched[i % len(batched)]:
                with sk.batch():
                    a.value = v + 1
                    a.value = v
                # the final value differs from the one before the batch: one call;
                # equal: at most one call, and only with the (unchanged) value
                if v != current:
                    expected.append(v)
                else:
                    if calls[len(expected) :]:
                        assert calls[len(expected) :] == [v]
                        expected.append(v)
            else:
                a.value = v
                if v != current:
                    expected.append(v)
            current = v
            assert calls == expected
        off()
