"""One statekit session scope per Flet session, and delivery into it.

A Flet session runs ``main``, each event handler and each component render in
its own asyncio task, and Flet finds "the current page" through a ContextVar
(``flet.controls.context._context_page``). statekit finds the current scope the
same way. :class:`FletSession` ties the two together:

* it opens a statekit ``session`` scope named after the Flet session id;
* it wraps that session's ``dispatch_event`` so every event handler (and the
  ``close`` event) runs with the scope current;
* it delivers work into the session: a change made by another thread, or in
  another session's event handler, is queued on the session's event loop with
  a context whose current page and scope are this session's. Without that, a
  component setter called while another page is current schedules the update
  on the wrong session (the "cross-session trap");
* when the session closes it disposes the scope, which stops every binding,
  hook subscription and effect made in it.

It holds the Flet session and page weakly: a dropped session is collected
even if it was never closed, and then its scope is disposed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flet.controls.context import _context_page as _flet_page
from flet.controls.page import Page

from .. import _engine
from .._scope import SESSION, USER, Scope, _current
from ..exceptions import DisposedError, ScopeError

# Flet's "current page" ContextVar (typed loosely by Flet itself).
_context_page: contextvars.ContextVar[Any] = _flet_page

if TYPE_CHECKING:
    from flet.messaging.session import Session as _FletSessionType

__all__ = ["FletSession", "attach", "current_session", "lookup"]

_lock = threading.RLock()
_sessions: weakref.WeakKeyDictionary[Any, FletSession] = weakref.WeakKeyDictionary()


class FletSession:
    """The statekit side of one Flet session (see :func:`statekit.flet.session`).

    Example:
        >>> import statekit.flet as skf
        >>> # inside a Flet ``main(page)``:
        >>> # fs = skf.attach(page); fs.scope.level  -> 'session'
    """

    __slots__ = (
        "__weakref__",
        "_base",
        "_flet_session",
        "_owned",
        "_page",
        "_pending",
        "closed",
        "id",
        "loop",
        "scope",
    )

    def __init__(self, flet_session: Any, page: Page, parent: Scope) -> None:
        self.id: str = flet_session.id
        self._flet_session = weakref.ref(flet_session)
        self._page = weakref.ref(page)
        self.closed = False
        self.loop = _loop_of(flet_session)
        self.scope: Scope = parent._child(SESSION, self.id, None)
        # Work that could not be done yet (a binding to a Ref not set yet):
        # retried after each event, after main, and on the next change.
        self._pending: dict[Any, Callable[[], None]] = {}
        # What must stop when the session closes, beyond the scope's own
        # effects (bindings also leave the control registry).
        self._owned: weakref.WeakSet[Any] = weakref.WeakSet()
        # The context deliveries run in: the one of the code that attached the
        # session (so contextvars set in ``main`` carry over) with this
        # session's scope current. The page is added per delivery, from a
        # weak reference, so that this object never keeps the page alive.
        here = _context_page.get() is page
        base = contextvars.copy_context() if here else contextvars.Context()
        base.run(_current.set, self.scope)
        base.run(_context_page.set, None)
        self._base = base
        _wrap_dispatch(flet_session, self)
        self.scope.on_dispose(self._on_scope_disposed)
        weakref.finalize(flet_session, _collected, weakref.ref(self))

    # ------------------------------------------------------------ identity

    @property
    def page(self) -> Page | None:
        """The Flet page, or ``None`` once it is gone."""
        return self._page()

    @property
    def flet_session(self) -> _FletSessionType | None:
        """The ``flet.Session``, or ``None`` once it is gone."""
        return self._flet_session()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<FletSession {self.id!r}{state}>"

    # ------------------------------------------------------------ delivery

    def here(self) -> bool:
        """Whether the calling code runs on this session's loop, with its page current."""
        page = self._page()
        if page is None or _context_page.get() is not page:
            return False
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def context(self) -> contextvars.Context:
        """A fresh context with this session's scope and page current."""
        ctx = self._base.copy()
        page = self._page()
        if page is not None:
            ctx.run(_context_page.set, page)
        return ctx

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in this session: now if already here, else on its loop.

        Errors go to statekit's error hook. After the session closed, nothing
        runs.
        """
        if self.closed:
            return
        if self.here():
            _guarded(fn)
            return
        # A closed loop raises RuntimeError: the session is over, drop the work.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._run_delivered, fn, context=self.context())

    def _run_delivered(self, fn: Callable[[], Any]) -> None:
        if not self.closed:
            _guarded(fn)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` now, in this thread, with this session's scope and page current."""
        return self.context().run(fn)

    # ------------------------------------------------------------ pending work

    def defer(self, key: Any, retry: Callable[[], None]) -> None:
        """Keep ``retry`` to run after the next event (replacing an older one for ``key``)."""
        with _lock:
            self._pending[key] = retry

    def forget(self, key: Any) -> None:
        """Drop the deferred work of ``key``."""
        with _lock:
            self._pending.pop(key, None)

    def retry_pending(self) -> None:
        """Run deferred work once (each retry defers itself again if still not possible)."""
        with _lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for retry in pending:
            _guarded(retry)

    # ------------------------------------------------------------ events

    async def _dispatch_event(
        self, dispatch: Callable[..., Any], control_id: int, event_name: str, event_data: Any
    ) -> None:
        token = _current.set(self.scope) if not self.scope.disposed else None
        try:
            await dispatch(control_id, event_name, event_data)
        finally:
            if token is not None:
                _current.reset(token)
        page = self._page()
        if event_name == "close" and page is not None and control_id == page._i:
            # The user's page.on_close (whatever it is now) has run: close.
            self.close()
        else:
            self.retry_pending()

    def close(self) -> None:
        """Dispose the session scope: bindings, hook subscriptions and effects stop."""
        if self.closed:
            return
        self.closed = True
        self.scope.dispose()

    def own(self, thing: Any) -> None:
        """Call ``thing.unbind()`` when the session closes (held weakly)."""
        with _lock:
            if self.closed:
                raise DisposedError(f"{self!r} is closed")
            self._owned.add(thing)

    def _on_scope_disposed(self) -> None:
        self.closed = True
        with _lock:
            self._pending.clear()
            owned = list(self._owned)
            self._owned.clear()
        for thing in owned:
            _guarded(thing.unbind)


