"""One version of a configuration: :class:`VersionedConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._frozen import FrozenDict, freeze, thaw
from ._diff import ConfigChange, diff

__all__ = ["VersionedConfig"]


@dataclass(frozen=True, slots=True)
class VersionedConfig:
    """A configuration at one version, with who changed what and why.

    ``config`` is the whole configuration at this version, ``changes`` the
    top-level keys this version set (with their new values), ``removed`` the
    keys it deleted, and ``metadata`` the audit record: ``author``,
    ``reason`` and ``timestamp`` always, plus anything given. Everything is
    frozen: a version never changes once made. :class:`ConfigManager`
    history entries are ``VersionedConfig`` objects; you can also build them
    yourself, as the seed does.

    Example:
        >>> from statekit.config import VersionedConfig
        >>> v1 = VersionedConfig(version=1, config={"db": "localhost", "cache": True},
        ...                      metadata={"author": "admin", "reason": "Initial configuration"})
        >>> v2 = VersionedConfig(version=2, config={"db": "prod", "cache": True},
        ...                      metadata={"author": "admin", "reason": "Production migration"})
        >>> v2.reason, [c.path for c in v1.diff(v2)]
        ('Production migration', ['/db'])
    """

    version: int
    config: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool):
            raise TypeError(f"version must be an int, got {self.version!r}")
        for name in ("config", "metadata", "changes"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise TypeError(f"{name} must be a mapping, got {type(value).__name__}")
            # Frozen so that no holder of a version can rewrite history
            # (an already frozen dict is kept as it is: versions share it).
            if type(value) is not FrozenDict:
                value = freeze(dict(value))
            object.__setattr__(self, name, value)
        object.__setattr__(self, "removed", tuple(self.removed))

    @classmethod
    def _trusted(
        cls,
        version: int,
        config: FrozenDict[str, Any],
        metadata: FrozenDict[str, Any],
        changes: FrozenDict[str, Any],
        removed: tuple[str, ...],
    ) -> VersionedConfig:
        """Build from parts already checked and frozen (skips ``__post_init__``)."""
        entry = object.__new__(cls)
        for name, value in (
            ("version", version),
            ("config", config),
            ("metadata", metadata),
            ("changes", changes),
            ("removed", removed),
        ):
            object.__setattr__(entry, name, value)
        return entry

    @property
    def author(self) -> Any:
        """Who made this version (``metadata["author"]``, or ``None``)."""
        return self.metadata.get("author")

    @property
    def reason(self) -> Any:
        """Why this version was made (``metadata["reason"]``, or ``None``)."""
        return self.metadata.get("reason")

    @property
    def timestamp(self) -> Any:
        """When this version was made, in seconds since the epoch (or ``None``)."""
        return self.metadata.get("timestamp")

    def diff(self, other: VersionedConfig | Mapping[str, Any]) -> list[ConfigChange]:
        """The changes from this version's config to ``other``'s, by JSON Pointer path.

        Example:
            >>> from statekit.config import VersionedConfig
            >>> a = VersionedConfig(version=1, config={"t": 30})
            >>> a.diff({"t": 60})
            [ConfigChange(op='replace', path='/t', old=30, new=60)]
        """
        target = other.config if isinstance(other, VersionedConfig) else other
        return diff(self.config, target)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready copy.

        Example:
            >>> from statekit.config import VersionedConfig
            >>> VersionedConfig(version=0, config={"a": [1]}).to_dict()["config"]
            {'a': [1]}
        """
        return {
            "version": self.version,
            "config": thaw(self.config),
            "metadata": thaw(self.metadata),
            "changes": thaw(self.changes),
            "removed": list(self.removed),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionedConfig:
        """Rebuild a version from :meth:`to_dict` output.

        Example:
            >>> from statekit.config import VersionedConfig
            >>> v = VersionedConfig(version=3, config={"a": 1}, metadata={"author": "me"})
            >>> VersionedConfig.from_dict(v.to_dict()) == v
            True
        """
        return cls(
            version=data["version"],
            config=data["config"],
            metadata=data.get("metadata", {}),
            changes=data.get("changes", {}),
            removed=tuple(data.get("removed", ())),
        )
