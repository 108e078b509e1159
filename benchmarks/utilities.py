"""Utilities benchmark: ImmutableState, StateMachine and ConfigManager against their peers.

Run ``python benchmarks/utilities.py`` (``--quick`` for a smoke run,
``--json out.json`` to also save the numbers). One run, side by side:

ImmutableState.update
    A one-field update of a state with 10 / 1,000 / 100,000 fields, against
    provide-foundation's ``with_changes`` (an attrs class with that many
    fields; its 100,000 case is skipped: the anchors measured 121 s per
    call), ``pyrsistent.pmap.set``, ``immutables.Map.set`` and a dict copy
    (``{**d, k: v}``). Median µs per update.

StateMachine toggle
    A two-state machine toggled by an event, transitions per second:
    statekit (constructor form with ``send``, class syntax with the event
    method, and ``transition(target)``), provide-foundation's
    ``StateMachine.transition``, transitions' ``Machine`` and
    ``LockedMachine``, python-statemachine, and a floor
    (``state = table[state]``).

ConfigManager
    One ``update_config`` that changes one key of a 20-key config, in memory
    and durable (journal in a temporary directory on the project's disk,
    fdatasync per commit): p50 / p99 latency per commit; provide-foundation's
    ``ConfigManager.update_config`` in memory alongside.

A peer that is not installed is reported as ``not installed``. Absolute
times on a shared machine move by ±25%; compare within one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import statekit  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

TARGET = 0.2
REPEAT = 5


def per_call(stmt: Callable[[], Any], target: float, repeat: int) -> float:
    """Median seconds per call of ``stmt`` (timeit-style, garbage collector off)."""
    timer = timeit.Timer(stmt)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= target / 5 or number >= 1 << 24:
            break
        number *= 2
    number = max(1, int(number * target / max(elapsed, 1e-9) * 1.0))
    gc.disable()
    try:
        times = [timer.timeit(number) / number for _ in range(repeat)]
    finally:
        gc.enable()
    return statistics.median(times)


def fmt_us(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    us = seconds * 1e6
    if us >= 1000:
        return f"{us / 1000:,.1f} ms"
    return f"{us:.2f} µs"


# -- ImmutableState --------------------------------------------------------------------------


def immutable_cases(sizes: list[int]) -> dict[str, dict[int, float | str | None]]:
    results: dict[str, dict[int, float | str | None]] = {}

    def run(name: str, make: Callable[[int], Callable[[], Any] | str]) -> None:
        row: dict[int, float | str | None] = {}
        for n in sizes:
            try:
                fn = make(n)
            except ImportError:
                row[n] = "not installed"
                continue
            if isinstance(fn, str):
                row[n] = fn
                continue
            # Slow peers get a shorter budget so the run stays bounded.
            row[n] = per_call(fn, TARGET, REPEAT)
        results[name] = row

    def statekit_update(n: int) -> Callable[[], Any]:
        from statekit.immutable import ImmutableState

        s = ImmutableState({f"k{i}": i for i in range(n)})
        return lambda: s.update(k3=-1)

    def foundation(n: int) -> Callable[[], Any] | str:
        if n > 1_000:
            return "skipped (121 s/call in ANCHORS)"
        import attrs
        from provide.foundation.state import ImmutableState as FState

        cls = attrs.make_class(
            f"S{n}",
            {f"k{i}": attrs.field(default=i) for i in range(n)},
            bases=(FState,),
            frozen=True,
            slots=True,
            kw_only=True,
        )
        s = cls()
        return lambda: s.with_changes(k3=-1)

    def pyrsistent_set(n: int) -> Callable[[], Any]:
        import pyrsistent

        m = pyrsistent.pmap({f"k{i}": i for i in range(n)})
        return lambda: m.set("k3", -1)

    def immutables_set(n: int) -> Callable[[], Any]:
        import immutables

        m = immutables.Map({f"k{i}": i for i in range(n)})
        return lambda: m.set("k3", -1)

    def dict_copy(n: int) -> Callable[[], Any]:
        d = {f"k{i}": i for i in range(n)}
        return lambda: {**d, "k3": -1}

    run("statekit ImmutableState.update", statekit_update)
    run("provide-foundation with_changes", foundation)
    run("pyrsistent pmap.set", pyrsistent_set)
    run("immutables Map.set", immutables_set)
    run("dict copy {**d, k: v}", dict_copy)
    return results


# -- StateMachine ----------------------------------------------------------------------------


def machine_cases() -> dict[str, float | str]:
    results: dict[str, float | str] = {}

    def run(name: str, make: Callable[[], Callable[[], Any]]) -> None:
        try:
            fn = make()
        except ImportError:
            results[name] = "not installed"
            return
        results[name] = 1.0 / per_call(fn, TARGET, REPEAT)

    def floor() -> Callable[[], Any]:
        table = {"off": "on", "on": "off"}
        box = ["off"]

        def toggle() -> None:
            box[0] = table[box[0]]

        return toggle

    def sk_send() -> Callable[[], Any]:
        from statekit.machine import StateMachine

        m = StateMachine(initial_state="off", events={"toggle": {"off": "on", "on": "off"}})
        return lambda: m.send("toggle")

    def sk_class() -> Callable[[], Any]:
        from statekit.machine import State, StateMachine

        class Toggle(StateMachine[str]):
            off = State(initial=True)
            on = State()
            toggle = off.to(on) | on.to(off)

        m = Toggle()
        return m.toggle

    def sk_transition() -> Callable[[], Any]:
        from statekit.machine import StateMachine

        m = StateMachine(initial_state="off", transitions={"off": ["on"], "on": ["off"]})
        other = {"off": "on", "on": "off"}
        return lambda: m.transition(other[m.current_state])

    def sk_hooks() -> Callable[[], Any]:
        from statekit.machine import StateMachine

        count = [0]

        def hook() -> None:
            count[0] += 1

        m = StateMachine(
            initial_state="off",
            events={"toggle": {"off": "on", "on": "off"}},
            on_enter={"on": hook, "off": hook},
        )
        m.subscribe(lambda t: None)
        return lambda: m.send("toggle")

    def foundation() -> Callable[[], Any]:
        from provide.foundation.state.base import StateMachine as FMachine
        from provide.foundation.state.base import StateTransition

        class Toggle(FMachine[str, str]):
            def reset(self) -> None:
                self._current_state = "off"

        m = Toggle("off")
        m.add_transition(StateTransition(from_state="off", event="toggle", to_state="on"))
        m.add_transition(StateTransition(from_state="on", event="toggle", to_state="off"))
        return lambda: m.transition("toggle")

    def transitions_lib(locked: bool) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            from transitions import Machine
            from transitions.extensions import LockedMachine

            class Model:
                pass

            model = Model()
            (LockedMachine if locked else Machine)(
                model=model,
                states=["off", "on"],
                transitions=[
                    {"trigger": "toggle", "source": "off", "dest": "on"},
                    {"trigger": "toggle", "source": "on", "dest": "off"},
                ],
                initial="off",
                auto_transitions=False,
            )
            return model.toggle  # type: ignore[attr-defined,no-any-return]

        return make

    def python_statemachine() -> Callable[[], Any]:
        from statemachine import State, StateMachine

        class Toggle(StateMachine):  # type: ignore[misc]
            off = State(initial=True)
            on = State()
            toggle = off.to(on) | on.to(off)

        m = Toggle()
        return lambda: m.send("toggle")

    run("dict-lookup floor", floor)
    run("statekit send(event)", sk_send)
    run("statekit class syntax m.toggle()", sk_class)
    run("statekit transition(target)", sk_transition)
    run("statekit send + 2 entry hooks + listener", sk_hooks)
    run("provide-foundation transition(event)", foundation)
    run("transitions Machine", transitions_lib(False))
    run("transitions LockedMachine", transitions_lib(True))
    run("python-statemachine send", python_statemachine)
    return results


# -- ConfigManager ---------------------------------------------------------------------------


def latencies(fn: Callable[[int], Any], count: int) -> tuple[float, float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def config_cases(count: int) -> dict[str, tuple[float, float] | str]:
    from statekit.config import ConfigManager

    base = {f"key{i}": i for i in range(20)}
    results: dict[str, tuple[float, float] | str] = {}

    mem = ConfigManager(initial_config=base)
    latencies(lambda i: mem.update_config({"key3": -i - 1}), 200)  # warm up
    results["statekit in memory"] = latencies(lambda i: mem.update_config({"key3": i}), count)

    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        durable = ConfigManager(initial_config=base, path=Path(tmp) / "cfg.journal")
        latencies(lambda i: durable.update_config({"key3": -i - 1}), 20)
        results["statekit durable (fdatasync)"] = latencies(
            lambda i: durable.update_config({"key3": i}, author="bench"), count
        )
        durable.close()

    try:
        from provide.foundation.state import ConfigManager as FManager
        from provide.foundation.state import VersionedConfig as FConfig
    except ImportError:
        results["provide-foundation in memory"] = "not installed"
    else:
        fm = FManager()
        fm.register_config(FConfig(data=dict(base), config_name="bench"))
        results["provide-foundation in memory"] = latencies(
            lambda i: fm.update_config("bench", key3=i), count
        )
    return results


# -- report ------------------------------------------------------------------------------------


def main() -> None:
    global TARGET, REPEAT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        TARGET, REPEAT = 0.03, 3
    sizes = [10, 1_000, 100_000]
    commits = 300 if args.quick else 2_000

    print(f"Python {sys.version.split()[0]}, one run, median of {REPEAT} repeats\n")
    imm = immutable_cases(sizes)
    print("### ImmutableState.update: one field changed (µs per update)\n")
    print("| library | " + " | ".join(f"{n:,} fields" for n in sizes) + " |")
    print("| --- | " + " | ".join("---:" for _ in sizes) + " |")
    for name, row in imm.items():
        cells = [v if isinstance(v, str) else fmt_us(v) for v in (row[n] for n in sizes)]
        print(f"| {name} | " + " | ".join(cells) + " |")

    fsm = machine_cases()
    print("\n### StateMachine: two-state toggle (transitions per second)\n")
    print("| library | transitions/s |")
    print("| --- | ---: |")
    for name, value in fsm.items():
        print(f"| {name} | {value if isinstance(value, str) else f'{value:,.0f}'} |")

    cfg = config_cases(commits)
    print(f"\n### ConfigManager.update_config: one key of 20 ({commits:,} commits)\n")
    print("| implementation | p50 | p99 |")
    print("| --- | ---: | ---: |")
    for name, value in cfg.items():
        if isinstance(value, str):
            print(f"| {name} | {value} | |")
        else:
            print(f"| {name} | {fmt_us(value[0])} | {fmt_us(value[1])} |")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "immutable": {k: {str(n): v for n, v in r.items()} for k, r in imm.items()},
                    "machine": fsm,
                    "config": cfg,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
