"""The reactive graph: nodes, links, propagation, batching, the effect queue.

Standard library only and no public names: the primitives (``_atom``,
``_computed``, ``_effect``) are the only users of this package.
"""

from ._core import (
    MAX_NESTING,
    Batch,
    active_node,
    definition_getters,
    dispose_node,
    dispose_watcher,
    flush,
    in_batch,
    lock,
    modify_signal,
    peek_computed,
    read_computed,
    read_signal,
    retire_node,
    schedule,
    set_context_probe,
    set_owner_check,
    set_value_filter,
    start_watcher,
    tls,
    untracked_call,
    write_changed,
    write_signal,
)
from ._hooks import report, set_error_hook
from ._mode import COMPILED, COMPILED_MODULES, stale_modules
from ._nodes import DISPOSED as DISPOSED_FLAG
from ._nodes import NEW_COMPUTED_FLAGS, UNSET, ComputedNode, Node, SignalNode, WatcherNode

__all__ = [
    "COMPILED",
    "COMPILED_MODULES",
    "DISPOSED_FLAG",
    "MAX_NESTING",
    "NEW_COMPUTED_FLAGS",
    "UNSET",
    "Batch",
    "ComputedNode",
    "Node",
    "SignalNode",
    "WatcherNode",
    "active_node",
    "definition_getters",
    "dispose_node",
    "dispose_watcher",
    "flush",
    "in_batch",
    "lock",
    "modify_signal",
    "peek_computed",
    "read_computed",
    "read_signal",
    "report",
    "retire_node",
    "schedule",
    "set_context_probe",
    "set_error_hook",
    "set_owner_check",
    "set_value_filter",
    "stale_modules",
    "start_watcher",
    "tls",
    "untracked_call",
    "write_changed",
    "write_signal",
]
