"""statekit: application state for Python.

Reactive atoms, computed values and effects whose values live in scopes
(app → user → session → request); see ``docs/`` for the guide.

Example:
    >>> import statekit as sk
    >>> count = sk.atom(0, name="count")
    >>> double = sk.computed(lambda: count.value * 2)
    >>> count.value = 21
    >>> double.value
    42

``import statekit`` loads the standard library only; names that need an
optional dependency load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._action import Action, ActionCall, AsyncAction, SyncAction, action
from ._async_computed import AsyncComputed
from ._atom import Atom, atom
from ._computed import Computed, computed
from ._effect import Effect, batch, effect, untracked
from ._engine import set_error_hook
from ._frozen import FrozenDict, FrozenList, freeze, thaw
from ._scope import (
    Scope,
    app_scope,
    current_scope,
    new_app_scope,
    request,
    session,
    user,
)
from ._store import Store, StoreAtom
from .config import ConfigChange, ConfigManager, VersionedConfig
from .exceptions import (
    ActionCancelled,
    ActionDropped,
    ActionError,
    CycleError,
    DisposedError,
    InvalidDefinition,
    PatchError,
    PatchTestFailed,
    PathError,
    ReadOnlyError,
    ScopeError,
    StatekitError,
    TransitionNotAllowed,
    ValidationError,
    VersionConflict,
)
from .machine import (  # machine.State stays there: sk.State is the model
    AsyncStateMachine,
    StateMachine,
)

__version__ = "0.1.0"

# Public names whose modules import optional dependencies: loaded on first
# access so that ``import statekit`` stays free of third-party imports.
_LAZY: dict[str, str] = {
    "ImmutableState": ".immutable",
    "State": "._model",
    "StateRef": ".immutable",
}

__all__ = [
    "Action",
    "ActionCall",
    "ActionCancelled",
    "ActionDropped",
    "ActionError",
    "AsyncAction",
    "AsyncComputed",
    "AsyncStateMachine",
    "Atom",
    "Computed",
    "ConfigChange",
    "ConfigManager",
    "CycleError",
    "DisposedError",
    "Effect",
    "FrozenDict",
    "FrozenList",
    "ImmutableState",
    "InvalidDefinition",
    "PatchError",
    "PatchTestFailed",
    "PathError",
    "ReadOnlyError",
    "Scope",
    "ScopeError",
    "State",
    "StateMachine",
    "StateRef",
    "StatekitError",
    "Store",
    "StoreAtom",
    "SyncAction",
    "TransitionNotAllowed",
    "ValidationError",
    "VersionConflict",
    "VersionedConfig",
    "action",
    "app_scope",
    "atom",
    "batch",
    "computed",
    "current_scope",
    "effect",
    "freeze",
    "new_app_scope",
    "request",
    "session",
    "set_error_hook",
    "thaw",
    "untracked",
    "user",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'statekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
