"""Hooks for ``@ft.component``: statekit values that re-render the component on change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flet as ft

from .. import _engine
from .._effect import Effect, effect
from ..exceptions import ScopeError
from ._session import FletSession, current_session
from ._source import Source, as_source

__all__ = ["use_atom", "use_source", "use_store"]


def _session(what: str) -> FletSession:
    session = current_session()
    if session is None:
        raise ScopeError(
            f"{what} must be called while a Flet component renders on a page "
            "(inside an @ft.component function)"
        )
    return session


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:
        return False


def use_source(source: Source, what: str = "use_atom") -> tuple[Any, Callable[[Any], None]]:
    """The hook behind :func:`use_atom`, for an already-made :class:`Source`."""
    session = _session(what)
    _tick, set_tick = ft.use_state(0)
    value = session.run(lambda: _engine.untracked_call(source.read))

    def rerender() -> None:
        set_tick(lambda n: n + 1)

    def setup() -> Callable[[], None]:
        first = True

        def watch() -> None:
            nonlocal first
            current = source.read()
            if first:
                first = False
                if _same(current, value):
                    return  # nothing changed between the render and now
            # Into the component's own session, whoever made the change.
            session.call(lambda: _engine.untracked_call(rerender))

        running: Effect = session.run(lambda: effect(watch, name=f"{what} {source.label}"))
        return running.stop

    # The subscription lives from mount to unmount (and stops with the
    # session's scope if the session closes first: Flet runs no cleanups then).
    ft.use_effect(setup, [source.key])

    def setter(new: Any) -> None:
        write = source.require_writable(what)
        if callable(new):
            fn = new
            if source.update is not None:
                session.run(lambda: source.update(fn) if source.update else None)
            else:
                session.run(lambda: write(fn(_engine.untracked_call(source.read))))
        else:
            session.run(lambda: write(new))

    return value, setter


def use_atom(source: Any) -> tuple[Any, Callable[[Any], None]]:
    """``(value, setter)`` of a statekit value; the component re-renders when it changes.

    ``source`` is anything :func:`statekit.flet.bind` takes. The setter takes
    a value or a function of the old value (an atomic update). The value is
    read in the component's session, so a ``scope="session"`` atom gives each
    session its own. Updates made by other threads or other sessions are
    delivered into the component's session.

    Example:
        >>> import flet as ft, statekit as sk
        >>> from statekit.flet import use_atom
        >>> count = sk.atom(0, scope="session")
        >>> @ft.component
        ... def Counter():
        ...     n, set_n = use_atom(count)
        ...     return ft.Button(f"Clicked {n} times", on_click=lambda: set_n(lambda v: v + 1))
    """
    return use_source(as_source(source, "use_atom"), "use_atom")


def use_store(store: Any, path: str) -> tuple[Any, Callable[[Any], None]]:
    """``(value, setter)`` of one path of a ``Store``; re-renders when that path changes.

    Example:
        >>> import flet as ft, statekit as sk
        >>> from statekit.flet import use_store
        >>> todos = sk.Store({"todo": []}, scope="session")
        >>> @ft.component
        ... def Count():
        ...     items, _ = use_store(todos, "todo")
        ...     return ft.Text(f"{len(items)} to do")
    """
    return use_source(as_source((store, path), "use_store"), "use_store")
