"""Search as you type with a ``latest`` action, a spinner effect and per-session status.

Two sessions type at once. Each keystroke calls ``search``; a short query is
slow, so its reply would arrive after the longer query's: with
``policy="latest"`` it is cancelled instead, and a stale result never shows.

Run: ``python examples/actions_search.py``
"""

from __future__ import annotations

import asyncio

import statekit as sk

CATALOG = ["apple", "apricot", "banana", "blackberry", "blueberry", "cherry"]


@sk.action(policy="latest", scope="session", initial=[])
async def search(text: str) -> list[str]:
    """Find catalog items containing ``text`` (short queries are slow)."""
    await asyncio.sleep(0.05 if len(text) < 3 else 0.01)
    return [item for item in CATALOG if text in item]


async def type_in(session_id: str, keystrokes: list[str]) -> list[str]:
    lines: list[str] = []
    with sk.session(session_id):

        def show() -> None:
            if search.pending:
                lines.append(f"[{session_id}] searching...")
            else:
                lines.append(f"[{session_id}] {list(search.result or [])}")

        stop = sk.effect(show)
        calls = []
        for text in keystrokes:  # a keystroke every 5 ms
            calls.append(search(text))
            await asyncio.sleep(0.005)
        for call in calls:
            try:
                await call
            except sk.ActionCancelled:
                lines.append(f"[{session_id}] superseded: {call!r}")
        stop()
    return lines


async def main() -> None:
    first, second = await asyncio.gather(
        type_in("ann", ["b", "bl", "blu"]),
        type_in("bob", ["a", "ap", "apr"]),
    )
    for line in first + second:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
