"""Listeners: a callback after each change of one node, built on a watcher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _engine
from ._engine import Node, WatcherNode
from ._scope import Scope, _current

__all__ = ["scope_runner", "start_effect", "stop_effect", "subscribe_node"]


def scope_runner(scope: Scope) -> Callable[[Callable[[], Any]], Any]:
    """The function that runs code with ``scope`` current (see ``Scope.runner``)."""
    return scope.runner


def start_effect(fn: Callable[[], Any], name: str, scope: Scope) -> WatcherNode:
    """Create, register and first-run a watcher owned by ``scope``."""
    watcher = WatcherNode(fn, name, scope, scope_runner(scope))
    scope._adopt_effect(watcher)
    _engine.start_watcher(watcher)
    return watcher


def stop_effect(watcher: WatcherNode) -> None:
    """Dispose a watcher made by :func:`start_effect` (idempotent)."""
    _engine.dispose_watcher(watcher)
    owner = watcher.owner
    if isinstance(owner, Scope):
        owner._release_effect(watcher)


def subscribe_node(
    node: Node, read: Callable[[Any], Any], callback: Callable[[Any], Any]
) -> Callable[[], None]:
    """Call ``callback(value)`` after each change of ``node``; return ``off``.

    The first run only records the value; later runs deliver it unless it
    equals the last one delivered (a batch that ends where it began is no
    change). Delivery is untracked and outside the engine lock.
    """
    equals = getattr(node, "equals", None)
    first = True
    last: Any = None

    def listen() -> None:
        nonlocal first, last
        value = read(node)
        if first:
            first = False
            last = value
            return
        try:
            if equals is not None:
                same = bool(equals(last, value))
            else:
                same = last is value or bool(last == value)
        except Exception:
            same = False
        last = value
        if not same:
            _engine.untracked_call(lambda: callback(value))

    owner = node.owner
    scope = owner if isinstance(owner, Scope) else _current.get()
    name = f"listener of {node.name}"
    watcher = start_effect(listen, name, scope)

    def off() -> None:
        stop_effect(watcher)

    return off
