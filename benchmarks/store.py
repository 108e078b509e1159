"""Store benchmark: statekit's Store and State against foundation's StateManager and flet-asp.

Run ``python benchmarks/store.py`` (``--quick`` for a smoke run, ``--json
out.json`` to also save the numbers, ``--no-flet-asp`` to skip the separate
venv). One run, side by side, median µs per operation:

set + 1 listener
    ``store.set("n", i)`` with one listener on ``n``; foundation:
    ``update_state(n=i)`` with one observer; flet-asp: ``set("n", i)`` with
    one ``listen("n")``.
set + 1 selector
    the same write with a watched selector ``double = get("n") * 2``
    (foundation has no derived values).
deep path set
    ``set`` of a leaf 10 levels down (``l0/l1/.../l9/leaf``) with one listener
    on it (foundation's and flet-asp's states are flat).
patch of 10 ops
    ``store.patch`` of 10 ``replace`` ops; foundation: ``update_state`` of 10
    fields at once (the closest thing it has).
State field assignment
    ``cart.count = i`` on a ``sk.State`` (pydantic, ``validate_assignment``).
session with a 10-field State
    ``with sk.session(id): Form.get()`` for a fresh session id, a State of 10
    fields; foundation: ``StateManager(state=...)`` of a 10-field state;
    flet-asp: ``StateManager()`` and 10 atoms. µs each, and bytes each by
    tracemalloc over 100,000 sessions kept alive.

flet-asp needs ``flet<0.29``, which cannot live next to the project's flet, so
the script makes its own venv (``$STATEKIT_FLET_ASP_VENV``, default
``/tmp/statekit-bench-flet-asp``), installs ``flet-asp 'flet<0.29'`` there
with pip on first use, runs the same cases in a subprocess and merges its
figures into the table; if the install fails, the table notes say why.

Every library's results are checked (the listener saw every write, the
selector holds the right value, the document is what was written) before it
is timed; a library that fails a check is shown as ``x`` with the reason.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import statekit  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from utilities import fmt_us, per_call  # the shared timing helpers

CASES = ["set_listener", "set_selector", "deep_set", "patch10", "state_assign", "session"]
TITLES = {
    "set_listener": "set + 1 listener",
    "set_selector": "set + 1 selector",
    "deep_set": "deep path set (10 levels)",
    "patch10": "patch of 10 ops",
    "state_assign": "State field assignment (validated)",
    "session": "session with a 10-field State",
}
TARGETS = {"set_listener": 1.0e-6, "set_selector": 2.0e-6, "session": 20e-6}
SESSION_BYTES_TARGET = 2048
DEPTH = 10

Result = dict[str, Any]  # case -> seconds | "n/a: why" | "x: why"; plus "session_bytes"


class Wrong(Exception):
    """A library gave a wrong result: it is not timed."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Wrong(what)


def time_case(make: Callable[[], Callable[[], Any]], target: float, repeat: int) -> Any:
    try:
        return per_call(make(), target, repeat)
    except Wrong as exc:
        return f"x: {exc}"


def paired(
    out: Result, name: str, measure: Callable[[], Any], floor_of: Callable[[], float]
) -> None:
    """``out[name] = measure()``, with the floor timed just before and just after.

    The load of a shared machine moves from second to second; a case is only
    compared through its ratio to the floor measured around it.
    """
    before = floor_of()
    out[name] = measure()
    out[f"{name}:floor"] = (before + floor_of()) / 2


def sessions(make: Callable[[int], Any], count: int) -> tuple[float, float]:
    """Seconds per ``make(i)`` and traced bytes per kept result, over ``count`` calls."""
    kept: list[Any] = []
    gc.collect()
    start = time.perf_counter()
    for i in range(count):
        kept.append(make(i))
    seconds = (time.perf_counter() - start) / count
    del kept
    gc.collect()
    kept = []
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(count, 2 * count):
            kept.append(make(i))
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The list holding the results is the benchmark's, not the library's.
    return seconds, (after - before - sys.getsizeof(kept)) / count


def deep_doc() -> tuple[dict[str, Any], str]:
    doc: dict[str, Any] = {"leaf": 0}
    for level in reversed(range(DEPTH)):
        doc = {f"l{level}": doc, "sibling": level}
    return doc, "/".join(f"l{level}" for level in range(DEPTH)) + "/leaf"


