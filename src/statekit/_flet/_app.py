"""Entry points: make every Flet session a statekit session scope."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import flet as ft

from .._scope import Scope, _current
from ._session import FletSession, attach

__all__ = ["app", "run", "session"]


def session(page: ft.Page) -> Scope:
    """Make ``page``'s session a statekit session scope, current from here on.

    Call it first in a ``main`` you run with plain ``ft.run``; :func:`app` and
    :func:`run` do it for you. Idempotent. Event handlers of the page see the
    scope too, and closing the session disposes it.

    Example:
        >>> import flet as ft, statekit as sk
        >>> import statekit.flet as skf
        >>> cart = sk.atom([], scope="session")
        >>> def main(page: ft.Page):
        ...     skf.session(page)
        ...     page.add(ft.Text(f"{len(cart.value)} items"))
    """
    fs = attach(page)
    if _current.get() is not fs.scope:
        # In Flet, main runs in its own task: the scope stays current there
        # (and in the tasks it starts, such as the component scheduler).
        _current.set(fs.scope)
    return fs.scope


def app(main: Callable[[ft.Page], Any]) -> Callable[[ft.Page], Any]:
    """Wrap a Flet ``main`` so that each session runs in its own statekit session scope.

    Works for plain, ``async``, generator and async-generator mains; pass the
    result to ``ft.run`` (or use :func:`run`).

    Example:
        >>> import flet as ft, statekit as sk
        >>> import statekit.flet as skf
        >>> clicks = sk.atom(0, scope="session")
        >>> @skf.app
        ... def main(page: ft.Page):
        ...     label = ft.Text()
        ...     skf.bind(clicks, label)
        ...     page.add(label, ft.Button("+1", on_click=lambda: clicks.update(lambda n: n + 1)))
        >>> # ft.run(main)
    """
    if getattr(main, "__statekit_app__", False):
        return main

    def enter(page: ft.Page) -> FletSession:
        session(page)
        return attach(page)

    wrapped: Callable[[ft.Page], Any]
    if inspect.iscoroutinefunction(main):

        async def run_async(page: ft.Page) -> Any:
            fs = enter(page)
            try:
                return await main(page)
            finally:
                fs.retry_pending()

        wrapped = run_async
    elif inspect.isasyncgenfunction(main):

        async def run_agen(page: ft.Page) -> Any:
            fs = enter(page)
            try:
                async for item in main(page):
                    yield item
            finally:
                fs.retry_pending()

        wrapped = run_agen
    elif inspect.isgeneratorfunction(main):

        def run_gen(page: ft.Page) -> Any:
            fs = enter(page)
            try:
                yield from main(page)
            finally:
                fs.retry_pending()

        wrapped = run_gen
    else:

        def run_sync(page: ft.Page) -> Any:
            fs = enter(page)
            try:
                return main(page)
            finally:
                fs.retry_pending()

        wrapped = run_sync
    functools.update_wrapper(wrapped, main)
    setattr(wrapped, "__statekit_app__", True)  # noqa: B010 (mypy: no such attribute)
    return wrapped


def run(main: Callable[[ft.Page], Any], **kwargs: Any) -> Any:
    """``ft.run(app(main), **kwargs)``: run a Flet app whose sessions are statekit sessions.

    With ``export_asgi_app=True`` it returns the ASGI app (serve it with uvicorn).

    Example:
        >>> import statekit.flet as skf
        >>> # skf.run(main)                                   # desktop window / `flet run`
        >>> # asgi = skf.run(main, export_asgi_app=True)      # uvicorn module:asgi
    """
    return ft.run(app(main), **kwargs)
