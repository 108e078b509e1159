"""Deep and wide graphs at the default recursion limit.

No recursion anywhere in propagation: a chain of 100,000 computeds builds,
reads and propagates with ``sys.getrecursionlimit()`` left at 1000, and so do
100,000 effects on one atom and a 10,000-wide fan-in.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

import statekit as sk

CHAIN = 100_000


@pytest.fixture(autouse=True)
def default_recursion_limit() -> Iterator[None]:
    assert sys.getrecursionlimit() == 1000, "these tests must run at the default limit"
    yield
    assert sys.getrecursionlimit() == 1000, "statekit must not raise the recursion limit"


def build_chain(head: Any, length: int, runs: list[int]) -> list[Any]:
    chain: list[Any] = []
    prev = head
    for i in range(length):

        def step(prev: Any = prev) -> int:
            runs[0] += 1
            return prev.value + 1

        prev = sk.computed(step, name=f"c{i}")
        chain.append(prev)
    return chain


@pytest.mark.slow
def test_chain_of_100k_computeds_lazy_read_and_propagate() -> None:
    runs = [0]
    head = sk.atom(0, name="head")
    chain = build_chain(head, CHAIN, runs)
    last = chain[-1]
    assert runs[0] == 0  # building evaluates nothing
    assert last.value == CHAIN
    first = runs[0]  # exactly CHAIN is pinned by test_first_read_runs_each_link_once
    assert CHAIN <= first <= 2 * CHAIN
    assert last.value == CHAIN
    assert runs[0] == first  # cached
    head.value = 1
    assert runs[0] == first  # nobody watches: lazy
    assert last.value == CHAIN + 1
    assert runs[0] == first + CHAIN  # a pull after a write: each link exactly once
    assert chain[CHAIN // 2].value == CHAIN // 2 + 2
    assert runs[0] == first + CHAIN


@pytest.mark.parametrize("length", [50, 120])
def test_first_read_runs_each_link_once(length: int) -> None:
    """Within the engine's nesting budget, a first read runs each computed once."""
    runs = [0]
    head = sk.atom(0, name="head")
    chain = build_chain(head, length, runs)
    assert chain[-1].value == length
    assert runs[0] == length


def test_first_read_of_a_chain_deeper_than_the_budget_runs_each_link_at_most_twice() -> None:
    """Past MAX_NESTING the engine unwinds and resumes: interrupted runs re-run once.

    This is the documented price of needing no recursion budget (docs/engine.md);
    every later write still runs each link exactly once.
    """
    runs = [0]
    head = sk.atom(0, name="head")
    chain = build_chain(head, 1000, runs)
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(chain[-1].value))
    assert seen == [1000]
    assert 1000 <= runs[0] <= 2000
    runs[0] = 0
    head.value = 1
    assert seen == [1000, 1001]
    assert runs[0] == 1000
    stop()


@pytest.mark.slow
def test_chain_of_100k_computeds_with_effect_propagates_on_write() -> None:
    runs = [0]
    head = sk.atom(0, name="head")
    chain = build_chain(head, CHAIN, runs)
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(chain[-1].value), name="tail")
    assert seen == [CHAIN]
    first = runs[0]
    assert CHAIN <= first <= 2 * CHAIN
    head.value = 5
    assert seen == [CHAIN, CHAIN + 5]
    assert runs[0] == first + CHAIN
    with sk.batch():
        head.value = 6
        head.value = 7
    assert seen == [CHAIN, CHAIN + 5, CHAIN + 7]
    assert runs[0] == first + 2 * CHAIN
    stop()
    head.value = 8
    assert seen == [CHAIN, CHAIN + 5, CHAIN + 7]
    assert runs[0] == first + 2 * CHAIN


