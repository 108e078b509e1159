"""A counter per browser tab: ``python examples/flet_counter.py`` (or ``flet run`` it).

Each Flet session (each tab) has its own count and step: they are
``scope="session"`` atoms. The label is a computed bound to a ``Text``; the
step is bound two-way to a ``TextField`` (typing a number changes it). The
"total clicks" line is app-wide: every tab sees everyone's clicks.

Serve it to browsers with uvicorn::

    asgi = statekit.flet.run(main, export_asgi_app=True)
"""

from __future__ import annotations

import flet as ft

import statekit as sk
import statekit.flet as skf

count = sk.atom(0, name="count", scope="session")
step = sk.atom(1, name="step", scope="session")
clicks = sk.atom(0, name="clicks")  # app-wide: shared by every session
label = sk.computed(lambda: f"Count: {count.value}", name="label")


def add(sign: int) -> None:
    with sk.batch():
        count.update(lambda n: n + sign * step.value)
        clicks.update(lambda n: n + 1)


def main(page: ft.Page) -> None:
    page.title = "statekit counter"
    shown = ft.Text(size=32)
    total = ft.Text()
    step_field = ft.TextField(label="Step", width=160)
    skf.bind(label, shown)
    skf.bind(lambda: f"Clicks in all tabs: {clicks.value}", total)
    skf.bind_two_way(step, step_field, parse=int)  # "abc" is refused, the step stays
    page.add(
        shown,
        ft.Row(
            [
                ft.Button("Decrement", on_click=lambda: add(-1)),
                ft.Button("Increment", on_click=lambda: add(+1)),
            ]
        ),
        step_field,
        total,
    )


if __name__ == "__main__":
    skf.run(main)
