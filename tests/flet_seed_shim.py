"""Flet as the seed documents use it, on Flet 1.x: ``import flet_seed_shim as ft``.

The seed examples were written for Flet 0.28. Flet 1.0 renamed or removed a
few of the names they use; this module is real Flet plus those names, so the
examples run unchanged except for their imports:

* ``ft.app(target=main)`` records ``main`` (the harness runs it in an offline
  session) instead of starting a server (Flet 1.0 has ``ft.run``);
* ``ft.ElevatedButton`` is ``ft.Button``; ``ft.border.all`` is ``ft.Border.all``;
* ``page.go(route)`` sets the route and runs ``on_route_change`` (1.0 has the
  async ``push_route``);
* a custom control may assign ``self.page = page`` (1.0 made ``page`` a
  read-only property); ``Column`` here allows it.

Nothing of statekit is in here: the façades under test are imported by the
examples themselves.
"""

from __future__ import annotations

import types
from typing import Any

import flet as _ft
from flet import *  # noqa: F403  (the real Flet namespace)

launched: list[Any] = []


def app(target: Any = None, **kwargs: Any) -> None:
    """Flet 0.28's entry point: record ``target`` for the offline harness."""
    launched.append(target)


ElevatedButton = _ft.Button
border = types.SimpleNamespace(all=lambda width=None, color=None: _ft.Border.all(width, color))


def _go(self: _ft.Page, route: str, **_: Any) -> None:
    self.route = route
    handler = self.on_route_change
    if handler is not None:
        handler(_ft.RouteChangeEvent(name="route_change", control=self, route=route))


_ft.Page.go = _go  # type: ignore[attr-defined]


class Column(_ft.Column):
    """``ft.Column`` whose ``page`` may be assigned, as custom controls did in Flet 0.28."""

    @property  # type: ignore[override]
    def page(self) -> Any:
        assigned = self.__dict__.get("_seed_page")
        return assigned if assigned is not None else _ft.Column.page.fget(self)  # type: ignore[attr-defined]

    @page.setter
    def page(self, value: Any) -> None:
        self.__dict__["_seed_page"] = value