@pytest.mark.slow
def test_chain_of_100k_with_cutoff_in_the_middle() -> None:
    runs = [0]
    head = sk.atom(0, name="head")
    half = build_chain(head, CHAIN // 2, runs)
    parity = sk.computed(lambda: half[-1].value % 2, name="parity")
    second = build_chain(parity, CHAIN // 2, runs)
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(second[-1].value))
    assert seen == [CHAIN // 2 + (CHAIN // 2) % 2]
    first = runs[0]
    assert CHAIN <= first <= 2 * CHAIN
    head.value = 2  # parity unchanged: the second half does not run
    assert runs[0] == first + CHAIN // 2
    assert len(seen) == 1
    head.value = 3
    assert runs[0] == first + CHAIN + CHAIN // 2
    assert seen[-1] == CHAIN // 2 + (CHAIN // 2 + 3) % 2
    assert len(seen) == 2
    stop()


@pytest.mark.slow
def test_chain_read_from_inside_a_computed_and_an_effect() -> None:
    runs = [0]
    head = sk.atom(0, name="head")
    chain = build_chain(head, CHAIN, runs)
    outer = sk.computed(lambda: chain[-1].value * 2, name="outer")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(outer.value + 1))
    assert seen == [2 * CHAIN + 1]
    first = runs[0]
    head.value = 1
    assert seen == [2 * CHAIN + 1, 2 * CHAIN + 3]
    assert runs[0] == first + CHAIN
    stop()


@pytest.mark.slow
def test_chain_of_100k_subscribed_at_the_tail() -> None:
    head = sk.atom(0, name="head")
    chain = build_chain(head, CHAIN, [0])
    calls: list[int] = []
    off = chain[-1].subscribe(calls.append)
    head.value = 10
    head.value = 11
    assert calls == [CHAIN + 10, CHAIN + 11]
    off()


@pytest.mark.slow
def test_100k_effects_on_one_atom() -> None:
    n = 100_000
    a = sk.atom(0, name="a")
    runs = [0]
    last_seen = [0] * n
    stops = []
    for i in range(n):

        def watch(i: int = i) -> None:
            runs[0] += 1
            last_seen[i] = a.value

        stops.append(sk.effect(watch))
    assert runs[0] == n
    a.value = 1
    assert runs[0] == 2 * n
    assert last_seen == [1] * n
    with sk.batch():
        a.value = 2
        a.value = 3
    assert runs[0] == 3 * n
    assert last_seen == [3] * n
    for stop in stops[: n // 2]:
        stop()
    a.value = 4
    assert runs[0] == 3 * n + n // 2
    assert last_seen[: n // 2] == [3] * (n // 2)
    assert last_seen[n // 2 :] == [4] * (n - n // 2)
    for stop in stops[n // 2 :]:
        stop()
    a.value = 5
    assert runs[0] == 3 * n + n // 2


@pytest.mark.slow
def test_100k_listeners_on_one_atom() -> None:
    n = 100_000
    a = sk.atom(0, name="a")
    total = [0]

    def add(v: int) -> None:
        total[0] += v

    offs = [a.subscribe(add) for _ in range(n)]
    a.value = 2
    assert total[0] == 2 * n
    for off in offs:
        off()
    a.value = 3
    assert total[0] == 2 * n


def test_10k_wide_fan_in() -> None:
    width = 10_000
    atoms = [sk.atom(i, name=f"a{i}") for i in range(width)]
    runs = [0]

    def _total() -> int:
        runs[0] += 1
        return sum(a.value for a in atoms)

    total = sk.computed(_total, name="total")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(total.value))
    base = width * (width - 1) // 2
    assert seen == [base]
    atoms[1234].value = 1234 + 10
    assert seen == [base, base + 10]
    assert runs[0] == 2
    with sk.batch():
        for a in atoms:
            a.update(lambda n: n + 1)
    assert seen == [base, base + 10, base + 10 + width]
    assert runs[0] == 3
    stop()


def test_10k_wide_fan_out_and_back_in() -> None:
    width = 10_000
    head = sk.atom(0, name="head")
    runs = [0]
    mids = []
    for i in range(width):

        def mid(i: int = i) -> int:
            runs[0] += 1
            return head.value + i

        mids.append(sk.computed(mid, name=f"m{i}"))
    total = sk.computed(lambda: sum(m.value for m in mids), name="total")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(total.value))
    base = width * (width - 1) // 2
    head.value = 1
    assert seen == [base, base + width]
    assert runs[0] == 2 * width
    stop()


def test_deep_dynamic_switch() -> None:
    """Switching a long chain in and out of a computed's dependencies."""
    length = 20_000
    runs = [0]
    head = sk.atom(0, name="head")
    chain = build_chain(head, length, runs)
    use_chain = sk.atom(True, name="use_chain")
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(chain[-1].value if use_chain.value else -1))
    assert seen == [length]
    first = runs[0]
    use_chain.value = False
    head.value = 1  # the chain is no longer watched: nothing runs
    assert runs[0] == first
    assert seen == [length, -1]
    use_chain.value = True
    assert seen == [length, -1, length + 1]
    assert runs[0] == first + length
    stop()
