"""Backends for the parametrised suites: memory, SQLite (a tmp file) and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statekit.backends import Backend, MemoryBackend, SQLiteBackend

BACKENDS = ["memory", "sqlite"]


def make_backend(kind: str, tmp_path: Path, **options: Any) -> Backend:
    if kind == "memory":
        return MemoryBackend(**options)
    if kind == "sqlite":
        tmp_path.mkdir(parents=True, exist_ok=True)
        return SQLiteBackend(tmp_path / "state.db", **options)
    raise ValueError(kind)
