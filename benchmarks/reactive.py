"""Reactive-core benchmark: statekit against reaktiv, observ, psygnal and a floor.

Run ``python benchmarks/reactive.py`` (``make bench``); ``--help`` lists the flags.

Cases
    The js-reactivity-benchmark cases (milomg/js-reactivity-benchmark,
    ``src/kairo/*.ts`` and ``src/cellxBench.ts``), translated one to one:
    the same graph shapes, the same writes, batches and reads per iteration,
    the same effects. Sizes follow ``ANCHORS.md`` §3: deep is a chain of
    1,000 computeds (upstream: 50), broad has 1,000 branches (upstream: 50),
    diamond 1,000 arms (upstream: 5, and 50 writes per iteration instead of
    500 so that one iteration stays comparable); triangle (10), mux (100 heads),
    repeated (30 reads), unstable, avoidable and cellx (1,000 layers) keep the
    upstream sizes. ``creation`` builds 10,000 atoms and 10,000 computeds
    (computed ``i`` reads atom ``i``) and reads every computed once.

The floor
    Plain Python on a precomputed topological schedule, no tracking: each
    node keeps its value in a plain attribute; a write marks the direct
    subscribers, and one pass over the write's precomputed schedule calls the
    *same* per-node functions the libraries get, only for marked nodes, cutting
    off when a value is ``==`` the old one. Effects are deferred to the end of
    the outermost batch; a read inside a batch first runs the pending pass.
    Dependencies are written by hand in each case (the libraries ignore them).

Correctness
    Before timing, every library runs each case on a separate graph whose
    per-node functions count their runs. The values read (the reads the
    upstream case asserts on) and the run count of every computed and effect
    must equal the floor's, iteration by iteration (the floor itself is checked
    against the upstream formulas). A mismatch or an exception marks the
    library ``x`` for that case and it is not timed. Computeds that a correct
    lazy library legitimately skips (unstable's ``double``/``inverse``, whose
    readers change) are not counted.

Timing
    timeit-style: after the check, a fresh graph without counters is built,
    one iteration warms it up and calibrates the inner loop count so that a
    repeat lasts ``--target`` seconds, then ``--repeat`` repeats (3 when one
    iteration alone exceeds two targets) run with the garbage collector off;
    the result is the median µs per iteration. cellx measures one propagation
    per freshly built graph (as upstream; the build is not timed), so its
    result is the median over twice ``--repeat`` builds. Each library's repeats
    alternate with repeats of the floor (one floor graph per case), and its
    ratio is its median over the median of those floor repeats, which cancels
    most of a shared machine's drift; the floor column is the median of all
    floor repeats. cellx first runs 4, 8, 16, ... layers and gives up (``slow``) when
    the time stops growing roughly linearly, since a library without an
    "already notified" guard is exponential there.

Depth
    Separately, at the default recursion limit (1,000), each library builds a
    chain of 100, 250, 1,000, 10,000 and 100,000 computeds under an effect,
    writes the head and reads the tail; the deepest correct length is
    reported. The cases themselves run with a raised recursion limit on a
    thread with a large stack so that recursive peers can be measured at all.

Adapters
    Per-node functions read ``node.value``: native for statekit and the
    floor. reaktiv's signals are subclassed with ``value = property(get)``
    (no extra Python frame); observ's ``ref``/``computed`` are wrapped in a
    one-line property (one extra frame per read); observ effects are
    ``watch_effect`` watchers and a batch flushes its scheduler. psygnal has
    no computed values or effects: its ``SignalInstance`` carries change
    notifications between minimal cells that capture their dependencies on
    the first run and recompute eagerly when a dependency emits (no batching,
    no re-tracking).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECURSION_LIMIT = 1000
CASE_RECURSION_LIMIT = 200_000
STACK_SIZE = 1024 * 1024 * 1024  # 1 GiB of (lazily committed) stack for the worker thread
DEPTHS = (100, 250, 1000, 10_000, 100_000)

Obs = list[Any]
Iteration = Callable[[Obs], None]
Wrap = Callable[[Callable[[], Any], str | None], Callable[[], Any]]
_read_value = attrgetter("value")


# --------------------------------------------------------------------------- counting


def plain(fn: Callable[[], Any], key: str | None) -> Callable[[], Any]:
    """The timing-mode wrapper: the per-node function itself."""
    return fn


class Counts:
    """The check-mode wrapper: each wrapped function counts its runs under ``key``."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}

    def wrap(self, fn: Callable[[], Any], key: str | None) -> Callable[[], Any]:
        if key is None:
            return fn
        runs = self.runs
        if key in runs:
            raise ValueError(f"duplicate counter {key}")
        runs[key] = 0

        def counted() -> Any:
            runs[key] += 1
            return fn()

        return counted

    def take(self) -> dict[str, int]:
        """Return the counts since the last call and reset them."""
        out = dict(self.runs)
        for key in self.runs:
            self.runs[key] = 0
        return out


# --------------------------------------------------------------------------- adapters