# -- the floor: what a write that tells one listener costs in plain Python ------------------


def floor(target: float, repeat: int) -> float:
    """A dict copy with one key changed and one callback: the least a set + listener does."""
    state = {f"k{i}": i for i in range(10)}
    seen: list[int] = []
    counter = itertools.count()

    def run() -> None:
        nonlocal state
        n = next(counter)
        state = {**state, "k0": n}
        seen.append(state["k0"])
        if len(seen) > 1000:
            seen.clear()

    return per_call(run, target, repeat)


# -- statekit -------------------------------------------------------------------------------


def statekit_cases(target: float, repeat: int, count: int) -> Result:
    import statekit as sk

    out: Result = {}
    sk.new_app_scope("bench").__enter__()

    def base() -> float:
        return floor(target, repeat)

    def set_listener() -> Callable[[], Any]:
        store = sk.Store({"n": 0})
        seen: list[int] = []
        store.listen("n", seen.append)
        for i in range(1, 101):
            store.set("n", i)
        check(seen == list(range(1, 101)), "listener missed writes")
        counter = itertools.count(1_000)
        return lambda: store.set("n", next(counter))

    def set_selector() -> Callable[[], Any]:
        store = sk.Store({"n": 0})

        @store.selector("double")
        def double(get: Any) -> int:
            return get("n") * 2  # type: ignore[no-any-return]

        seen: list[int] = []
        store.listen("double", seen.append)
        for i in range(1, 101):
            store.set("n", i)
        check(seen == [2 * i for i in range(1, 101)], "selector listener missed values")
        check(double.value == 200, "selector value is stale")
        counter = itertools.count(1_000)
        return lambda: store.set("n", next(counter))

    def deep_set() -> Callable[[], Any]:
        doc, path = deep_doc()
        store = sk.Store(doc)
        seen: list[int] = []
        store.listen(path, seen.append)
        store.set(path, 1)
        check(seen == [1] and store.get(path) == 1, "deep listener")
        counter = itertools.count(2)
        return lambda: store.set(path, next(counter))

    def patch10() -> Callable[[], Any]:
        store = sk.Store({f"k{i}": 0 for i in range(10)})
        counter = itertools.count(1)

        def run() -> None:
            n = next(counter)
            store.patch([{"op": "replace", "path": f"/k{i}", "value": n} for i in range(10)])

        run()
        check(store.snapshot() == {f"k{i}": 1 for i in range(10)}, "patch result")
        return run

    def state_assign() -> Callable[[], Any] | str:
        if not hasattr(sk, "State"):
            return "n/a: sk.State not available"

        class Counter(sk.State):  # type: ignore[misc,name-defined]
            count: int = 0

        cart = Counter.get()
        cart.count = 1
        check(Counter.get().count == 1, "assignment lost")
        try:
            cart.count = "not a number"
        except Exception:
            pass
        else:
            raise Wrong("validation did not refuse a str")
        check(cart.count == 1, "failed validation changed the value")
        counter = itertools.count(2)

        def run() -> None:
            cart.count = next(counter)

        return run

    for name, make in [
        ("set_listener", set_listener),
        ("set_selector", set_selector),
        ("deep_set", deep_set),
        ("patch10", patch10),
    ]:
        paired(out, name, lambda make=make: time_case(make, target, repeat), base)
    try:
        made = state_assign()
        if isinstance(made, str):
            out["state_assign"] = made
        else:
            paired(out, "state_assign", lambda: per_call(made, target, repeat), base)
    except Wrong as exc:
        out["state_assign"] = f"x: {exc}"

    if hasattr(sk, "State"):

        class Form(sk.State, scope="session"):  # type: ignore[misc,name-defined,call-arg]
            f0: int = 0
            f1: int = 1
            f2: int = 2
            f3: int = 3
            f4: int = 4
            f5: int = 5
            f6: int = 6
            f7: int = 7
            f8: int = 8
            f9: int = 9

        def new_session(i: int) -> Any:
            with sk.session(f"s{i}") as scope:
                form = Form.get()
            return scope, form

        _, form = new_session(-1)
        check(form.f9 == 9, "session State fields")
        with sk.session("s-1"):
            check(Form.get() is form, "one State per session")

        def measure() -> float:
            seconds, out["session_bytes"] = sessions(new_session, count)
            return seconds

        paired(out, "session", measure, base)
        sk.app_scope().dispose()
    else:
        out["session"] = "n/a: sk.State not available"
    return out


