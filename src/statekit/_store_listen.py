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

The loop itself (``dispatch``) and ``Listener`` are in ``_store_hot``, which
compiles with the engine; they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _engine
from ._engine import DISPOSED_FLAG, WatcherNode
from ._scope import _current
from ._store_hot import MAX_RERUNS, MISSING, Listener, dispatch, same_value, value_at
from .exceptions import DisposedError

if TYPE_CHECKING:
    from ._store import _StoreState

__all__ = [
    "MAX_RERUNS",
    "MISSING",
    "Listener",
    "add_listener",
    "dispatch",
    "notify",
    "register",
    "same_value",
    "value_at",
]

_WATCHER = 2  # the engine's WATCHER flag: a dispatcher starts clean (not DIRTY)


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