class Graph:
    """What a case builds on: atoms, computeds, effects, batches, reads.

    ``deps`` are the node's dependencies written by hand; only the floor uses
    them. Nodes expose ``.value`` (read) and atoms ``.set(v)`` (write).
    """

    read: Callable[[Any], Any] = staticmethod(_read_value)

    def atom(self, value: Any) -> Any:
        raise NotImplementedError

    def computed(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    def effect(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def batch(self) -> Any:
        raise NotImplementedError

    def seal(self) -> None:
        """Called once the graph is built (the floor precomputes its schedules)."""

    def dispose(self) -> None:
        """Stop the effects so the graph can be collected."""


class Lib:
    """A library under test: a name, a version and a way to make graphs."""

    name = ""
    version = ""
    note = ""
    error: str | None = None

    def graph(self) -> Graph:
        raise NotImplementedError


# ---- the floor


class _FAtom:
    __slots__ = ("g", "idx", "sched", "subs", "value")

    def set(self, value: Any) -> None:
        if value == self.value:
            return
        self.value = value
        g = self.g
        g.pending.append(self)
        if not g.depth:
            g.flush()


class _FNode:
    __slots__ = ("deps", "fn", "idx", "mark", "queued", "subs", "value")


class FloorGraph(Graph):
    def __init__(self) -> None:
        self.nodes: list[_FNode] = []  # computeds, in creation (= topological) order
        self.effects: list[_FNode] = []
        self.atoms: list[_FAtom] = []
        self.pending: list[_FAtom] = []
        self.queue: list[_FNode] = []
        self.depth = 0
        self.epoch = 0
        self.count = 0
        self.all_sched: tuple[list[_FNode], list[_FNode]] = ([], [])

    def atom(self, value: Any) -> _FAtom:
        a = _FAtom()
        a.value = value
        a.subs = []
        a.sched = None
        a.g = self
        a.idx = self.count
        self.count += 1
        self.atoms.append(a)
        return a

    def _node(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> _FNode:
        n = _FNode()
        n.fn = fn
        n.deps = deps
        n.subs = []
        n.mark = 0
        n.queued = False
        n.idx = self.count
        self.count += 1
        for d in deps:
            d.subs.append(n)
        n.value = fn()
        return n

    def computed(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> _FNode:
        n = self._node(fn, deps)
        self.nodes.append(n)
        return n

    def effect(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> None:
        self.effects.append(self._node(fn, deps))

    def seal(self) -> None:
        # Only nodes an effect depends on are scheduled: a lazy library never
        # recomputes a computed that nobody watches (e.g. triangle's last link).
        observed: dict[int, Any] = {id(e): e for e in self.effects}
        stack: list[Any] = list(self.effects)
        while stack:
            for d in stack.pop().deps:
                if isinstance(d, _FNode) and id(d) not in observed:
                    observed[id(d)] = d
                    stack.append(d)
        effects = set(map(id, self.effects))
        for a in self.atoms:
            seen: dict[int, _FNode] = {}
            stack: list[Any] = [a]
            while stack:
                for s in stack.pop().subs:
                    if id(s) not in seen:
                        seen[id(s)] = s
                        stack.append(s)
            order = sorted((n for n in seen.values() if id(n) in observed), key=attrgetter("idx"))
            a.sched = (
                [n for n in order if id(n) not in effects],
                [n for n in order if id(n) in effects],
            )
        self.all_sched = ([n for n in self.nodes if id(n) in observed], self.effects)

    def flush(self) -> None:
        pending = self.pending
        self.epoch += 1
        e = self.epoch
        nodes, effects = pending[0].sched if len(pending) == 1 else self.all_sched
        for a in pending:
            for s in a.subs:
                s.mark = e
        pending.clear()
        for n in nodes:
            if n.mark == e:
                v = n.fn()
                if v != n.value:
                    n.value = v
                    for s in n.subs:
                        s.mark = e
        if self.depth:
            queue = self.queue
            for n in effects:
                if n.mark == e and not n.queued:
                    n.queued = True
                    queue.append(n)
        else:
            for n in effects:
                if n.mark == e:
                    n.fn()

    def read(self, node: Any) -> Any:  # type: ignore[override]
        if self.pending:
            self.flush()
        return node.value

    def batch(self) -> FloorGraph:
        return self

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if not self.depth:
            if self.pending:
                self.flush()
            queue = self.queue
            if queue:
                for n in queue:
                    n.queued = False
                    n.fn()
                queue.clear()


class FloorLib(Lib):
    name = "floor"
    version = "-"
    note = "hand-written schedule"

    def graph(self) -> Graph:
        return FloorGraph()


# ---- statekit


class StatekitGraph(Graph):
    def __init__(self, sk: Any) -> None:
        self.sk = sk
        self.batch = sk.batch  # type: ignore[method-assign]
        self.effects: list[Any] = []

    def atom(self, value: Any) -> Any:
        return self.sk.atom(value)

    def computed(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> Any:
        return self.sk.computed(fn)

    def effect(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> None:
        self.effects.append(self.sk.effect(fn))

    def dispose(self) -> None:
        for e in self.effects:
            e.dispose()
        self.effects.clear()


class StatekitLib(Lib):
    name = "statekit"

    def __init__(self) -> None:
        try:
            import statekit as sk
        except ImportError:
            sys.path.insert(0, str(ROOT / "src"))
            try:
                import statekit as sk
            except ImportError as exc:
                self.error = f"not importable ({exc})"
                return
        try:
            sk.atom, sk.computed, sk.effect, sk.batch
        except AttributeError as exc:
            self.error = f"incomplete ({exc})"
            return
        self.sk = sk
        self.version = getattr(sk, "__version__", "?")
        self.note = engine_mode()

    def graph(self) -> Graph:
        return StatekitGraph(self.sk)


def engine_mode() -> str:
    """Which statekit engine runs: figures differ by 2-4x between the modes."""
    try:
        from statekit import _engine
    except ImportError:
        return ""
    describe = getattr(_engine, "describe", None)
    return describe() if describe is not None else "engine: pure Python"


# ---- reaktiv


class ReaktivLib(Lib):
    name = "reaktiv"
    note = "Signal/Computed/Effect/batch"

    def __init__(self) -> None:
        try:
            import reaktiv
            from reaktiv.signal import ComputeSignal
        except ImportError:
            self.error = "not installed"
            return
        self.version = _dist_version("reaktiv")

        class RSignal(reaktiv.Signal):  # type: ignore[misc]
            __slots__ = ()
            value = property(reaktiv.Signal.get)

        class RComputed(ComputeSignal):  # type: ignore[misc]
            __slots__ = ()
            value = property(ComputeSignal.get)

        self.rx = reaktiv
        self.RSignal = RSignal
        self.RComputed = RComputed

    def graph(self) -> Graph:
        lib = self

        class G(Graph):
            def __init__(self) -> None:
                self.effects: list[Any] = []
                self.batch = lib.rx.batch  # type: ignore[method-assign]

            def atom(self, value: Any) -> Any:
                return lib.RSignal(value)

            def computed(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> Any:
                return lib.RComputed(fn)

            def effect(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> None:
                self.effects.append(lib.rx.Effect(fn))

            def dispose(self) -> None:
                for e in self.effects:
                    e.dispose()
                self.effects.clear()

        return G()


# ---- observ


class ObservLib(Lib):
    name = "observ"
    note = "ref/computed/watch_effect, batch = scheduler.flush()"

    def __init__(self) -> None:
        try:
            import observ
        except ImportError:
            self.error = "not installed"
            return
        self.version = _dist_version("observ")
        self.ob = observ
        scheduler = observ.scheduler
        scheduler.register_request_flush(lambda: None)  # flushed by hand below
        flush = scheduler.flush
        state = self

        self.depth = 0

        class ORef:
            __slots__ = ("r",)

            def __init__(self, value: Any) -> None:
                self.r = observ.ref(value)

            @property
            def value(self) -> Any:
                return self.r["value"]

            def set(self, value: Any) -> None:
                self.r["value"] = value
                if not state.depth:
                    flush()

        class OComputed:
            __slots__ = ("g",)

            def __init__(self, fn: Callable[[], Any]) -> None:
                self.g = observ.computed(fn)

            @property
            def value(self) -> Any:
                return self.g()

        class Batch:
            def __enter__(self) -> None:
                state.depth += 1

            def __exit__(self, *exc: object) -> None:
                state.depth -= 1
                if not state.depth:
                    flush()

        self.ORef = ORef
        self.OComputed = OComputed
        self.the_batch = Batch()

    def graph(self) -> Graph:
        lib = self

        class G(Graph):
            def __init__(self) -> None:
                self.watchers: list[Any] = []

            def atom(self, value: Any) -> Any:
                return lib.ORef(value)

            def computed(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> Any:
                return lib.OComputed(fn)

            def effect(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> None:
                self.watchers.append(lib.ob.watch_effect(fn))

            def batch(self) -> Any:
                return lib.the_batch

            def dispose(self) -> None:
                for w in self.watchers:
                    w.stop()
                self.watchers.clear()

        return G()


# ---- psygnal


class PsygnalLib(Lib):
    name = "psygnal"
    note = "SignalInstance-driven cells (no computed in psygnal)"

    def __init__(self) -> None:
        try:
            import psygnal
        except ImportError:
            self.error = "not installed"
            return
        self.version = _dist_version("psygnal")
        self.ps = psygnal
        collecting: list[list[Any] | None] = [None]
        self.collecting = collecting
        SignalInstance = psygnal.SignalInstance

        class Cell:
            """A value whose changes are announced by a psygnal SignalInstance."""

            __slots__ = ("__weakref__", "_v", "changed", "fn")

            def __init__(self) -> None:
                self.changed = SignalInstance(())

            @property
            def value(self) -> Any:
                c = collecting[0]
                if c is not None:
                    c.append(self)
                return self._v

            def set(self, value: Any) -> None:
                if value != self._v:
                    self._v = value
                    self.changed.emit()

            def update(self) -> None:
                value = self.fn()
                if value != self._v:
                    self._v = value
                    self.changed.emit()

        self.Cell = Cell

    def _track(self, fn: Callable[[], Any]) -> tuple[Any, list[Any]]:
        prev = self.collecting[0]
        seen: list[Any] = []
        self.collecting[0] = seen
        try:
            value = fn()
        finally:
            self.collecting[0] = prev
        deps = list({id(d): d for d in seen}.values())
        return value, deps

    def graph(self) -> Graph:
        lib = self

        class NoBatch:
            def __enter__(self) -> None:
                pass

            def __exit__(self, *exc: object) -> None:
                pass

        no_batch = NoBatch()

        class G(Graph):
            def __init__(self) -> None:
                self.cells: list[Any] = []

            def atom(self, value: Any) -> Any:
                c = lib.Cell()
                c._v = value
                self.cells.append(c)
                return c

            def computed(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> Any:
                c = lib.Cell()
                c.fn = fn
                c._v, found = lib._track(fn)
                for d in found:
                    d.changed.connect(c.update)
                self.cells.append(c)
                return c

            def effect(self, fn: Callable[[], Any], deps: tuple[Any, ...]) -> None:
                _, found = lib._track(fn)
                for d in found:
                    d.changed.connect(fn)

            def batch(self) -> Any:
                return no_batch

            def dispose(self) -> None:
                for c in self.cells:
                    c.changed.disconnect()
                self.cells.clear()

        return G()


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


LIBS: dict[str, Callable[[], Lib]] = {
    "statekit": StatekitLib,
    "reaktiv": ReaktivLib,
    "observ": ObservLib,
    "psygnal": PsygnalLib,
}


# --------------------------------------------------------------------------- cases


def _add(node: Any, k: int) -> Callable[[], Any]:
    return lambda: node.value + k


def _touch(node: Any, counter: list[int]) -> Callable[[], None]:
    def effect() -> None:
        _ = node.value
        counter[0] += 1

    return effect


def _sum_of(nodes: list[Any]) -> Callable[[], int]:
    def total() -> int:
        s = 0
        for x in nodes:
            s += x.value
        return s

    return total


def busy() -> None:
    a = 0
    for _ in range(100):
        a += 1


DEEP_LEN = 1000
BROAD_WIDTH = 1000
DIAMOND_WIDTH = 1000
DIAMOND_WRITES = 50  # upstream: 500 writes on 5 arms
TRIANGLE_WIDTH = 10
MUX_HEADS = 100
REPEATED_SIZE = 30
CELLX_LAYERS = 1000
CREATION_N = 10_000


def deep(g: Graph, w: Wrap, n: int = DEEP_LEN) -> Iteration:
    """kairo/deep.ts: a chain of ``n`` computeds under one effect, 50 batched writes."""
    head = g.atom(0)
    current = head
    for i in range(n):
        current = g.computed(w(_add(current, 1), f"c{i}"), (current,))
    tail = current
    counter = [0]
    g.effect(w(_touch(tail, counter), "effect"), (tail,))
    g.seal()
    read, batch = g.read, g.batch

    def iteration(obs: Obs) -> None:
        with batch():
            head.set(1)
        counter[0] = 0
        for i in range(50):
            with batch():
                head.set(i)
            obs.append(read(tail))

    return iteration


def broad(g: Graph, w: Wrap, n: int = BROAD_WIDTH) -> Iteration:
    """kairo/broad.ts: ``n`` branches head → +i → +1 → effect, 50 batched writes."""
    head = g.atom(0)
    last = head
    counter = [0]
    for i in range(n):
        current = g.computed(w(_add(head, i), f"a{i}"), (head,))
        current2 = g.computed(w(_add(current, 1), f"b{i}"), (current,))
        g.effect(w(_touch(current2, counter), f"e{i}"), (current2,))
        last = current2
    g.seal()
    read, batch = g.read, g.batch

    def iteration(obs: Obs) -> None:
        with batch():
            head.set(1)
        counter[0] = 0
        for i in range(50):
            with batch():
                head.set(i)
            obs.append(read(last))

    return iteration


def diamond(g: Graph, w: Wrap, width: int = DIAMOND_WIDTH) -> Iteration:
    """kairo/diamond.ts: ``width`` arms head → +1 joined by one sum.

    Upstream makes 500 batched writes per iteration on 5 arms; with 1,000 arms
    each write is 200 times heavier, so an iteration makes 50 (like deep and broad).
    """
    head = g.atom(0)
    current = [g.computed(w(_add(head, 1), f"arm{i}"), (head,)) for i in range(width)]
    total = g.computed(w(_sum_of(current), "sum"), tuple(current))
    counter = [0]
    g.effect(w(_touch(total, counter), "effect"), (total,))
    g.seal()
    read, batch = g.read, g.batch

    def iteration(obs: Obs) -> None:
        with batch():
            head.set(1)
        obs.append(read(total))
        counter[0] = 0
        for i in range(DIAMOND_WRITES):
            with batch():
                head.set(i)
            obs.append(read(total))

    return iteration


def triangle(g: Graph, w: Wrap, width: int = TRIANGLE_WIDTH) -> Iteration:
    """kairo/triangle.ts: a chain of ``width`` whose every link feeds one sum."""
    head = g.atom(0)
    current = head
    nodes: list[Any] = []
    for i in range(width):
        nodes.append(current)
        current = g.computed(w(_add(current, 1), f"c{i}"), (current,))
    total = g.computed(w(_sum_of(nodes), "sum"), tuple(nodes))
    counter = [0]
    g.effect(w(_touch(total, counter), "effect"), (total,))
    g.seal()
    read, batch = g.read, g.batch

    def iteration(obs: Obs) -> None:
        with batch():
            head.set(1)
            obs.append(read(total))
        counter[0] = 0
        for i in range(100):
            with batch():
                head.set(i)
                obs.append(read(total))
        obs.append(counter[0])  # upstream asserts callCounter.count === 100

    return iteration


def mux(g: Graph, w: Wrap, n: int = MUX_HEADS) -> Iteration:
    """kairo/mux.ts: 100 heads muxed into one dict, split into 100 (+1) outputs."""
    heads = [g.atom(0) for _ in range(n)]

    def muxed() -> dict[int, Any]:
        return {i: h.value for i, h in enumerate(heads)}

    mx = g.computed(w(muxed, "mux"), tuple(heads))

    def pick(index: int) -> Callable[[], Any]:
        return lambda: mx.value[index]

    split = [g.computed(w(pick(i), f"pick{i}"), (mx,)) for i in range(n)]
    split = [g.computed(w(_add(x, 1), f"inc{i}"), (x,)) for i, x in enumerate(split)]
    for i, x in enumerate(split):
        g.effect(w(_touch(x, [0]), f"effect{i}"), (x,))
    g.seal()
    read = g.read

    def iteration(obs: Obs) -> None:
        for i in range(10):
            heads[i].set(i)
            obs.append(read(split[i]))
        for i in range(10):
            heads[i].set(i * 2)
            obs.append(read(split[i]))

    return iteration


def repeated(g: Graph, w: Wrap, size: int = REPEATED_SIZE) -> Iteration:
    """kairo/repeated.ts: one computed reading the head ``size`` times."""
    head = g.atom(0)

    def current_fn() -> int:
        result = 0
        for _ in range(size):
            result += head.value
        return result

    current = g.computed(w(current_fn, "current"), (head,))
    counter = [0]
    g.effect(w(_touch(current, counter), "effect"), (current,))
    g.seal()
    read, batch = g.read, g.batch

    def iteration(obs: Obs) -> None:
        with batch():
            head.set(1)
        obs.append(read(current))
        counter[0] = 0
        for i in range(100):
            with batch():
                head.set(i)
            obs.append(read(current))

    return iteration


def unstable(g: Graph, w: Wrap) -> Iteration:
    """kairo/unstable.ts: a computed whose dependencies flip with the head's parity."""
    head = g.atom(0)
    double = g.computed(w(lambda: head.value * 2, None), (head,))
    inverse = g.computed(w(lambda: -head.value, None), (head,))

    def current_fn() -> int:
        result = 0
        for _ in range(20):
            result += double.value if head.value % 2 else inverse.value
        return result

    current = g.computed(w(current_fn, "current"), (head, double, inverse))
    counter = [0]
    g.effect(w(_touch(current, counter), "effect"), (current,))
    g.seal()
    read, batch = g.read, g.batch

    def iteration(obs: Obs) -> None:
        with batch():
            head.set(1)
        obs.append(read(current))
        counter[0] = 0
        for i in range(100):
            with batch():
                head.set(i)
        obs.append(read(current))  # one read per iteration (upstream's assert is commented out)

    return iteration


def avoidable(g: Graph, w: Wrap) -> Iteration:
    """kairo/avoidable.ts: a change that stops at computed2 (always 0)."""
    head = g.atom(0)
    c1 = g.computed(w(lambda: head.value, "c1"), (head,))
    c2 = g.computed(w(lambda: (c1.value, 0)[1], "c2"), (c1,))

    def c3_fn() -> int:
        busy()
        return c2.value + 1

    c3 = g.computed(w(c3_fn, "c3"), (c2,))
    c4 = g.computed(w(lambda: c3.value + 2, "c4"), (c3,))
    c5 = g.computed(w(lambda: c4.value + 3, "c5"), (c4,))

    def effect() -> None:
        _ = c5.value
        busy()

    g.effect(w(effect, "effect"), (c5,))
    g.seal()
    read, batch = g.read, g.batch

    def iteration(obs: Obs) -> None:
        head.set(1)
        obs.append(read(c5))
        for i in range(1000):
            with batch():
                head.set(i)
                obs.append(read(c5))

    return iteration


def cellx(g: Graph, w: Wrap, layers: int = CELLX_LAYERS) -> Iteration:
    """cellxBench.ts: ``layers`` layers of 4 cross-wired computeds, each under an effect.

    Returns a one-shot iteration (the reads before, the batched write of the 4
    heads, the reads after); a fresh graph is built for every measurement.
    """
    start = [g.atom(1), g.atom(2), g.atom(3), g.atom(4)]
    layer = start
    for i in range(layers):
        m1, m2, m3, m4 = layer
        s = [
            g.computed(w(_get(m2), f"{i}.1"), (m2,)),
            g.computed(w(_diff(m1, m3), f"{i}.2"), (m1, m3)),
            g.computed(w(_plus(m2, m4), f"{i}.3"), (m2, m4)),
            g.computed(w(_get(m3), f"{i}.4"), (m3,)),
        ]
        for k, node in enumerate(s):
            g.effect(w(_reader(node), f"{i}.e{k + 1}"), (node,))
        layer = s
    end = layer
    g.seal()
    read, batch = g.read, g.batch

    def iteration(obs: Obs) -> None:
        obs.extend([read(end[0]), read(end[1]), read(end[2]), read(end[3])])
        with batch():
            start[0].set(4)
            start[1].set(3)
            start[2].set(2)
            start[3].set(1)
        obs.extend([read(end[0]), read(end[1]), read(end[2]), read(end[3])])

    return iteration


def _get(a: Any) -> Callable[[], Any]:
    return lambda: a.value


def _diff(a: Any, b: Any) -> Callable[[], Any]:
    return lambda: a.value - b.value


def _plus(a: Any, b: Any) -> Callable[[], Any]:
    return lambda: a.value + b.value


def _reader(node: Any) -> Callable[[], None]:
    def effect() -> None:
        _ = node.value

    return effect


def creation(lib: Lib, w: Wrap, n: int = CREATION_N) -> Iteration:
    """10,000 atoms and 10,000 computeds (computed i = atom i + 1), each read once."""

    def iteration(obs: Obs) -> None:
        g = lib.graph()
        atoms = [g.atom(i) for i in range(n)]
        comps = [g.computed(_add(a, 1), (a,)) for a in atoms]
        total = 0
        read = g.read
        for c in comps:
            total += read(c)
        obs.append(total)

    return iteration


@dataclass
class Case:
    name: str
    label: str
    expected: Callable[[], Obs]  # the upstream assertions, for the floor's self-check
    build: Callable[[Graph, Wrap], Iteration] | None = None
    build_lib: Callable[[Lib, Wrap], Iteration] | None = None
    oneshot: bool = False


def _tri_expected() -> Obs:
    w = TRIANGLE_WIDTH
    const = w * (w + 1) // 2
    return [const, *[const - w + i * w for i in range(100)], 100]


CASES: list[Case] = [
    Case("deep", f"deep ({DEEP_LEN} chain)", lambda: [DEEP_LEN + i for i in range(50)], deep),
    Case("broad", f"broad ({BROAD_WIDTH})", lambda: [i + BROAD_WIDTH for i in range(50)], broad),
    Case(
        "diamond",
        f"diamond ({DIAMOND_WIDTH})",
        lambda: [2 * DIAMOND_WIDTH] + [(i + 1) * DIAMOND_WIDTH for i in range(DIAMOND_WRITES)],
        diamond,
    ),
    Case("triangle", f"triangle ({TRIANGLE_WIDTH})", _tri_expected, triangle),
    Case(
        "mux",
        f"mux ({MUX_HEADS})",
        lambda: [i + 1 for i in range(10)] + [2 * i + 1 for i in range(10)],
        mux,
    ),
    Case(
        "repeated",
        f"repeated ({REPEATED_SIZE})",
        lambda: [REPEATED_SIZE] + [i * REPEATED_SIZE for i in range(100)],
        repeated,
    ),
    Case("unstable", "unstable", lambda: [40, 40 * 99], unstable),
    Case("avoidable", "avoidable", lambda: [6] * 1001, avoidable),
    Case(
        "cellx",
        f"cellx ({CELLX_LAYERS})",
        lambda: [-3, -6, -2, 2, -2, -4, 2, 3],
        cellx,
        oneshot=True,
    ),
    Case(
        "creation",
        f"creation ({CREATION_N:,}+{CREATION_N:,})",
        lambda: [CREATION_N * (CREATION_N - 1) // 2 + CREATION_N],
        build_lib=creation,
    ),
]


# --------------------------------------------------------------------------- running


@dataclass
class Result:
    status: str  # ok | wrong | error | slow | not installed
    us: float | None = None
    detail: str = ""
    ratio: float | None = None  # against the floor timed alternately with this library
    floor_samples: list[float] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    inner: int = 0


@dataclass
class Settings:
    repeat: int
    target: float
    check_iters: int
    cellx_budget: float


class WrongResult(Exception):
    pass


def _make(case: Case, lib: Lib, w: Wrap) -> tuple[Iteration, Graph | None]:
    if case.build_lib is not None:
        return case.build_lib(lib, w), None
    g = lib.graph()
    return case.build(g, w), g  # type: ignore[misc]


Trace = list[tuple[Obs, dict[str, int]]]


def run_check(case: Case, lib: Lib, iters: int, ref: Trace | None = None) -> Trace:
    """Run ``iters`` iterations on a counting graph; return reads and run counts.

    With ``ref``, stop after the first iteration that differs from it.
    """
    counts = Counts()
    trace: Trace = []
    if case.oneshot:
        for _ in range(iters):
            counts = Counts()
            it, g = _make(case, lib, counts.wrap)
            counts.take()
            obs: Obs = []
            it(obs)
            trace.append((obs, counts.take()))
            if g is not None:
                g.dispose()
            if ref is not None and compare(trace, ref[: len(trace)]):
                break
        return trace
    it, g = _make(case, lib, counts.wrap)
    counts.take()
    for _ in range(iters):
        obs = []
        it(obs)
        trace.append((obs, counts.take()))
        if ref is not None and compare(trace, ref[: len(trace)]):
            break
    if g is not None:
        g.dispose()
    return trace


def compare(trace: Trace, ref: Trace) -> str:
    """Return '' when ``trace`` matches ``ref``, else a short reason."""
    for k, ((obs, runs), (robs, rruns)) in enumerate(zip(trace, ref, strict=True)):
        if obs != robs:
            for j, (a, b) in enumerate(zip(obs, robs, strict=False)):
                if a != b:
                    return f"iteration {k + 1}, read {j + 1}: got {a!r}, expected {b!r}"
            return f"iteration {k + 1}: {len(obs)} reads, expected {len(robs)}"
        if runs != rruns:
            diff = [key for key in rruns if runs.get(key) != rruns[key]]
            more = sum(runs.get(key, 0) for key in diff)
            less = sum(rruns[key] for key in diff)
            first = diff[0]
            return (
                f"iteration {k + 1}: run counts differ on {len(diff)} node(s), "
                f"{more} runs vs {less} expected (e.g. {first}: {runs.get(first)} vs {rruns[first]})"
            )
    return ""


def _timed(it: Iteration, n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            it([])
        return time.perf_counter() - t0
    finally:
        gc.enable()


class Timer:
    """A timing-mode graph of one case for one library, calibrated, ready to sample."""

    def __init__(self, case: Case, lib: Lib, s: Settings) -> None:
        self.case, self.lib = case, lib
        self.it: Iteration | None = None
        self.g: Graph | None = None
        self.n = 1
        self.long = False
        if case.oneshot:
            return
        self.it, self.g = _make(case, lib, plain)
        first = _timed(self.it, 1)  # warm-up and calibration
        self.n = max(1, round(s.target / first)) if first > 0 else 1000
        self.long = first > 2 * s.target  # one iteration alone is long

    def sample(self) -> float:
        """Seconds per iteration over one repeat."""
        if self.it is None:  # one-shot: a fresh graph per sample, its build untimed
            it, g = _make(self.case, self.lib, plain)
            t = _timed(it, 1)
            if g is not None:
                g.dispose()
            return t
        return _timed(self.it, self.n) / self.n

    def close(self) -> None:
        if self.g is not None:
            self.g.dispose()


def measure(case: Case, lib: Lib, s: Settings, floor: Timer) -> tuple[Result, list[float]]:
    """Time ``lib``, alternating its repeats with repeats of the floor.

    Returns the result (its ratio is against the floor samples taken in
    between, which cancels most of a shared machine's drift) and those floor
    samples.
    """
    timer = Timer(case, lib, s)
    repeats = 2 * s.repeat if case.oneshot else s.repeat  # single propagations are noisy
    if timer.long:
        repeats = min(repeats, 3)
    samples: list[float] = []
    floor_samples: list[float] = []
    try:
        for _ in range(repeats):
            floor_samples.append(floor.sample())
            samples.append(timer.sample())
        floor_samples.append(floor.sample())
    finally:
        timer.close()
    us = statistics.median(samples) * 1e6
    ratio = statistics.median(samples) / statistics.median(floor_samples)
    return Result("ok", us, ratio=ratio, samples=samples, inner=timer.n), floor_samples


def _cellx_time(lib: Lib, layers: int) -> float:
    """Best of two single propagations through freshly built cellx graphs."""
    best = float("inf")
    for _ in range(2):
        g = lib.graph()
        it = cellx(g, plain, layers)
        best = min(best, _timed(it, 1))
        g.dispose()
    return best


def cellx_guard(lib: Lib, budget: float) -> str:
    """Run cellx at growing sizes; return '' if 1,000 layers will finish, else why not.

    A linear library doubles its time when the layers double; one without an
    "already notified" guard grows exponentially and would never finish 1,000.
    """
    prev: tuple[int, float] | None = None
    for layers in (4, 8, 16, 32, 64, 128, 256, 512):
        t = _cellx_time(lib, layers)
        if prev is not None:
            growth = t / max(prev[1], 1e-9)
            if t > budget or (t > 0.05 and growth > 3.5):
                return (
                    f"super-linear: {prev[0]} layers {prev[1] * 1e3:.1f} ms, "
                    f"{layers} layers {t * 1e3:.1f} ms"
                )
        prev = (layers, t)
    return ""


def _recorder(node: Any, seen: list[Any]) -> Callable[[], None]:
    def effect() -> None:
        seen.append(node.value)

    return effect


def depth_probe(lib: Lib) -> tuple[int, str]:
    """Deepest chain (from DEPTHS) that builds and propagates at the default recursion limit."""
    deepest, why = 0, ""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(DEFAULT_RECURSION_LIMIT)
    try:
        for n in DEPTHS:
            g = lib.graph()
            try:
                head = g.atom(0)
                current = head
                for _ in range(n):
                    current = g.computed(_add(current, 1), (current,))
                tail = current
                seen: list[Any] = []
                g.effect(_recorder(tail, seen), (tail,))
                g.seal()
                head.set(1)
                value = g.read(tail)
                if value != n + 1 or not seen or seen[-1] != n + 1:
                    why = f"{n}: wrong value {value!r}"
                    break
            except RecursionError:
                why = f"{n}: RecursionError"
                break
            except Exception as exc:
                why = f"{n}: {type(exc).__name__}: {exc}"[:120]
                break
            finally:
                try:
                    g.dispose()
                except Exception:
                    pass
            deepest = n
    finally:
        sys.setrecursionlimit(old)
    return deepest, why


# --------------------------------------------------------------------------- report


def _fmt_us(us: float) -> str:
    if us >= 100:
        return f"{us:,.0f}"
    if us >= 10:
        return f"{us:.1f}"
    return f"{us:.2f}"


def cell(r: Result) -> str:
    if r.status == "ok" and r.us is not None:
        if r.ratio is not None:
            return f"{_fmt_us(r.us)} ×{r.ratio:.1f}"  # noqa: RUF001
        return _fmt_us(r.us)
    return {"wrong": "x", "error": "x (error)", "slow": "slow"}.get(r.status, r.status)


def render(
    results: dict[str, dict[str, Result]], names: list[str], depth: dict[str, tuple[int, str]]
) -> str:
    head = ["case", "floor µs", *[f"{n} µs ×floor" for n in names]]  # noqa: RUF001
    rows = []
    for case in CASES:
        if case.name not in results:
            continue
        row = results[case.name]
        fl = row.get("floor")
        rows.append(
            [
                case.label,
                cell(fl) if fl else "-",
                *[cell(row[n]) if n in row else "-" for n in names],
            ]
        )
    if depth:
        rows.append(
            [
                "deepest chain",
                f"{depth.get('floor', (0, ''))[0]:,}",
                *[f"{depth[n][0]:,}" if n in depth else "-" for n in names],
            ]
        )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(wd) for c, wd in zip(r, widths, strict=True)) + " |"

    out = [line(head), "| " + " | ".join("-" * wd for wd in widths) + " |"]
    out += [line(r) for r in rows]
    notes = []
    for case in CASES:
        for n, r in results.get(case.name, {}).items():
            if r.status in ("wrong", "error", "slow"):
                notes.append(f"- {case.name} / {n}: {r.status}: {r.detail}")
    for n, (_, why) in depth.items():
        if why:
            notes.append(f"- deepest chain / {n}: next length failed ({why})")
    if notes:
        out += ["", *notes]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer, shorter repeats (smoke run)")
    p.add_argument("--cases", help="comma-separated case names, e.g. deep,broad")
    p.add_argument("--libs", help="comma-separated libraries (floor always runs)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--repeat", type=int, help="repeats per measurement (default 5, quick 2)")
    p.add_argument("--target", type=float, help="seconds per repeat (default 0.2, quick 0.03)")
    p.add_argument("--no-depth", action="store_true", help="skip the deepest-chain probe")
    args = p.parse_args(argv)

    s = Settings(
        repeat=args.repeat or (2 if args.quick else 5),
        target=args.target or (0.03 if args.quick else 0.2),
        check_iters=2,
        cellx_budget=2.0 if args.quick else 5.0,
    )
    cases = CASES
    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = set(wanted) - {c.name for c in CASES}
        if unknown:
            p.error(f"unknown case(s): {', '.join(sorted(unknown))}")
        cases = [c for c in CASES if c.name in wanted]
    lib_names = list(LIBS)
    if args.libs:
        lib_names = [n.strip() for n in args.libs.split(",") if n.strip() and n.strip() != "floor"]
        unknown = set(lib_names) - set(LIBS)
        if unknown:
            p.error(f"unknown librar(y/ies): {', '.join(sorted(unknown))}")

    floor = FloorLib()
    libs: list[Lib] = [floor]
    print(f"Python {platform.python_version()} on {platform.machine()}, {_cpus()} CPU(s)")
    for name in lib_names:
        lib = LIBS[name]()
        libs.append(lib)
        status = lib.error or f"{lib.version}" + (f" ({lib.note})" if lib.note else "")
        print(f"  {name:9} {status}")
    print()

    out: dict[str, Any] = {}

    def work() -> None:
        out["results"], out["depth"] = run_all(cases, libs, s, not args.no_depth)

    t0 = time.perf_counter()
    threading.stack_size(STACK_SIZE)
    worker = threading.Thread(target=_guarded(work, out), name="bench")
    worker.start()
    worker.join()
    if "exc" in out:
        raise out["exc"]
    elapsed = time.perf_counter() - t0

    names = [lib.name for lib in libs[1:]]
    print()
    print(render(out["results"], names, out["depth"]))
    print(
        "\nµs per iteration (median); ×floor = the library's median over the median of the"  # noqa: RUF001
        f" floor repeats run alternately with it. Total {elapsed:.0f} s."
    )

    if args.json:
        data = {
            "python": platform.python_version(),
            "cpus": _cpus(),
            "argv": sys.argv,
            "settings": s.__dict__,
            "libs": {lib.name: lib.error or lib.version for lib in libs},
            "engine": engine_mode(),
            "cases": {
                case: {
                    n: {
                        "status": r.status,
                        "us": r.us,
                        "ratio": r.ratio,
                        "detail": r.detail,
                        "samples_us": [x * 1e6 for x in r.samples],
                        "paired_floor_samples_us": [x * 1e6 for x in r.floor_samples],
                        "inner_loops": r.inner,
                    }
                    for n, r in row.items()
                }
                for case, row in out["results"].items()
            },
            "deepest_chain": {
                n: {"deepest": d, "failed": why} for n, (d, why) in out["depth"].items()
            },
            "elapsed_s": elapsed,
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _guarded(fn: Callable[[], None], out: dict[str, Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            out["exc"] = exc

    return run


@contextmanager
def _recursion_limit(n: int) -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(n)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def run_all(
    cases: list[Case], libs: list[Lib], s: Settings, with_depth: bool
) -> tuple[dict[str, dict[str, Result]], dict[str, tuple[int, str]]]:
    results: dict[str, dict[str, Result]] = {}
    floor = libs[0]
    with _recursion_limit(CASE_RECURSION_LIMIT):
        for case in cases:
            row: dict[str, Result] = {}
            results[case.name] = row
            ref = run_check(case, floor, s.check_iters)
            want = case.expected()
            for k, (obs, _) in enumerate(ref):
                if obs != want:
                    raise AssertionError(f"floor is wrong on {case.name} (iteration {k + 1})")
            floor_timer = Timer(case, floor, s)
            floor_samples: list[float] = []
            for lib in libs[1:]:
                if lib.error:
                    row[lib.name] = Result("not installed" if "install" in lib.error else "n/a")
                    continue
                row[lib.name] = r = _check_and_measure(case, lib, ref, s, floor_timer)
                floor_samples += r.floor_samples
                _progress(case, lib, r)
            if not floor_samples:  # no library was timed: time the floor alone
                floor_samples = [floor_timer.sample() for _ in range(s.repeat)]
            floor_timer.close()
            row["floor"] = Result(
                "ok",
                statistics.median(floor_samples) * 1e6,
                samples=floor_samples,
                inner=floor_timer.n,
            )
            _progress(case, floor, row["floor"])
    depth: dict[str, tuple[int, str]] = {}
    if with_depth:
        print("\ndeepest chain at the default recursion limit:", flush=True)
        for lib in libs:
            if lib.error:
                continue
            with redirect_stderr(io.StringIO()):  # reaktiv prints the RecursionErrors it catches
                depth[lib.name] = depth_probe(lib)
            d, why = depth[lib.name]
            print(f"  {lib.name:9} {d:>7,}" + (f"   (next: {why})" if why else ""), flush=True)
    return results, depth


def _check_and_measure(case: Case, lib: Lib, ref: Trace, s: Settings, floor_timer: Timer) -> Result:
    try:
        if case.name == "cellx":
            why = cellx_guard(lib, s.cellx_budget)
            if why:
                return Result("slow", detail=why)
        trace = run_check(case, lib, s.check_iters, ref)
    except RecursionError:
        return Result("error", detail="RecursionError")
    except Exception as exc:
        return Result("error", detail=f"{type(exc).__name__}: {exc}"[:200])
    why = compare(trace, ref[: len(trace)])
    if why:
        return Result("wrong", detail=why)
    try:
        result, result.floor_samples = measure(case, lib, s, floor_timer)
        return result
    except Exception as exc:
        return Result("error", detail=f"while timing: {type(exc).__name__}: {exc}"[:200])


def _progress(case: Case, lib: Lib, r: Result) -> None:
    extra = f"  [{r.inner} loops × {len(r.samples)}]" if r.samples else ""  # noqa: RUF001
    detail = f"  ({r.detail})" if r.detail else ""
    print(f"{case.name:10} {lib.name:9} {cell(r):>18}{extra}{detail}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
