"""A shopping cart in session state (FtState style): ``python examples/flet_cart.py``.

``Cart`` is a ``scope="session"`` ``sk.State``: one per browser tab, typed
and validated, released when the tab's session closes. Components read it
with ``Cart.use()`` and re-render when it changes; the total is a computed
method, recomputed only when the lines change.
"""

from __future__ import annotations

from typing import Any

import flet as ft
from pydantic import BaseModel, ConfigDict

import statekit as sk
import statekit.flet as skf

PRODUCTS = {
    "laptop": ("Laptop", 999.99),
    "mouse": ("Mouse", 29.99),
    "keyboard": ("Keyboard", 79.99),
}


class Line(BaseModel):
    model_config = ConfigDict(frozen=True)  # lines change by replacement, never in place

    sku: str
    quantity: int


class Cart(sk.State, scope="session"):
    lines: list[Line] = []  # noqa: RUF012 (a pydantic field, copied per instance)

    @sk.computed
    def count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @sk.computed
    def total(self) -> float:
        return round(sum(PRODUCTS[x.sku][1] * x.quantity for x in self.lines), 2)

    def add(self, sku: str) -> None:
        def added(lines: list[Line]) -> list[Line]:
            if any(line.sku == sku for line in lines):
                return [
                    line.model_copy(update={"quantity": line.quantity + 1})
                    if line.sku == sku
                    else line
                    for line in lines
                ]
            return [*lines, Line(sku=sku, quantity=1)]

        self.update("lines", added)  # atomic read-modify-write

    def clear(self) -> None:
        self.lines = []


@ft.component
def Products() -> Any:
    cart = Cart.use("lines")
    return ft.Column(
        [
            ft.Text("Products", size=24),
            *[
                ft.Button(f"{name} - ${price:.2f}", on_click=lambda _, s=sku: cart.add(s))
                for sku, (name, price) in PRODUCTS.items()
            ],
        ]
    )


@ft.component
def Summary() -> Any:
    cart = Cart.use()
    lines = [
        ft.Text(f"{PRODUCTS[line.sku][0]} x {line.quantity}", data=line.sku) for line in cart.lines
    ]
    return ft.Column(
        [
            ft.Text("Cart", size=24),
            *(lines or [ft.Text("Cart is empty")]),
            ft.Text(f"{cart.count} items, total ${cart.total:.2f}", data="total"),
            ft.Button("Clear", on_click=cart.clear),
        ]
    )


@ft.component
def App() -> Any:
    return ft.Row([Products(), Summary()])


def main(page: ft.Page) -> None:
    page.title = "statekit cart"
    sk.State.initialize(Cart)  # this session's cart, now
    page.render(App)


if __name__ == "__main__":
    skf.run(main)
