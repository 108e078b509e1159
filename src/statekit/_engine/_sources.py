"""Which modules compile, and the fingerprint of the sources they came from.

Never compiled itself, and standard library only: ``tools/compile_engine.py``
loads this file by its path (before any of statekit imports), and
``_mode.stale_modules`` reads the same facts at run time, so the two can
never disagree on what "compiled" covers.

Example:
    >>> from statekit._engine import _sources
    >>> _sources.COMPILABLE[:3]
    ('statekit._engine._nodes', 'statekit._engine._graph', 'statekit._engine._core')
    >>> _sources.COMPILABLE[3:]
    ('statekit._store_hot', 'statekit._paths', 'statekit._patch')
    >>> _sources.source_path("statekit._engine._core").name
    '_core.py'
    >>> sorted(_sources.source_hashes()) == sorted(_sources.COMPILABLE)
    True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Final

# The modules ``make compile`` turns into extension modules: the engine, the
# store's write path built on it (``_store_hot``), and JSON Pointer and JSON
# Patch (``_paths``, ``_patch``: every patch, undo and server PATCH). ``_engine/__init__``,
# ``_hooks``, ``_local``, ``_mode`` and this one stay Python on purpose (see
# their docstrings).
COMPILABLE: Final = (
    "statekit._engine._nodes",
    "statekit._engine._graph",
    "statekit._engine._core",
    "statekit._store_hot",
    "statekit._paths",
    "statekit._patch",
)

# mypyc puts the runtime shared by the modules of one group into one more
# extension module named after the group: ``statekit__mypyc``.
GROUP: Final = "statekit"

# The ``src`` folder: module names are paths relative to it.
SRC: Final = Path(__file__).resolve().parents[2]

# Written by ``make compile``: the sha256 of each source the ``.so`` files
# were built from. A source edited since then makes the build stale.
MANIFEST: Final = Path(__file__).resolve().parent / "compiled.json"


def source_path(module: str) -> Path:
    """The ``.py`` file of ``module`` (a dotted name from ``COMPILABLE``)."""
    return SRC.joinpath(*module.split(".")).with_suffix(".py")


def source_hashes() -> dict[str, str]:
    """``{module: sha256 of its source}`` for every compilable module."""
    return {
        module: hashlib.sha256(source_path(module).read_bytes()).hexdigest()
        for module in COMPILABLE
    }


def built_hashes() -> dict[str, str]:
    """What the manifest says the compiled modules were built from; empty if unreadable.

    A missing or damaged manifest reads as empty, so that every compiled module
    counts as stale: nobody can tell what it was built from.
    """
    try:
        built = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return built if isinstance(built, dict) else {}
