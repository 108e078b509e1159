"""Backends benchmark: patches/s and latency per backend, cross-process delivery, and a
Reflex-like lock baseline on the same Redis.

Run ``python benchmarks/backends.py`` (``--quick`` for a smoke run, ``--json
out.json`` to also save the numbers, ``--redis URL`` for another server;
default ``$STATEKIT_REDIS_URL`` or ``redis://127.0.0.1:6379``, database 14,
keys under a fresh prefix that is deleted afterwards).

Cases, each on one store copy in one scope (document: a counter and a
~2 KB padding field, so the lock baseline moves a realistic blob):

1 writer
    one task awaiting ``aupdate(store, "n", n + 1)`` in a loop: patches/s and
    p50/p99 of each call.
400 writers
    400 tasks doing the same concurrently on one copy; p50/p99 include the
    wait for their turn. The final counter must equal the number of calls
    (``lost`` is the difference).
cross-process
    process 1 sets the counter every 5 ms; process 2 (a subprocess with its
    own backend object) stamps the time each commit reaches an ``on_patch``
    listener on its copy (``listen`` callbacks coalesce commits heard
    together, ``on_patch`` hears each one); p50/p99 of the difference (same
    host clock). A commit not delivered within 30 s counts as missing.
Reflex-like lock baseline (Redis)
    what Reflex's Redis state manager does per event: ``SET lock NX PX
    10000`` (retry every 1 ms while taken), ``GET`` the whole JSON blob,
    change it, ``SET`` it back, ``DEL`` the lock; 1 and 400 async writers on
    redis-py asyncio with the same pool size.

Every result is checked (final counter exact, every value delivered) before
it is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

try:
    import statekit  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import statekit as sk
from statekit.backends import Backend, aupdate, backend_from_url

PAD = "x" * 2000
POOL = 32


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def make(kind: str, redis_url: str, prefix: str, tmp: Path) -> Backend:
    if kind == "memory":
        return backend_from_url("memory://")
    if kind == "sqlite":
        return backend_from_url(f"sqlite:///{tmp}/bench-{uuid.uuid4().hex[:8]}.db")
    return backend_from_url(redis_url, prefix=prefix, pool_size=POOL)


async def writers(store: sk.Store, count: int, per: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def one() -> None:
        for _ in range(per):
            start = time.perf_counter()
            await aupdate(store, "n", lambda n: n + 1)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - start, latencies


def run_writers(backend: Backend, count: int, total: int) -> dict[str, Any]:
    store = sk.Store({"n": 0, "pad": PAD}, name=f"c{uuid.uuid4().hex[:6]}")
    app = backend.attach(sk.new_app_scope())
    per = max(1, total // count)

    async def main() -> tuple[float, list[float]]:
        with app:
            return await writers(store, count, per)

    elapsed, latencies = asyncio.run(main())
    with app:
        final = store.get("n")
    done = count * per
    stored = backend.load("app:app", store.name)[1]["n"]
    return {
        "patches_s": done / elapsed,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "lost": done - stored,
        "local_ok": final == stored,
    }


_LISTENER = textwrap.dedent(
    """
    import sys, time
    import statekit as sk
    from statekit.backends import backend_from_url
    url, prefix, name = sys.argv[1:4]
    options = {"prefix": prefix} if url.startswith("redis") else {}
    backend = backend_from_url(url, **options)
    store = sk.Store({"n": 0, "pad": ""}, name=name)
    with backend.attach(sk.new_app_scope()):
        store.on_patch(lambda ops, version: print(version, time.time(), flush=True))
        print("ready", flush=True)
        sys.stdin.readline()
    """
)


def cross_process(url: str, prefix: str, count: int) -> dict[str, Any]:
    name = f"x{uuid.uuid4().hex[:6]}"
    src = str(Path(__file__).resolve().parent.parent / "src")
    proc = subprocess.Popen(
        [sys.executable, "-c", _LISTENER, url, prefix, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=src),
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        options = {"prefix": prefix} if url.startswith("redis") else {}
        backend = backend_from_url(url, **options)
        store = sk.Store({"n": 0, "pad": ""}, name=name)
        sent: dict[int, float] = {}
        with backend.attach(sk.new_app_scope()):
            for n in range(1, count + 1):
                sent[n] = time.time()
                store.set("n", n)
                time.sleep(0.005)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        got: dict[int, float] = {}
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            try:
                version, stamp = lines.get(timeout=1).split()
            except queue.Empty:
                continue
            got[int(version)] = float(stamp)  # a fresh store: version n carries n
        backend.close()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    delays = [got[n] - sent[n] for n in sent if n in got]
    return {
        "delivered": len(got),
        "sent": count,
        "p50_ms": pct(delays, 0.5),
        "p99_ms": pct(delays, 0.99),
    }


async def lock_writers(url: str, prefix: str, count: int, total: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=POOL)
    )
    key, lock = f"{prefix}:blob", f"{prefix}:lock"
    await client.set(key, json.dumps({"n": 0, "pad": PAD}))
    latencies: list[float] = []
    per = max(1, total // count)

    async def one() -> None:
        for _ in range(per):
            start = time.perf_counter()
            token = uuid.uuid4().hex
            while not await client.set(lock, token, nx=True, px=10_000):
                await asyncio.sleep(0.001)
            state = json.loads(await client.get(key))
            state["n"] += 1
            await client.set(key, json.dumps(state))
            await client.delete(lock)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - start
    final = json.loads(await client.get(key))["n"]
    await client.delete(key, lock)
    await client.aclose()
    done = count * per
    return {
        "patches_s": done / elapsed,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "lost": done - final,
    }


def cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}:*", 1000))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument(
        "--redis",
        default=os.environ.get("STATEKIT_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/"),
    )
    args = parser.parse_args()
    redis_url = args.redis if args.redis.count("/") > 2 else args.redis + "/14"
    prefix = f"skbench-{uuid.uuid4().hex[:8]}"
    single, crowd, cross = (300, 2000, 100) if args.quick else (2000, 8000, 400)
    tmp = Path(tempfile.mkdtemp(prefix="sk-bench-"))
    results: dict[str, Any] = {"load": os.getloadavg()}
    try:
        for kind in ("memory", "sqlite", "redis"):
            backend = make(kind, redis_url, prefix, tmp)
            try:
                results[f"{kind} 1 writer"] = run_writers(backend, 1, single)
                results[f"{kind} 400 writers"] = run_writers(backend, 400, crowd)
            finally:
                backend.close()
        sqlite_url = f"sqlite:///{tmp}/cross.db"
        results["sqlite cross-process"] = cross_process(sqlite_url, "-", cross)
        results["redis cross-process"] = cross_process(redis_url, prefix, cross)
        results["lock baseline 1 writer"] = asyncio.run(lock_writers(redis_url, prefix, 1, single))
        results["lock baseline 400 writers"] = asyncio.run(
            lock_writers(redis_url, prefix, 400, crowd // 4)
        )
    finally:
        cleanup(redis_url, prefix)
    print(f"load average at start: {results['load'][0]:.2f} (2 cores)\n")
    print(f"{'case':32} {'patches/s':>10} {'p50 ms':>8} {'p99 ms':>8}  check")
    failed = False
    for case, row in results.items():
        if case == "load":
            continue
        if "delivered" in row:
            ok = row["delivered"] == row["sent"]
            check = f"{row['delivered']}/{row['sent']} delivered"
            rate = ""
        else:
            ok = row["lost"] == 0 and row.get("local_ok", True)
            check = f"lost {row['lost']}"
            rate = f"{row['patches_s']:,.0f}"
        failed |= not ok
        print(f"{case:32} {rate:>10} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}  {check}")
    ratio = (
        results["redis 400 writers"]["patches_s"]
        / results["lock baseline 400 writers"]["patches_s"]
    )
    print(f"\nRedis, 400 writers: statekit / lock baseline = {ratio:.1f}x")
    results["ratio_400"] = ratio
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if failed:
        raise SystemExit("a check failed (see the table)")


if __name__ == "__main__":
    main()
