"""Flet adapter benchmark: bound-control updates per second, memory per session.

Run ``python benchmarks/flet.py`` (``--quick`` for a smoke run).

Updates
    One real ``flet.Session`` with a connection that msgpack-encodes every
    message exactly as Flet's socket server does (encoding is most of the
    cost of an update and what refreshes Flet's diff snapshots) and drops the
    bytes. A ``Text`` is updated ``N`` times, as code of the session (an event
    handler would do the same):

    * ``hand-written``: ``text.value = str(i); text.update()``;
    * ``statekit bind``: ``count.value = i`` with ``bind(count, text)``;
    * ``bind, computed``: ``count.value = i`` with ``bind(lambda: f"n={count.value}", text)``.

    Before timing, each variant's messages are checked: exactly one
    PATCH_CONTROL per update, carrying the new value, and the control ends
    with the last value. Median of ``--repeat`` runs; the ratio is against
    the hand-written median. Target: ``bind`` <= 1.5 x hand-written.

Memory
    ``--sessions`` sessions (1,000), each running a ``main`` that adds 10
    ``Text`` controls: hand-written (values set by hand) against statekit
    (each control bound to a session atom, plus one ``sk.State`` instance).
    tracemalloc measures the growth per session, then every session is
    closed and collected, and what is left is reported (it must be ~0 for
    statekit: closing a session frees its scope, bindings and state).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file is named flet.py: drop its folder from the path, or it would
# shadow the flet package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT / "tests"))  # the offline Flet harness
try:
    import statekit  # noqa: F401
except ImportError:  # pragma: no cover - running from a plain checkout
    sys.path.insert(0, str(ROOT / "src"))

# Imports after the path fix above.
import flet as ft  # noqa: E402
import msgpack  # noqa: E402

import statekit as sk  # noqa: E402
import statekit.flet as skf  # noqa: E402
from flet_harness import OfflineConnection, OfflineSession, _encode, settle  # noqa: E402


class EncodingConnection(OfflineConnection):
    """Encodes like Flet's server, keeps only a count (the decode would dominate)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, keep: bool = False) -> None:
        super().__init__(loop)
        self.keep = keep
        self.sent = 0

    def send_message(self, message: Any) -> None:
        if self.keep:
            super().send_message(message)
            return
        msgpack.packb([message.action, message.body], default=_encode)
        self.sent += 1


async def new_session(keep: bool = False) -> OfflineSession:
    conn = EncodingConnection(asyncio.get_running_loop(), keep)
    return OfflineSession(conn)


# ---------------------------------------------------------------- updates


def hand_written(text: Any, n: int) -> None:
    for i in range(n):
        text.value = str(i)
        text.update()


def via_bind(count: Any, n: int) -> None:
    for i in range(1, n + 1):
        count.value = i


async def variant(name: str, n: int, keep: bool) -> tuple[float, OfflineSession, Any]:
    s = await new_session(keep)
    text = ft.Text("start")
    s.run(lambda: s.page.add(text))
    count = sk.atom(0, name="count", scope="session")
    if name == "hand-written":
        body = lambda: hand_written(text, n)  # noqa: E731
    else:
        source: Any = count if name == "statekit bind" else (lambda: f"n={count.value}")
        s.run(lambda: skf.bind(source, text))
        body = lambda: via_bind(count, n)  # noqa: E731
    if keep:
        s.clear()
    gc.collect()
    gc.disable()
    start = time.perf_counter()
    s.run(body)
    elapsed = time.perf_counter() - start
    gc.enable()
    return elapsed, s, text


def expected(name: str, n: int) -> list[str]:
    if name == "hand-written":
        return [str(i) for i in range(n)]
    if name == "statekit bind":
        return [str(i) for i in range(1, n + 1)]
    return [f"n={i}" for i in range(1, n + 1)]


async def check(name: str) -> None:
    n = 50
    _, s, text = await variant(name, n, keep=True)
    want = expected(name, n)
    assert s.sent(text) == want, f"{name}: sent {s.sent(text)[:5]}..."
    patches = [b for b in s.patches() if b["id"] == text._i]
    assert len(patches) == n, f"{name}: {len(patches)} PATCH_CONTROL for {n} updates"
    assert text.value == want[-1]
    await s.close()


async def updates(n: int, repeat: int) -> list[tuple[str, float]]:
    names = ["hand-written", "statekit bind", "bind, computed"]
    for name in names:
        await check(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeat):
        for name in names:  # interleaved, so machine drift hits all alike
            elapsed, s, _text = await variant(name, n, keep=False)
            assert s.conn.sent >= n  # type: ignore[attr-defined]
            times[name].append(elapsed)
            await s.close()
    return [(name, statistics.median(times[name])) for name in names]


# ---------------------------------------------------------------- memory


class Profile(sk.State, scope="session"):
    name: str = "guest"
    visits: int = 0


labels = [sk.atom(f"label {i}", name=f"label{i}", scope="session") for i in range(10)]


def plain_main(page: ft.Page) -> None:
    page.add(*[ft.Text(f"label {i}") for i in range(10)])


def statekit_main(page: ft.Page) -> None:
    skf.session(page)
    profile = Profile.get()
    texts = [ft.Text() for _ in range(10)]
    page.add(*texts)
    for atom, text in zip(labels[:9], texts, strict=False):
        skf.bind(atom, text)
    skf.bind((profile, "name"), texts[9])


async def memory(sessions: int, main: Any) -> tuple[float, float]:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    opened = []
    for _ in range(sessions):
        s = await new_session()
        await s.start(main)
        opened.append(s)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    for s in opened:
        s.session.close()
    await settle(20)
    opened.clear()
    s = None
    gc.collect()
    gc.collect()
    left = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return grown / sessions, left / sessions


# ---------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> int:
    print(f"flet {ft.__version__}, Python {sys.version.split()[0]}")
    with sk.new_app_scope("bench") as app:
        results = await updates(args.updates, args.repeat)
        base = results[0][1]
        print(f"\nbound-control updates, {args.updates} per run, median of {args.repeat}")
        print(f"{'variant':<16} {'updates/s':>12} {'µs/update':>10} {'ratio':>6}")
        for name, elapsed in results:
            rate = args.updates / elapsed
            us = elapsed / args.updates * 1e6
            print(f"{name:<16} {rate:>12,.0f} {us:>10.1f} {elapsed / base:>5.2f}x")
        ratio = results[1][1] / base

        plain_per, plain_left = await memory(args.sessions, plain_main)
        sk_per, sk_left = await memory(args.sessions, statekit_main)
        print(f"\nmemory per session, {args.sessions} sessions, 10 Text controls each")
        print(f"{'variant':<34} {'KiB/session':>12} {'left after close':>17}")
        print(
            f"{'hand-written (no statekit)':<34} {plain_per / 1024:>12.1f} {plain_left / 1024:>14.2f} KiB"
        )
        print(
            f"{'statekit: 10 bindings + 1 State':<34} {sk_per / 1024:>12.1f} {sk_left / 1024:>14.2f} KiB"
        )
        print(f"statekit overhead: {(sk_per - plain_per) / 1024:.1f} KiB per session")
        assert app.count("session") == 0, "sessions left open"
    print(
        f"\nbind / hand-written = {ratio:.2f}x (target <= 1.5x): {'ok' if ratio <= 1.5 else 'MISSED'}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.updates, args.repeat, args.sessions = 300, 3, 100
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
