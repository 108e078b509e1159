"""A shopping cart per session with a typed ``sk.State`` model.

Two sessions fill their own cart; a computed ``total`` is cached per cart and
an effect prints it whenever it changes; a bad quantity is refused and
changes nothing; one cart is saved with ``model_dump()`` and restored into a
new session.

Run: ``python examples/models_cart.py``
"""

from __future__ import annotations

from pydantic import Field

import statekit as sk

PRICES = {"apple": 0.5, "pear": 0.75, "melon": 2.0}


class Line(sk.State):
    sku: str
    qty: int = Field(default=1, ge=1, le=99)


class Cart(sk.State, scope="session"):
    lines: list[Line] = Field(default_factory=list)
    coupon: str | None = None

    @sk.computed
    def total(self) -> float:
        gross = sum(PRICES[line.sku] * line.qty for line in self.lines)
        return round(gross * (0.9 if self.coupon == "TEN" else 1.0), 2)

    def add(self, sku: str, qty: int = 1) -> None:
        self.lines = [*self.lines, Line(sku=sku, qty=qty)]


def shop(session_id: str, items: list[tuple[str, int]]) -> dict[str, object]:
    with sk.session(session_id):
        cart = Cart.get()
        stop = sk.effect(lambda: print(f"[{session_id}] total {cart.total:.2f}"))
        with sk.batch():  # several changes, one print
            for sku, qty in items:
                cart.add(sku, qty)
        try:
            cart.lines[0].qty = 500
        except sk.ValidationError as exc:
            print(f"[{session_id}] refused: {exc.model}.{exc.field}")
        cart.lines[0].qty += 1  # a nested State: tracked, so the total updates
        cart.coupon = "TEN"
        stop()
        return cart.model_dump()


def main() -> None:
    saved = shop("ann", [("apple", 2), ("melon", 1)])
    shop("bob", [("pear", 4)])
    with sk.session("ann-again"):
        cart = Cart.get()
        cart.restore(saved)
        print(f"[ann-again] restored total {cart.total:.2f}, {len(cart.lines)} lines")


if __name__ == "__main__":
    main()
