"""``provide.foundation.state``, as its documentation describes it, on statekit.

Change ``from provide.foundation.state import ...`` to
``from statekit.compat.foundation import ...`` and the documented examples
run: ``ImmutableState(**fields).update(...)``,
``StateMachine(initial_state=..., transitions=...)`` with ``transition`` and
``can_transition``, ``ConfigManager(initial_config=...)`` with
``update_config``, ``get_config``, ``get_version`` and ``get_history``, and
``VersionedConfig(version=..., config=..., metadata=...)``.

These are statekit's own classes, not copies: the documented API is a subset
of theirs, so everything else they offer (events and guards, history and
rollback, durable journals...) is there too.

``StateManager(initial_state=...)`` arrives with the Store, over which it is
a façade.

Example:
    >>> from statekit.compat.foundation import ImmutableState
    >>> state = ImmutableState(user_id="user_123", status="active", count=0)
    >>> new_state = state.update(count=1, status="processing")
    >>> state.count, new_state.count
    (0, 1)
"""

from __future__ import annotations

from ..config import ConfigManager, VersionedConfig
from ..immutable import ImmutableState
from ..machine import StateMachine

__all__ = ["ConfigManager", "ImmutableState", "StateMachine", "VersionedConfig"]
