"""Listeners on store selectors, run by the store's own listener loop.

``store.listen("double", cb)`` on a selector used to subscribe an engine
watcher to the selector's computed, so every write went propagate -> flush
-> watcher -> computed -> view -> root: five nodes and some sixty Python
calls for ``double = get("n") * 2``. A selector reads the store through the
``get`` it is handed, and a store commit already tells which paths changed
(by identity: copy-on-write), so the listener here lives in the store copy's
listener loop (``_store_listen.dispatch``) like a path listener, and:

- records the paths the selector's last run read through ``get``, with the
  values it saw there; a commit that leaves all of them the same object is
  no change, without running the selector (the precision the views gave);
- otherwise runs the selector again, as a computed: through a private engine
  node (``update_computed``, under the engine lock), so a write from inside
  it is refused, its result is frozen like any computed's, an error is kept
  and reported, and any tracked read it makes that is not this store's
  ``get`` (an atom, another store, another selector...) is seen as a
  dependency of that node;
- compares the result with the value it last delivered (the equality
  subscribe_node uses) and calls the listener outside every lock.

Dependencies are recorded on every run, so a selector that reads ``a`` or
``b`` depending on a flag follows the flag; nothing runs while nobody
listens (the selector's own computed stays lazy for ``.value`` readers).

A selector whose run reads anything tracked besides its ``get`` cannot be
told changed by the store alone: that listener moves, for good, to an
engine watcher on the selector's computed (the old path), which delivers
only values different from the last one delivered here, so the switch
neither repeats nor drops a value.

``SelectorRun`` is in ``_store_hot``, which compiles with the engine; it is
re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._engine._nodes import Failure
from ._store_hot import PLACEHOLDER, Listener, SelectorRun
from ._store_listen import register
from ._subscribe import stop_effect

if TYPE_CHECKING:
    from ._store import Store, _StoreState

__all__ = ["SelectorRun", "listen_selector"]


def listen_selector(
    store: Store, state: _StoreState, key: str, callback: Callable[[Any], Any]
) -> Callable[[], None]:
    """``store.listen(key, callback)`` for the selector ``key``; return ``off``."""
    computed = store._selectors[key]
    run = SelectorRun(store, computed, store._selector_fns[key], state)
    listener = Listener((key,), callback, f"effect {'listener of ' + computed.name!r}", run)
    del callback

    def baseline(doc: Any) -> Any:
        # The value listening starts from (no call); an error is the caller's.
        seeded = run.seed(state)
        if seeded is not None:
            return seeded[0]
        value = run.evaluate(doc)
        if value.__class__ is Failure:
            value.throw()
        return value

    off_listener = register(state, listener, baseline, computed.name)
    if run.node.deps is not None:  # its first run read more than the store
        run.to_engine(listener)

    def off() -> None:
        off_listener()
        watcher = run.watcher
        if watcher is not None and watcher is not PLACEHOLDER:
            stop_effect(watcher)

    return off
