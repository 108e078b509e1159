"""FastAPI adapter benchmark: session state through ``Depends(state(Cart))`` vs by hand.

Run ``python benchmarks/fastapi.py`` (``--quick`` for a smoke run).

Two uvicorn servers run in their own processes (one worker each, default
loop and HTTP parser), serving the same route ``POST /cart/{item}`` that
reads and updates the caller's session state and answers its new count:

* ``statekit``: ``cart: Cart = Depends(state(Cart))`` in an app with
  ``StatekitLifespan`` (signed ``sk_session`` cookie, app → session →
  request scopes per request, ``cart.update("count", ...)``);
* ``hand-written``: a plain FastAPI app with a module dict keyed by an
  unsigned ``sid`` cookie (issued on first use), the pattern the adapter
  replaces.

A third process generates the load: a minimal asyncio HTTP/1.1 client with
``--clients`` concurrent sessions (each its own keep-alive connection and
cookie; cheap enough that the servers, not the client, saturate) sending
requests back to back for ``--seconds``, alternating between the two servers
``--rounds`` times so both see the same machine. Afterwards each session's
count is read back and must equal the requests it sent (nothing lost, nothing
mixed between sessions). Reported: requests/s, p50 and p99 latency per
variant, and the ratio of statekit's p50/p99 to the hand-written route's.
Target: statekit p50 <= 1.3 x hand-written.
"""

# No `from __future__ import annotations`: the apps are built in functions, and
# FastAPI must see their annotations (local names) as objects.

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
from _servers import free_port, wait_until_up  # noqa: E402 (before the folder leaves the path)

# This file is named fastapi.py: drop its folder from the path, or it would
# shadow the fastapi package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
try:
    import statekit  # noqa: F401
except ImportError:  # pragma: no cover - running from a plain checkout
    sys.path.insert(0, str(ROOT / "src"))

SECRET = "benchmark-secret-" + "0" * 16


# ---------------------------------------------------------------- the two apps


def statekit_app() -> Any:
    from fastapi import Depends, FastAPI

    import statekit as sk
    from statekit.fastapi import StatekitLifespan, state

    class Cart(sk.State, scope="session"):
        count: int = 0
        items: list[str] = []  # noqa: RUF012 (a pydantic field default)

    app = FastAPI(lifespan=StatekitLifespan(secret=SECRET))

    @app.post("/cart/{item}")
    async def add(item: str, cart: Cart = Depends(state(Cart))) -> dict[str, int]:
        count = cart.update("count", lambda n: n + 1)
        if len(cart.items) < 8:  # reads the list on every request, grows it a little
            cart.items = [*cart.items, item]
        return {"count": count}

    @app.get("/cart")
    async def read(cart: Cart = Depends(state(Cart))) -> dict[str, int]:
        return {"count": cart.count}

    return app


def hand_app() -> Any:
    from fastapi import FastAPI, Request, Response

    app = FastAPI()
    carts: dict[str, dict[str, Any]] = {}

    def cart_of(request: Request, response: Response) -> dict[str, Any]:
        sid = request.cookies.get("sid")
        if sid is None or sid not in carts:
            sid = secrets.token_hex(16)
            carts[sid] = {"count": 0, "items": []}
            response.set_cookie("sid", sid, httponly=True, samesite="lax")
        return carts[sid]

    @app.post("/cart/{item}")
    async def add(item: str, request: Request, response: Response) -> dict[str, int]:
        cart = cart_of(request, response)
        cart["count"] += 1
        if len(cart["items"]) < 8:
            cart["items"] = [*cart["items"], item]
        return {"count": cart["count"]}

    @app.get("/cart")
    async def read(request: Request, response: Response) -> dict[str, int]:
        return {"count": cart_of(request, response)["count"]}

    return app


def serve(variant: str, port: int) -> None:
    import uvicorn

    app = statekit_app() if variant == "statekit" else hand_app()
    # Keep-alive outlasts a round of the other variant (each session keeps one connection).
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_keep_alive=120
    )


# ---------------------------------------------------------------- the load