# -- provide-foundation ---------------------------------------------------------------------


def foundation_cases(target: float, repeat: int, count: int) -> Result:
    try:
        import attrs
        from provide.foundation.state import ImmutableState, StateManager
    except ImportError:
        return {name: "not installed" for name in CASES}

    def state_class(n: int) -> Any:
        return attrs.make_class(
            f"F{n}",
            {f"k{i}": attrs.field(default=i) for i in range(n)},
            bases=(ImmutableState,),
            frozen=True,
            slots=True,
            kw_only=True,
        )

    one, ten = state_class(1), state_class(10)
    out: Result = {}

    def base() -> float:
        return floor(target, repeat)

    def set_listener() -> Callable[[], Any]:
        manager = StateManager(state=one())
        seen: list[int] = []
        manager.add_observer(lambda old, new: seen.append(new.k0))
        for i in range(1, 101):
            manager.update_state(k0=i)
        check(seen == list(range(1, 101)), "observer missed writes")
        counter = itertools.count(1_000)
        return lambda: manager.update_state(k0=next(counter))

    def patch10() -> Callable[[], Any]:
        manager = StateManager(state=ten())
        counter = itertools.count(1)

        def run() -> None:
            n = next(counter)
            manager.update_state(**{f"k{i}": n for i in range(10)})

        run()
        check(all(getattr(manager.current_state, f"k{i}") == 1 for i in range(10)), "update")
        return run

    paired(out, "set_listener", lambda: time_case(set_listener, target, repeat), base)
    out["set_selector"] = "n/a: no derived values"
    out["deep_set"] = "n/a: flat attrs state"
    paired(out, "patch10", lambda: time_case(patch10, target, repeat), base)
    out["state_assign"] = "n/a: no validation"

    def new_session(i: int) -> Any:
        return StateManager(state=ten())

    check(new_session(0).current_state.k9 == 9, "10-field state")

    def measure() -> float:
        seconds, out["session_bytes"] = sessions(new_session, count)
        return seconds

    paired(out, "session", measure, base)
    return out


# -- flet-asp, in its own venv --------------------------------------------------------------

# Runs under the flet-asp venv's python; it imports this file (stdlib only at
# the top) for the same timing, floor, pairing and checks as the other columns.
FLET_ASP_RUNNER = textwrap.dedent(
    """
    import importlib.metadata, itertools, json, sys
    # Imported first: store.py puts benchmarks/ at the front of sys.path, where
    # benchmarks/flet.py would shadow the flet package flet_asp imports.
    import flet_asp as fa
    sys.path.append(sys.argv[4])
    from store import check, floor, paired, sessions, time_case

    target, repeat, count = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    out = {}

    def base():
        return floor(target, repeat)

    def set_listener():
        sm = fa.StateManager()
        sm.atom("n", 0)
        seen = []
        sm.listen("n", seen.append, immediate=False)
        for i in range(1, 101):
            sm.set("n", i)
        check(seen == list(range(1, 101)), "listener missed writes")
        counter = itertools.count(1000)
        return lambda: sm.set("n", next(counter))

    def set_selector():
        sm = fa.StateManager()
        sm.atom("n", 0)
        sm.add_selector("double", lambda get: get("n") * 2)
        seen = []
        sm.listen("double", seen.append, immediate=False)
        for i in range(1, 101):
            sm.set("n", i)
        check(sm.get("double") == 200, f"selector value {sm.get('double')!r}")
        check(seen[-1:] == [200], "selector listener")
        counter = itertools.count(1000)
        return lambda: sm.set("n", next(counter))

    paired(out, "set_listener", lambda: time_case(set_listener, target, repeat), base)
    paired(out, "set_selector", lambda: time_case(set_selector, target, repeat), base)
    out["deep_set"] = "n/a: flat keys"
    out["patch10"] = "n/a: no patches"
    out["state_assign"] = "n/a: no typed state"

    def new_session(i):
        sm = fa.StateManager()
        for k in range(10):
            sm.atom(f"f{k}", k)
        return sm

    check(new_session(0).get("f9") == 9, "10 atoms")

    def measure():
        seconds, out["session_bytes"] = sessions(new_session, count)
        return seconds

    paired(out, "session", measure, base)
    version = importlib.metadata.version
    out["versions"] = f"flet-asp {version('flet-asp')}, flet {version('flet')}"
    print(json.dumps(out))
    """
)


