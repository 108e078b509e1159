"""``use_model``: a ``State`` in an ``@ft.component``, re-rendering it on change."""

from __future__ import annotations

from typing import Any

import flet as ft

from .. import _engine
from ._hooks import _session

__all__ = ["use_model"]


def use_model(model: Any, *fields: str) -> Any:
    """This session's instance of a ``State`` class (or the instance given), in a component.

    The component re-renders after each change of the instance (of
    ``fields`` only, if given), whoever makes it; the subscription stops when
    the component unmounts or the session closes. ``Cart.use()`` is this.

    Example:
        >>> import flet as ft, statekit as sk
        >>> from statekit.flet import use_model
        >>> class Cart(sk.State, scope="session"):
        ...     items: list[str] = []
        >>> @ft.component
        ... def Badge():
        ...     cart = use_model(Cart)
        ...     return ft.Text(f"{len(cart.items)} items")
    """
    session = _session("use_model")
    instance: Any = session.run(model.get) if isinstance(model, type) else model  # type: ignore[attr-defined]
    _tick, set_tick = ft.use_state(0)

    def rerender(_instance: Any) -> None:
        session.call(lambda: _engine.untracked_call(lambda: set_tick(lambda n: n + 1)))

    def setup() -> Any:
        return session.run(lambda: instance.subscribe(rerender, *fields))

    ft.use_effect(setup, [id(instance), *fields])
    return instance
