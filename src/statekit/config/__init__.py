"""Versioned configuration: :class:`ConfigManager` and :class:`VersionedConfig`.

Every change makes a version that records who made it, why and when; the
history can be listed, diffed by path (or as a JSON Patch) and rolled back —
by adding a version, never by rewriting history. Updates can be
compare-and-set and validated by a pydantic model before they are
committed; listeners can watch one path; secrets are masked in the history
and diffs. With ``path=`` every version goes to a checksummed, fsync'd,
append-only journal that survives crashes.

Example:
    >>> from statekit.config import ConfigManager
    >>> config = ConfigManager(initial_config={"timeout": 30})
    >>> _ = config.update_config({"timeout": 60}, author="ana", reason="slow upstream")
    >>> [(v.version, v.author) for v in config.get_history()]
    [(0, None), (1, 'ana')]
    >>> config.diff(0)
    [ConfigChange(op='replace', path='/timeout', old=30, new=60)]
"""

from __future__ import annotations

from ._diff import DEFAULT_SECRETS, MASK, ConfigChange, Masked
from ._manager import ConfigManager
from ._version import VersionedConfig

__all__ = [
    "DEFAULT_SECRETS",
    "MASK",
    "ConfigChange",
    "ConfigManager",
    "Masked",
    "VersionedConfig",
]
