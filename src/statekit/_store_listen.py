"""Store listeners: one dispatch loop per store copy, not one engine watcher per listener.

A listener on a path needs no graph node of its own. Every commit replaces
the document by copy-on-write, so "did the value at this path change?" is an
identity test on the new document (then an equality test, so that a subtree
rebuilt equal is no change). Each scope's copy of a store therefore keeps its
listeners in a tuple, and after a commit one loop reads each listener's path
and calls the ones whose value changed: a ``set`` with one listener costs a
dict lookup and a call, not a propagation, a flush and a watcher run.

The guarantees are the engine's, kept here:

- Listeners run outside every lock and untracked, in the store copy's scope.
- Inside ``batch()``, a transaction or a running effect, the loop is queued
  as one engine watcher (the *dispatcher*) and runs when the batch ends, or
  after the effect, so a batch notifies once with the final values.
- One thread at a time runs the loop (it holds the copy's one ``claim``
  token): a commit made while another thread (or a listener of this very
  loop) is delivering sets ``notify`` and leaves; the delivering thread runs
  the loop again, so each listener is called in order, never concurrently with itself,
  and ends on the latest value. A loop re-triggered by its own listeners
  more than ``MAX_RERUNS`` times is reported as a cycle and stops.
- A raising listener goes to the error hook and does not stop the others.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _engine
from ._engine import DISPOSED_FLAG, WatcherNode
from ._patch import json_equal
from ._paths import get as _get
from ._scope import _current
from .exceptions import CycleError, DisposedError, PathError

if TYPE_CHECKING:
    from ._store import _StoreState
    from ._store_select import SelectorRun

__all__ = [
    "MISSING",
    "Listener",
    "add_listener",
    "dispatch",
    "notify",
    "register",
    "same_value",
    "value_at",
]

MISSING: Any = object()  # the value at a path that does not exist
MAX_RERUNS = 100  # passes of one loop re-triggered by its own listeners: a cycle
_WATCHER = 2  # the engine's WATCHER flag: a dispatcher starts clean (not DIRTY)
_dict_get = dict.get


class Listener:
    """One ``listen(path, callback)``: its path, the value it last saw, and since when."""

    __slots__ = ("callback", "key", "last", "parts", "select", "version", "where")

    def __init__(
        self,
        parts: tuple[str, ...],
        callback: Callable[[Any], Any],
        where: str,
        select: SelectorRun | None = None,
    ) -> None:
        self.parts = parts
        # A listener on a selector (``_store_select``): the loop runs it instead.
        self.select = select
        # A top-level key is read with one dict lookup (the common case); a
        # selector's listener has none (the loop runs its selector instead).
        self.key = parts[0] if len(parts) == 1 and select is None else None
        self.callback: Callable[[Any], Any] | None = callback
        self.where = where
        self.last: Any = MISSING
        # The document version ``last`` was read at: a loop holding an older
        # document (read before this listener was added) skips it.
        self.version = 0


def value_at(doc: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` in ``doc``, or ``MISSING``."""
    try:
        return _get(doc, parts)
    except PathError:
        return MISSING


def dispatch(state: _StoreState, local: Any = None) -> None:
    """Call the listeners whose value changed since they last heard (outside every lock).

    ``local`` is this thread's engine state, if the caller has it at hand.
    """
    claim = state.claim
    if local is None:
        local = _engine.tls.state
    tracking = local.active
    local.active = None  # listeners run untracked
    passes = 0
    try:
        while state.notify:
            # The claim is a one-token list: popping the token is atomic
            # (one C call under the GIL) and, unlike a non-blocking
            # ``Lock.acquire(False)``, parses no arguments. No token: another
            # thread, or this very loop re-entered by a listener, delivers.
            try:
                token = claim.pop()  # type: ignore[union-attr]
            except IndexError:
                return
            try:
                state.notify = False
                if state.owner.disposed:
                    return  # the scope is gone (its dispatcher with it)
                doc, version = state.head
                for listener in state.listeners:
                    if listener.version >= version:
                        continue
                    key = listener.key
                    if key is not None:
                        value = _dict_get(doc, key, MISSING)
                    elif listener.select is not None:
                        listener.select.run(listener, doc)
                        continue
                    else:
                        value = value_at(doc, listener.parts)
                    last = listener.last
                    if value is last:
                        continue
                    kind = value.__class__
                    if kind in _SCALARS:  # same_value's common case, without a call
                        if last.__class__ is kind and last == value:
                            continue
                    elif same_value(last, value):
                        continue
                    listener.last = value
                    callback = listener.callback
                    if callback is None:
                        continue  # unsubscribed while this loop ran
                    try:
                        callback(None if value is MISSING else value)
                    except Exception as exc:
                        _engine.report(exc, listener.where)
            finally:
                claim.append(token)  # type: ignore[union-attr]
            passes += 1
            if passes >= MAX_RERUNS and state.notify:
                state.notify = False
                name = f"listeners of store {state.name!r}"
                _engine.report(
                    CycleError([name, name]),
                    f"{name} (re-triggered themselves {MAX_RERUNS} times)",
                )
                return
    finally:
        local.active = tracking


def notify(state: _StoreState) -> None:
    """After a commit (outside every lock): run the loop now, or queue it for the batch's end."""
    local = _engine.tls.state
    if local.batch or local.flushing:
        _engine.schedule(state.dispatcher)  # type: ignore[arg-type]
    elif _current.get() is state.owner:
        dispatch(state, local)
    else:
        state.owner.runner(state.dispatch_fn)


def add_listener(
    state: _StoreState, parts: tuple[str, ...], callback: Callable[[Any], Any], name: str
) -> Callable[[], None]:
    """Register ``callback`` for the value at ``parts``; return ``off``."""
    listener = Listener(parts, callback, f"effect {'listener of ' + name!r}")
    del callback
    return register(state, listener, partial(value_at, parts=parts), name)


def register(
    state: _StoreState, listener: Listener, baseline: Callable[[Any], Any], name: str
) -> Callable[[], None]:
    """Add ``listener`` to the copy's loop, starting from ``baseline(document)``; return ``off``.

    ``baseline`` runs under the copy's lock with the committed document, so
    no commit falls between the value the listener starts from and its
    place in the loop.
    """
    scope = state.owner
    if state.dispatcher is None:
        dispatcher = WatcherNode(state.dispatch_fn, f"listeners of {name}", scope, scope.runner)
        dispatcher.flags = _WATCHER
        with state.lock:
            fresh = state.dispatcher is None
            if fresh:
                state.claim = [True]
                state.dispatcher = dispatcher
        if fresh:
            # Disposed with the scope (and refused in a disposed one).
            scope._adopt_effect(dispatcher)
    elif state.dispatcher.flags & DISPOSED_FLAG:
        raise DisposedError(f"{scope!r} is disposed; no effect can start in it")
    with state.lock:
        doc, version = state.head
        listener.last = baseline(doc)
        listener.version = version
        state.listeners = (*state.listeners, listener)

    def off() -> None:
        with state.lock:
            state.listeners = tuple(kept for kept in state.listeners if kept is not listener)
        # A caller that keeps ``off`` does not keep the callback alive.
        listener.callback = None

    return off


def same_value(old: Any, new: Any) -> bool:
    """Whether a listener would see no change (a subtree rebuilt equal is none)."""
    if old is new:
        return True
    kind = type(new)
    if kind in _SCALARS:  # the common case, without a call
        return type(old) is kind and old == new
    if old is MISSING or new is MISSING:
        return False
    return json_equal(old, new)


_SCALARS = frozenset({int, str, float, bool, type(None)})
