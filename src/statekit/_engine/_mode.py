"""Whether the engine runs compiled (``make compile``) or as pure Python.

Never compiled itself. The compiled modules are extension modules that
shadow the ``.py`` files of the same name (docs/engine.md, "Compiled mode").

Example:
    >>> from statekit import _engine
    >>> _engine.COMPILED in (True, False)
    True
    >>> sorted(_engine.COMPILED_MODULES) == sorted(_sources.COMPILABLE)
    True
"""

from __future__ import annotations

import json

from . import _core, _graph, _nodes, _sources

# The modules ``tools/compile_engine.py`` compiles, by whether they loaded as
# extension modules (a ``.so`` file) or from their ``.py`` source.
COMPILED_MODULES: dict[str, bool] = {
    module.__name__: not str(module.__file__).endswith(".py") for module in (_nodes, _graph, _core)
}
COMPILED = all(COMPILED_MODULES.values())


def stale_modules() -> list[str]:
    """The compiled modules whose source changed since ``make compile``.

    Empty in pure Python (nothing can be stale). A compiled module with no
    manifest entry counts as stale: nobody can tell what it was built from.
    """
    compiled = [name for name, is_compiled in COMPILED_MODULES.items() if is_compiled]
    if not compiled:
        return []
    try:
        built = json.loads(_sources.MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        built = {}
    if not isinstance(built, dict):
        built = {}
    now = _sources.source_hashes()
    return [name for name in compiled if built.get(name) != now[name]]