def flet_asp_cases(target: float, repeat: int, count: int) -> tuple[Result, str]:
    venv = Path(os.environ.get("STATEKIT_FLET_ASP_VENV", "/tmp/statekit-bench-flet-asp"))
    python = venv / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        probe = subprocess.run(
            [str(python), "-c", "import flet_asp"], capture_output=True, check=False
        )
        if probe.returncode != 0:
            install = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "flet-asp", "flet<0.29"],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if install.returncode != 0:
                error = (install.stderr.strip().splitlines() or ["(no output)"])[-1]
                return {}, f"flet-asp: `pip install flet-asp 'flet<0.29'` failed: {error}"
        run = subprocess.run(
            [
                str(python),
                "-c",
                FLET_ASP_RUNNER,
                str(target),
                str(repeat),
                str(count),
                str(Path(__file__).resolve().parent),
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {}, f"flet-asp: could not run in {venv}: {exc}"
    if run.returncode != 0:
        error = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {}, f"flet-asp: the runner failed: {error}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return result, f"flet-asp: {result.pop('versions')}, in {venv}, as a subprocess"


# -- report ---------------------------------------------------------------------------------


def cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return fmt_us(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--no-flet-asp", action="store_true", help="skip the flet-asp venv")
    args = parser.parse_args()
    target, repeat, count = (0.03, 2, 10_000) if args.quick else (0.2, 5, 100_000)

    from statekit import _engine

    # Compiled and pure figures differ by about 2x: say which one ran.
    notes: list[str] = [f"statekit: {_engine.describe()}"]
    results: dict[str, Result] = {}
    results["statekit"] = statekit_cases(target, repeat, count)
    results["provide-foundation"] = foundation_cases(target, repeat, count)
    if args.no_flet_asp:
        notes.append("flet-asp: skipped (--no-flet-asp)")
    else:
        fa, note = flet_asp_cases(target, repeat, count)
        notes.append(note)
        if fa:
            results["flet-asp"] = fa

    libs = list(results)
    # Each library is timed in its own process at its own moment; on a shared
    # machine the load moves between them, so each figure is also given as a
    # multiple of the floor (a dict copy and one callback) timed in the same
    # process just before and after it (in brackets); the comparison column
    # uses those multiples.
    print(f"| case | {' | '.join(libs)} | best peer / statekit (floor-relative) | target |")
    print(f"| --- |{' --- |' * len(libs)} --- | --- |")

    def relative(lib: str, case: str) -> float | None:
        value, base = results[lib].get(case), results[lib].get(f"{case}:floor")
        if isinstance(value, float) and isinstance(base, float):
            return value / base
        return None

    for case in CASES:
        row = []
        for lib in libs:
            value = results[lib].get(case, "—")
            times = relative(lib, case)
            row.append(cell(value) + (f" ({times:.0f}x)" if times is not None else ""))
        ours = relative("statekit", case)
        peers = [r for lib in libs[1:] if (r := relative(lib, case)) is not None]
        ratio = f"{min(peers) / ours:.2f}" if peers and ours else "—"
        goal = TARGETS.get(case)
        measured = results["statekit"].get(case)
        verdict = "—"
        if goal is not None and isinstance(measured, float):
            verdict = f"≤ {fmt_us(goal)}: {'met' if measured <= goal else 'MISSED'}"
        print(f"| {TITLES[case]} | {' | '.join(row)} | {ratio} | {verdict} |")
    row = []
    for lib in libs:
        size = results[lib].get("session_bytes")
        row.append(f"{size:,.0f} B" if isinstance(size, float) else "—")
    ours_bytes = results["statekit"].get("session_bytes")
    verdict = "—"
    if isinstance(ours_bytes, float):
        met = ours_bytes <= SESSION_BYTES_TARGET
        verdict = f"≤ 2 KB: {'met' if met else 'MISSED'}"
    print(f"| session memory (tracemalloc, {count:,} kept) | {' | '.join(row)} | — | {verdict} |")
    print()
    for note in notes:
        print(f"- {note}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "notes": notes}, indent=2))


if __name__ == "__main__":
    main()