def _wrap_dispatch(flet_session: Any, fs: FletSession) -> None:
    """Make the session's event dispatch run with ``fs``'s scope current.

    The wrapper lives on the Flet session (an instance attribute, which its
    connection calls): the Flet session holds our session, never the other
    way round, so both are collected together.
    """
    dispatch = flet_session.dispatch_event

    async def dispatch_event(control_id: int, event_name: str, event_data: Any) -> None:
        await fs._dispatch_event(dispatch, control_id, event_name, event_data)

    flet_session.dispatch_event = dispatch_event


def _guarded(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception as exc:
        _engine.report(exc, "Flet delivery")


def _collected(ref: weakref.ref[FletSession]) -> None:
    """The Flet session was garbage-collected without closing: close ours."""
    fs = ref()
    if fs is None or fs.closed:
        return
    try:
        # A finalizer may run inside any code, even under a statekit lock:
        # dispose from the loop, not from here.
        fs.loop.call_soon_threadsafe(fs.close)
    except RuntimeError:
        fs.closed = True


def _loop_of(flet_session: Any) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    conn = flet_session.connection
    if conn is None:
        raise ScopeError(f"Flet session {flet_session.id!r} has no connection and no event loop")
    loop: asyncio.AbstractEventLoop = conn.loop
    return loop


def attach(page: Page) -> FletSession:
    """The :class:`FletSession` of ``page``'s session, made on first use.

    The statekit session scope hangs under the user scope current at the
    first call, else under the app scope.
    """
    flet_session = page.session
    found = _sessions.get(flet_session)
    if found is not None:
        return found
    with _lock:
        found = _sessions.get(flet_session)
        if found is None:
            chain = _current.get().chain
            parent = chain[USER] or chain[0]
            assert parent is not None
            found = FletSession(flet_session, page, parent)
            _sessions[flet_session] = found
        return found


def lookup(page: Page) -> FletSession | None:
    """The :class:`FletSession` of ``page`` if one was attached, else ``None``."""
    try:
        flet_session = page.session
    except RuntimeError:
        return None
    return _sessions.get(flet_session)


def current_page() -> Page | None:
    """The Flet page of the running code, if any."""
    page: Page | None = _context_page.get()
    return page


def current_session() -> FletSession | None:
    """The :class:`FletSession` of the running code's Flet page, attached on first use."""
    page = _context_page.get()
    if page is None:
        return None
    try:
        return attach(page)
    except RuntimeError:  # a page whose session is gone
        return None
