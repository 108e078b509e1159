"""The console demo behind ``statekit demo``: a shop with per-session carts."""

from __future__ import annotations

from collections.abc import Callable

import statekit as sk

__all__ = ["run_console_demo"]


def run_console_demo(say: Callable[[str], None]) -> None:
    """Walk through atoms, computed values, effects, batches and sessions.

    Example:
        >>> lines = []
        >>> run_console_demo(lines.append)
        >>> any("alice" in line for line in lines)
        True
    """
    with sk.new_app_scope("demo"):
        say("statekit demo: a shop whose carts live in sessions\n")
        price = sk.atom({"apple": 3, "pear": 5, "fig": 8}, name="price")
        cart: sk.Atom[list[str]] = sk.atom([], name="cart", scope="session")
        total = sk.computed(lambda: sum(price.value[item] for item in cart.value), name="total")
        runs = {"total": 0}

        def count_runs() -> int:
            runs["total"] += 1
            return total.value

        say("1. atoms hold values; computed values derive from them")
        with sk.session("alice") as alice:
            stop = sk.effect(lambda: say(f"   [alice] cart={list(cart.value)} total={total.value}"))
            cart.update(lambda items: [*items, "apple"])
            cart.update(lambda items: [*items, "fig"])
        with sk.session("bob") as bob:
            sk.effect(lambda: say(f"   [bob]   cart={list(cart.value)} total={total.value}"))
            cart.update(lambda items: [*items, "pear"])

        say("\n2. one price change updates every session's total, each in its own scope")
        price.update(lambda p: p | {"apple": 4, "pear": 6})

        say("\n3. a batch runs effects once, with the final values")
        with alice, sk.batch():
            cart.update(lambda items: [*items, "pear"])
            cart.update(lambda items: [*items, "pear"])
        stop()

        say("\n4. values are frozen: in-place edits raise instead of going unnoticed")
        with alice:
            try:
                cart.value.append("melon")
            except sk.ReadOnlyError as exc:
                say(f"   ReadOnlyError: {str(exc)[:60]}...")

        say("\n5. a session-scoped value needs a session")
        try:
            print(cart.value)
        except sk.ScopeError as exc:
            say(f"   ScopeError: {str(exc)[:70]}...")

        say("\n6. closing a session disposes its values and effects")
        app = sk.app_scope()
        say(f"   live sessions: {[s.id for s in app.scopes('session')]}")
        bob.dispose()
        say(f"   after bob.dispose(): {[s.id for s in app.scopes('session')]}")
        with alice:
            say(f"   alice's total is still {count_runs()}")
