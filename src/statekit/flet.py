"""statekit for Flet: bindings, component hooks and one statekit session per Flet session.

This is the only public module that imports Flet (install ``statekit[flet]``).

* :func:`run` / :func:`app` / :func:`session` make each Flet session a
  statekit ``session`` scope: ``main``, event handlers and components all see
  it, so ``scope="session"`` atoms, stores and states are per user tab.
  Closing the session disposes the scope with its bindings and effects.
* :func:`bind` shows a reactive value in a control property;
  :func:`bind_two_way` also writes the control's value back; :func:`unbind`.
* :func:`use_atom`, :func:`use_store` and :func:`use_model` (``State.use()``)
  are hooks for ``@ft.component``.

Example:
    >>> import flet as ft, statekit as sk
    >>> import statekit.flet as skf
    >>> count = sk.atom(0, name="count", scope="session")
    >>> def main(page: ft.Page):
    ...     label = ft.Text()
    ...     skf.bind(lambda: f"Count: {count.value}", label)
    ...     page.add(label, ft.Button("+1", on_click=lambda: count.update(lambda n: n + 1)))
    >>> # skf.run(main)
"""

from __future__ import annotations

from ._flet._app import app, run, session
from ._flet._bind import Binding, bind, bind_two_way, bindings, unbind
from ._flet._hooks import use_atom, use_store
from ._flet._model_hook import use_model
from ._flet._session import FletSession, attach, current_session, lookup

__all__ = [
    "Binding",
    "FletSession",
    "app",
    "attach",
    "bind",
    "bind_two_way",
    "bindings",
    "current_session",
    "lookup",
    "run",
    "session",
    "unbind",
    "use_atom",
    "use_model",
    "use_store",
]
