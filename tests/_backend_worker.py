"""A second (third...) process for the cross-process backend tests.

    python tests/_backend_worker.py MODE URL PREFIX [ARGS...]

Every mode attaches a backend made from URL (``prefix=PREFIX`` for Redis) to
a fresh app scope, prints ``ready`` once its copies are loaded, and writes
one line per acknowledged event to stdout (flushed), so the test knows
exactly what this process was told had been committed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import statekit as sk
from statekit.backends import apatch, aupdate, backend_from_url

counter = sk.Store({"n": 0}, name="counter")
log = sk.Store({"ids": []}, name="log")
prefs = sk.Store({"lang": "en"}, name="prefs", scope="user")
doc = sk.Store({"owner": None}, name="doc")
cart = sk.Store({"items": []}, name="cart", scope="session")


class ProcCart(sk.State, scope="session", name="proc-cart"):
    """A State bound to the backend (tests/test_backends_state.py has its twin)."""

    items: list[str] = []


def say(*words: Any) -> None:
    # One write per line: with PYTHONUNBUFFERED=1, print() sends the words
    # one by one and a kill -9 between them left a torn "ack " line.
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()


def main() -> None:
    mode, url, prefix, *args = sys.argv[1:]
    options = {"prefix": prefix} if url.startswith("redis") else {}
    backend = backend_from_url(url, **options)
    app = backend.attach(sk.new_app_scope())
    with app:
        if mode == "incr":  # N async writers on one counter, C of them at a time
            total, width = int(args[0]), int(args[1])
            counter.get("n")
            say("ready")
            sys.stdin.readline()  # "go"

            async def run() -> None:
                gate = asyncio.Semaphore(width)

                async def one() -> None:
                    async with gate:
                        await aupdate(counter, "n", lambda n: n + 1)

                await asyncio.gather(*(one() for _ in range(total)))

            asyncio.run(run())
            say("done")
        elif mode == "append":  # sync appends, one ack per commit, until killed or N
            tag, total = args[0], int(args[1])
            log.get("ids")
            say("ready")
            for i in range(total):
                log.add("ids/-", f"{tag}-{i}")
                say("ack", f"{tag}-{i}")
            say("done")
        elif mode == "aappend":  # async appends, C at a time, one ack per commit
            tag, total, width = args[0], int(args[1]), int(args[2])
            log.get("ids")
            say("ready")

            async def run_appends() -> None:
                gate = asyncio.Semaphore(width)

                async def one(i: int) -> None:
                    async with gate:
                        await apatch(log, [{"op": "add", "path": "/ids/-", "value": f"{tag}-{i}"}])
                        say("ack", f"{tag}-{i}")

                await asyncio.gather(*(one(i) for i in range(total)))

            asyncio.run(run_appends())
            say("done")
        elif mode == "listen":  # print the counter's values as this copy's listener hears them
            seen: list[int] = []
            counter.listen("n", lambda n: (seen.append(n), say("seen", n, time.time())))
            say("ready", counter.get("n"))
            sys.stdin.readline()  # until the test says stop
        elif mode == "user":  # set a user's preference, report another user's
            who, value, other = args
            with sk.user(who):
                prefs.set("lang", value)
            with sk.user(other):
                say("other", prefs.get("lang"))
            with sk.user(who):
                say("own", prefs.get("lang"))
        elif mode == "claim":  # compare-and-set on version 0
            who = args[0]
            doc.get("owner")
            say("ready")
            sys.stdin.readline()

            async def claim() -> str:
                try:
                    await apatch(
                        doc, [{"op": "replace", "path": "/owner", "value": who}], expected_version=0
                    )
                except sk.VersionConflict:
                    return "lost"
                return "won"

            say(asyncio.run(claim()))
        elif mode == "session":  # keep a session busy: a write every INTERVAL s, TTL s idle
            sid, ttl, total, interval = args[0], float(args[1]), int(args[2]), float(args[3])
            with sk.session(sid, ttl=ttl):
                for i in range(total):
                    cart.add("items/-", i)
                    say("ack", i)
                    time.sleep(interval)
            say("done")
        elif (
            mode == "state"
        ):  # write a State's field, then report it once another process added one
            sid, items = args[0], args[1].split(",")
            with sk.session(sid):
                proc_cart = ProcCart.get()
                proc_cart.items = items
                say("ack", ",".join(proc_cart.items))
                sys.stdin.readline()  # "show"
                deadline = time.monotonic() + 30
                while len(proc_cart.items) == len(items) and time.monotonic() < deadline:
                    time.sleep(0.01)
                say("items", ",".join(proc_cart.items))
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    backend.close()


if __name__ == "__main__":
    main()
