"""Versioned configuration with history, audit, rollback and a durable journal."""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._frozen import FrozenDict, freeze, thaw
from ..exceptions import PathError, ValidationError, VersionConflict
from ._diff import (
    DEFAULT_SECRETS,
    ConfigChange,
    Masked,
    Masker,
    diff,
    escape,
    split_path,
    to_patch,
)
from ._journal import FORMAT, Journal, encode
from ._schema import Schema, make_validator
from ._version import VersionedConfig

__all__ = ["ConfigManager"]

Listener = Callable[[VersionedConfig], Any]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
_PLAIN = frozenset({str, int, float, bool, type(None)})  # never hold a Masked inside


def _same(a: Any, b: Any) -> bool:
    # 1 == True == 1.0, but a config that says true where it said 1 changed.
    if a is b:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a == b
    return type(a) is type(b) and a == b


def _at(config: Any, keys: list[str]) -> Any:
    """The value at ``keys`` in ``config``, or ``_MISSING``."""
    node = config
    for key in keys:
        if isinstance(node, Mapping):
            if key not in node:
                return _MISSING
            node = node[key]
        elif isinstance(node, list | tuple) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return _MISSING
    return node


class ConfigManager:
    """A configuration with versions: who changed what, when, why, and the way back.

    Every change that actually changes something makes a new version (an
    update that changes nothing makes none). Each version records its author,
    reason and time; the history is never rewritten — a rollback or reset adds
    a version. Updates can be compare-and-set (``expected_version=``) and
    validated by a schema (a pydantic model) before they are committed.
    Listeners, optionally filtered by path, run after the commit, outside the
    lock. Values that look like secrets are masked in the history and in
    diffs (``reveal=True`` shows them).

    With ``path=``, every version is appended to a checksummed journal and
    synced to disk before ``update_config`` returns; reopening the same path
    recovers the whole history, even after a crash (a record torn by the
    crash was never acknowledged and is dropped). An existing journal wins
    over ``initial_config``.

    Versions are numbered from 0 (the initial config), so
    ``get_history()[n].version == n``.

    Example:
        >>> from statekit.config import ConfigManager
        >>> config = ConfigManager(initial_config={"log_level": "INFO", "timeout": 30})
        >>> _ = config.update_config({"log_level": "DEBUG", "timeout": 60}, author="ops",
        ...                          reason="debugging")
        >>> config.get_config()["log_level"], config.get_version()
        ('DEBUG', 1)
        >>> [(v.version, dict(v.changes)) for v in config.get_history()][1:]
        [(1, {'log_level': 'DEBUG', 'timeout': 60})]
        >>> config.rollback(0).config["timeout"], config.get_version()
        (30, 2)
    """

    def __init__(
        self,
        initial_config: Mapping[str, Any] | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        schema: Schema = None,
        secrets: Iterable[str] | None = None,
        name: str = "config",
        author: str | None = None,
    ) -> None:
        self.name = name
        self._author = author
        self._validate = make_validator(schema, name)
        self._schema = schema
        self._masker = Masker(DEFAULT_SECRETS if secrets is None else secrets)
        self._lock = threading.Lock()
        self._history: list[VersionedConfig] = []
        self._masked: dict[int, VersionedConfig] = {}
        self._subscribers: tuple[tuple[Listener, list[str] | None], ...] = ()
        self._pending: deque[tuple[VersionedConfig, VersionedConfig]] = deque()
        self._delivering = False
        self._journal: Journal | None = None
        self._initial: Mapping[str, Any] = FrozenDict()
        if path is not None:
            journal = Journal(path)
            records = journal.open()
            # Closes the file if the manager is dropped without close().
            self._finalizer = weakref.finalize(self, journal.close)
            self._journal = journal
            try:
                if records:
                    self._replay(records)
                    return
                self._start(initial_config)
                journal.append(self._base_record(self._history[0]))
            except BaseException:
                journal.close()
                raise
        else:
            self._start(initial_config)

    # -- reading ---------------------------------------------------------------

    def get_config(self) -> Mapping[str, Any]:
        """The current configuration (a frozen dict: copy it to change it).

        Example:
            >>> from statekit.config import ConfigManager
            >>> ConfigManager(initial_config={"a": 1}).get_config()
            {'a': 1}
        """
        return self._history[-1].config

    def get(self, path: str, default: Any = None) -> Any:
        """The value at a JSON Pointer ``path`` (``"features/auth"``), or ``default``.

        Example:
            >>> from statekit.config import ConfigManager
            >>> ConfigManager(initial_config={"f": {"auth": True}}).get("f/auth")
            True
        """
        value = _at(self._history[-1].config, split_path(path))
        return default if value is _MISSING else value

    def get_version(self) -> int:
        """The current version number (0 for the initial config).

        Example:
            >>> from statekit.config import ConfigManager
            >>> ConfigManager(initial_config={}).get_version()
            0
        """
        return self._history[-1].version

    @property
    def version(self) -> int:
        """The current version number (same as :meth:`get_version`)."""
        return self._history[-1].version

    @property
    def current(self) -> VersionedConfig:
        """The current version entry (secrets not masked)."""
        return self._history[-1]

    def get_history(self, *, reveal: bool = False) -> list[VersionedConfig]:
        """Every version, oldest first, secrets masked unless ``reveal=True``.

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"db_password": "hunter2"})
            >>> c.get_history()[0].config["db_password"]
            '********'
        """
        history = list(self._history)
        return history if reveal else [self._mask_entry(v) for v in history]

    def get_entry(self, version: int, *, reveal: bool = False) -> VersionedConfig:
        """The entry of one version; ``KeyError`` if it does not exist (any more).

        Example:
            >>> from statekit.config import ConfigManager
            >>> ConfigManager(initial_config={"a": 1}).get_entry(0).config
            {'a': 1}
        """
        entry = self._entry(version)
        return entry if reveal else self._mask_entry(entry)

    def get_model(self) -> Any:
        """The current configuration as an instance of the pydantic ``schema``.

        Example:
            >>> import pydantic
            >>> from statekit.config import ConfigManager
            >>> class Settings(pydantic.BaseModel):
            ...     timeout: int = 30
            >>> ConfigManager(initial_config={}, schema=Settings).get_model().timeout
            30
        """
        if not hasattr(self._schema, "model_validate"):
            raise TypeError(f"config {self.name!r} has no pydantic schema")
        return self._schema.model_validate(thaw(self.get_config()))

    def diff(self, a: int, b: int | None = None, *, reveal: bool = False) -> list[ConfigChange]:
        """The changes from version ``a`` to version ``b`` (default: current), by path.

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"t": 30, "f": {"x": False}})
            >>> _ = c.update_config({"f": {"x": True}})
            >>> c.diff(0)
            [ConfigChange(op='replace', path='/f/x', old=False, new=True)]
        """
        old = self._entry(a).config
        new = self._entry(b).config if b is not None else self.get_config()
        changes = diff(old, new)
        return changes if reveal else self._masker.mask_changes(changes)

    def diff_patch(
        self, a: int, b: int | None = None, *, reveal: bool = False
    ) -> list[dict[str, Any]]:
        """The changes from ``a`` to ``b`` as an RFC 6902 JSON Patch.

        Secrets are masked unless ``reveal=True`` (pass it to get a patch
        you can apply).

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"t": 30})
            >>> _ = c.update_config({"t": 60})
            >>> c.diff_patch(0, 1)
            [{'op': 'replace', 'path': '/t', 'value': 60}]
        """
        return to_patch(self.diff(a, b, reveal=reveal))

    # -- changing -----------------------------------------------------------------

    def update_config(
        self,
        changes: Mapping[str, Any],
        *,
        author: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> VersionedConfig:
        """Set top-level keys; return the new version (or the current one if nothing changed).

        ``expected_version`` makes it a compare-and-set: if the config is no
        longer at that version, :class:`~statekit.VersionConflict` is raised
        and nothing changes. A masked secret (from the history) written back
        keeps the real value.

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"timeout": 30})
            >>> c.update_config({"timeout": 60}, author="ana", reason="slow db").author
            'ana'
            >>> c.update_config({"timeout": 60}).version  # no-op: no new version
            1
        """
        if not isinstance(changes, Mapping):
            raise TypeError(f"changes must be a mapping, got {type(changes).__name__}")

        def build(current: Mapping[str, Any]) -> dict[str, Any]:
            return {
                key: self._unmask(value, current.get(key, _MISSING), f"/{escape(key)}")
                for key, value in changes.items()
            }

        return self._commit(build, author, reason, expected_version, metadata, partial=True)

    def set(
        self,
        path: str,
        value: Any,
        *,
        author: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> VersionedConfig:
        """Set the value at a JSON Pointer ``path``; its parent must exist.

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"features": {"auth": True}})
            >>> c.set("features/metrics", True).config["features"]
            {'auth': True, 'metrics': True}
        """
        keys = split_path(path)
        if not keys:
            raise PathError(path, None, "cannot set the root; use replace_config()")

        def build(current: Mapping[str, Any]) -> dict[str, Any]:
            root: dict[str, Any] = dict(current)
            node: Any = root
            for key in keys[:-1]:
                child = node.get(key, _MISSING)
                if not isinstance(child, Mapping):
                    why = "no such key" if child is _MISSING else "not an object"
                    raise PathError(path, key, why)
                node[key] = dict(child)  # copy the spine only; the rest is shared
                node = node[key]
            leaf = keys[-1]
            node[leaf] = self._unmask(value, node.get(leaf, _MISSING), path)
            return root

        return self._commit(build, author, reason, expected_version, metadata)

    def remove(
        self,
        *keys: str,
        author: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> VersionedConfig:
        """Delete top-level ``keys``; a missing key raises :class:`~statekit.PathError`.

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"a": 1, "b": 2})
            >>> c.remove("b").removed
            ('b',)
        """

        def build(current: Mapping[str, Any]) -> dict[str, Any]:
            merged = dict(current)
            for key in keys:
                if key not in merged:
                    raise PathError(f"/{escape(key)}", key, "no such key")
                del merged[key]
            return merged

        return self._commit(build, author, reason, expected_version, metadata)

    def replace_config(
        self,
        config: Mapping[str, Any],
        *,
        author: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> VersionedConfig:
        """Replace the whole configuration (keys not in ``config`` are removed).

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"a": 1})
            >>> c.replace_config({"b": 2}).config
            {'b': 2}
        """

        def build(current: Mapping[str, Any]) -> dict[str, Any]:
            return {
                k: self._unmask(v, current.get(k, _MISSING), f"/{escape(k)}")
                for k, v in config.items()
            }

        return self._commit(build, author, reason, expected_version, metadata)

    def rollback(
        self,
        to_version: int,
        *,
        author: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> VersionedConfig:
        """Make a new version whose config is that of ``to_version`` (secrets included).

        History is never rewritten: the rollback is itself a version, with
        ``metadata["rollback_to"]``. Rolling back to a config equal to the
        current one makes no version.

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"level": "INFO"})
            >>> _ = c.update_config({"level": "DEBUG"})
            >>> v = c.rollback(0, author="ana", reason="too noisy")
            >>> v.version, v.config["level"], v.metadata["rollback_to"]
            (2, 'INFO', 0)
        """
        target = self._entry(to_version)
        return self._commit(
            lambda _current: dict(target.config),
            author,
            reason if reason is not None else f"rollback to version {to_version}",
            expected_version,
            {"rollback_to": to_version},
        )

    def reset(
        self,
        *,
        author: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> VersionedConfig:
        """Go back to the initial configuration (as a new version).

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"timeout": 30})
            >>> _ = c.update_config({"timeout": 60})
            >>> c.reset().config
            {'timeout': 30}
        """
        initial = self._initial
        return self._commit(
            lambda _current: dict(initial),
            author,
            reason if reason is not None else "reset to the initial configuration",
            expected_version,
            {"reset": True},
        )

    # -- listening ---------------------------------------------------------------

    def subscribe(self, fn: Listener, *, path: str | None = None) -> Callable[[], None]:
        """Call ``fn(version)`` after each commit (only when ``path`` changed, if given).

        Listeners run after the commit, outside the lock, one at a time and
        in version order; an exception in one goes to statekit's error hook.
        Returns a function that unsubscribes.

        Example:
            >>> from statekit.config import ConfigManager
            >>> c = ConfigManager(initial_config={"log": "INFO", "t": 1})
            >>> off = c.subscribe(lambda v: print("log is", v.config["log"]), path="log")
            >>> _ = c.update_config({"t": 2})        # not under /log: silent
            >>> _ = c.update_config({"log": "DEBUG"})
            log is DEBUG
            >>> off()
        """
        entry = (fn, split_path(path) if path is not None else None)
        with self._lock:
            self._subscribers = (*self._subscribers, entry)

        def unsubscribe() -> None:
            with self._lock:
                subs = list(self._subscribers)
                if entry in subs:
                    subs.remove(entry)
                self._subscribers = tuple(subs)

        return unsubscribe

    # -- durability --------------------------------------------------------------

    def compact(self, keep: int | None = None) -> None:
        """Rewrite the journal atomically, keeping the last ``keep`` versions (all if None).

        Version numbers are kept; only older entries are dropped (``reset()``
        still knows the initial config). Without ``path=`` this only trims
        the in-memory history.
        """
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        with self._lock:
            retained = self._history[-keep:] if keep else list(self._history)
            if self._journal is not None:
                records = [self._base_record(retained[0])]
                records.extend(self._delta_record(v) for v in retained[1:])
                self._journal.rewrite(records)
            self._history = retained
            self._masked = {k: v for k, v in self._masked.items() if k >= retained[0].version}

    def close(self) -> None:
        """Close the journal file (no-op without ``path=``); the manager stays readable."""
        if self._journal is not None:
            self._journal.close()

    def __enter__(self) -> ConfigManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConfigManager(name={self.name!r}, version={self.version})"

    # -- machinery -------------------------------------------------------------------

    def _start(self, initial_config: Mapping[str, Any] | None) -> None:
        config: Mapping[str, Any] = dict(initial_config or {})
        if self._validate is not None:
            config = self._validate(config)
        frozen = freeze(dict(config))
        if self._journal is not None:
            frozen = FrozenDict(self._json_normal(frozen))
        self._initial = frozen
        meta = {
            "author": self._author,
            "reason": "initial configuration",
            "timestamp": time.time(),
        }
        self._history = [VersionedConfig(0, frozen, meta, frozen, ())]

    def _base_record(self, entry: VersionedConfig) -> dict[str, Any]:
        return {
            "kind": "base",
            "format": FORMAT,
            "version": entry.version,
            "config": thaw(entry.config),
            "metadata": thaw(entry.metadata),
            "changes": thaw(entry.changes),
            "removed": list(entry.removed),
            "initial": thaw(self._initial),
        }

    def _delta_record(self, entry: VersionedConfig) -> dict[str, Any]:
        return {
            "kind": "delta",
            "version": entry.version,
            "set": thaw(entry.changes),
            "remove": list(entry.removed),
            "metadata": thaw(entry.metadata),
        }

    def _replay(self, records: list[dict[str, Any]]) -> None:
        base = records[0]
        self._initial = freeze(base.get("initial", base["config"]))
        history = [
            VersionedConfig(
                base["version"],
                base["config"],
                base.get("metadata", {}),
                base.get("changes", {}),
                tuple(base.get("removed", ())),
            )
        ]
        for record in records[1:]:
            config = dict(history[-1].config)
            for key in record["remove"]:
                config.pop(key, None)
            changes = freeze(record["set"])
            config.update(changes)
            history.append(
                VersionedConfig(
                    record["version"],
                    freeze(config),
                    record["metadata"],
                    changes,
                    tuple(record["remove"]),
                )
            )
        self._history = history

    def _entry(self, version: int | None) -> VersionedConfig:
        history = self._history
        if version is None:
            return history[-1]
        index = version - history[0].version
        if not 0 <= index < len(history):
            raise KeyError(
                f"config {self.name!r} has no version {version} "
                f"(versions {history[0].version}..{history[-1].version})"
            )
        return history[index]

    def _mask_entry(self, entry: VersionedConfig) -> VersionedConfig:
        cached = self._masked.get(entry.version)
        if cached is not None:
            return cached
        mask = self._masker.mask
        config = mask(entry.config)
        changes = {k: mask(v, f"/{escape(k)}") for k, v in entry.changes.items()}
        if config is entry.config and all(changes[k] is v for k, v in entry.changes.items()):
            masked = entry
        else:
            masked = VersionedConfig(entry.version, config, entry.metadata, changes, entry.removed)
        self._masked[entry.version] = masked
        return masked

    def _unmask(self, value: Any, current: Any, path: str) -> Any:
        """Put real secrets back where a masked view was written back."""
        if type(value) in _PLAIN:
            return value
        if isinstance(value, Masked):
            if current is _MISSING or isinstance(current, Masked):
                raise ValidationError(
                    f"config {self.name!r}: {path} is a masked secret ({value!r}) and there "
                    "is no real value there to keep; give the real value"
                )
            return current
        if isinstance(value, Mapping):
            cur = current if isinstance(current, Mapping) else {}
            return {
                k: self._unmask(v, cur.get(k, _MISSING), f"{path}/{escape(str(k))}")
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            seq = current if isinstance(current, list | tuple) else ()
            return [
                self._unmask(v, seq[i] if i < len(seq) else _MISSING, f"{path}/{i}")
                for i, v in enumerate(value)
            ]
        return value

    def _commit(
        self,
        build: Callable[[Mapping[str, Any]], Mapping[str, Any]],
        author: str | None,
        reason: str | None,
        expected_version: int | None,
        metadata: Mapping[str, Any] | None,
        *,
        partial: bool = False,
    ) -> VersionedConfig:
        """Commit what ``build(current_config)`` returns: the whole config, or
        with ``partial=True`` only the top-level keys to set."""
        with self._lock:
            current = self._history[-1]
            if expected_version is not None and expected_version != current.version:
                raise VersionConflict(
                    f"config {self.name!r} is at version {current.version}, "
                    f"not the expected {expected_version}; reload and retry"
                )
            old = current.config
            built: Mapping[str, Any] = build(old)
            if partial and self._validate is None:
                # Only the keys given can have changed: compare just those.
                candidate: Mapping[str, Any] = freeze(dict(built))
                removed: tuple[str, ...] = ()
            else:
                candidate = {**old, **built} if partial else built
                if self._validate is not None:
                    candidate = self._validate(candidate)
                # Frozen before comparing: a list given equals the frozen list stored.
                candidate = freeze(dict(candidate))
                removed = tuple(k for k in old if k not in candidate)
            changes = {k: v for k, v in candidate.items() if k not in old or not _same(old[k], v)}
            if changes and self._journal is not None:
                # A durable config keeps what the journal gives back (tuples
                # become lists...), so compare in that form too.
                changes = {
                    k: v
                    for k, v in self._json_normal(changes).items()
                    if k not in old or not _same(old[k], v)
                }
            if not changes and not removed:
                return current  # a no-op makes no version
            meta: dict[str, Any] = {
                "author": author if author is not None else self._author,
                "reason": reason,
                "timestamp": time.time(),
            }
            meta.update(metadata or {})
            version = current.version + 1
            if self._journal is not None:
                self._write(version, changes, removed, meta)
            config = dict(old)
            for key in removed:
                del config[key]
            config.update(changes)
            entry = VersionedConfig._trusted(
                version, FrozenDict(config), freeze(meta), FrozenDict(changes), removed
            )
            self._history.append(entry)
            if not self._subscribers:
                return entry
            self._pending.append((current, entry))
            if self._delivering:
                return entry  # the thread delivering will deliver ours too, in order
            self._delivering = True
        self._deliver()
        return entry

    def _json_normal(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        try:
            plain = json.loads(json.dumps(thaw(changes), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"config {self.name!r}: a durable config holds JSON values only: {exc}"
            ) from exc
        normal: dict[str, Any] = freeze(plain)
        return normal

    def _write(
        self,
        version: int,
        changes: Mapping[str, Any],
        removed: tuple[str, ...],
        meta: Mapping[str, Any],
    ) -> None:
        assert self._journal is not None
        record = {
            "kind": "delta",
            "version": version,
            "set": thaw(changes),
            "remove": list(removed),
            "metadata": thaw(meta),
        }
        try:
            line = encode(record)
        except (TypeError, ValueError) as exc:  # metadata that JSON cannot hold
            raise ValidationError(
                f"config {self.name!r}: a durable config holds JSON values only: {exc}"
            ) from exc
        self._journal.append_encoded(line)

    def _deliver(self) -> None:
        from .._engine import report

        while True:
            with self._lock:
                if not self._pending:
                    self._delivering = False
                    return
                old, new = self._pending.popleft()
                subscribers = self._subscribers
            for fn, keys in subscribers:
                if keys is not None and _same(_at(old.config, keys), _at(new.config, keys)):
                    continue
                try:
                    fn(new)
                except Exception as exc:
                    report(exc, f"listener {fn!r} of config {self.name!r}")