class _Session:
    """One client session: a keep-alive HTTP/1.1 connection and its cookie.

    A minimal client on asyncio streams (request line, headers, a
    Content-Length body): it costs a fraction of an httpx request, so the
    servers, not the load generator, are what saturates.
    """

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.cookie: bytes | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str) -> Any:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: 0\r\n"
        data = head.encode() + (b"Cookie: " + self.cookie + b"\r\n" if self.cookie else b"")
        self.writer.write(data + b"\r\n")
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError(f"{method} {path}: the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"set-cookie":
                self.cookie = value.strip().split(b";")[0]
        body = await self.reader.readexactly(length)
        if status != 200:
            raise AssertionError(f"{method} {path}: {status} {body[:200]!r}")
        return json.loads(body)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def load(urls: dict[str, str], clients: int, seconds: float, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    sessions = {name: [_Session(url) for _ in range(clients)] for name, url in urls.items()}
    sent: dict[str, list[int]] = {name: [0] * clients for name in urls}
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    elapsed: dict[str, float] = dict.fromkeys(urls, 0.0)
    try:
        for name in urls:  # warm up: cookies issued, code paths hot
            for i, session in enumerate(sessions[name]):
                await session.request("POST", "/cart/x")
                sent[name][i] += 1
        order = list(urls)
        for round_ in range(rounds):
            for name in order if round_ % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                until = start + seconds
                counts = await asyncio.gather(
                    *(
                        _session_from(sessions[name][i], until, latencies[name], sent[name][i])
                        for i in range(clients)
                    )
                )
                elapsed[name] += time.perf_counter() - start
                sent[name] = list(counts)
        for name in urls:  # everything arrived, in the right session
            for i, session in enumerate(sessions[name]):
                got = (await session.request("GET", "/cart"))["count"]
                if got != sent[name][i]:
                    raise AssertionError(f"{name}: session {i} has {got}, sent {sent[name][i]}")
    finally:
        for group in sessions.values():
            for session in group:
                await session.close()
    for name in urls:
        ordered = sorted(latencies[name])
        results[name] = {
            "requests": len(ordered),
            "rps": len(ordered) / elapsed[name],
            "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        }
    return results


async def _session_from(
    session: _Session, until: float, latencies: list[float], already: int
) -> int:
    sent = already
    while time.perf_counter() < until:
        start = time.perf_counter()
        answer = await session.request("POST", "/cart/x")
        latencies.append(time.perf_counter() - start)
        sent += 1
        if answer["count"] != sent:
            raise AssertionError(f"count {answer['count']} after {sent} requests")
    return sent


# ---------------------------------------------------------------- orchestration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent sessions")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per variant")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.load:
        spec = json.loads(args.load)
        out = asyncio.run(load(spec["urls"], spec["clients"], spec["seconds"], spec["rounds"]))
        print(json.dumps(out))
        return
    if args.quick:
        args.seconds, args.rounds = 1.0, 2
    servers: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for variant in ("hand-written", "statekit"):
            port = free_port()
            proc = subprocess.Popen([sys.executable, __file__, "--serve", variant, str(port)])
            servers.append(proc)
            wait_until_up(port, proc)
            urls[variant] = f"http://127.0.0.1:{port}"
        spec = {
            "urls": urls,
            "clients": args.clients,
            "seconds": args.seconds,
            "rounds": args.rounds,
        }
        loader = subprocess.run(
            [sys.executable, __file__, "--load", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
        )
        if loader.returncode:
            raise SystemExit(f"the load process failed:\n{loader.stderr}")
        results = json.loads(loader.stdout)
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            proc.wait(10)
    load_avg = os.getloadavg()
    print(
        f"POST /cart/{{item}}: read + update session state; {args.clients} concurrent sessions, "
        f"{args.rounds} alternating rounds of {args.seconds:g} s per variant"
    )
    print(f"load average before/after: {load_avg[0]:.1f} (1 min), {load_avg[1]:.1f} (5 min)")
    print(f"{'variant':<14}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, row in results.items():
        print(
            f"{name:<14}{row['requests']:>10,}{row['rps']:>10,.0f}"
            f"{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
        )
    hand, sk_row = results["hand-written"], results["statekit"]
    print(
        f"statekit / hand-written: p50 {sk_row['p50_ms'] / hand['p50_ms']:.2f}x, "
        f"p99 {sk_row['p99_ms'] / hand['p99_ms']:.2f}x, "
        f"throughput {sk_row['rps'] / hand['rps']:.2f}x (target: p50 <= 1.3x)"
    )


if __name__ == "__main__":
    main()
