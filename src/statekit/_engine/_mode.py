"""Whether the engine runs compiled (``make compile``) or as pure Python.

Never compiled itself. The compiled modules (``_sources.COMPILABLE``) are
extension modules that shadow the ``.py`` files of the same name
(docs/engine.md, "Compiled mode").

Example:
    >>> from statekit import _engine
    >>> _engine.COMPILED in (True, False)
    True
    >>> sorted(_engine.COMPILED_MODULES) == sorted(_sources.COMPILABLE)
    True
"""

from __future__ import annotations

import importlib.util

from . import _sources


def _is_compiled(module: str) -> bool:
    # Where the import system finds (or found) ``module``: a ``.so`` file or
    # its ``.py`` source. Found, not imported: a compilable module outside the
    # engine (the store's ``_store_hot``) imports the engine, which is still
    # being imported when this runs; the finder's answer is the file that
    # import will load (extension modules come first in the search).
    spec = importlib.util.find_spec(module)
    return spec is not None and not str(spec.origin).endswith(".py")


# The modules ``tools/compile_engine.py`` compiles, by whether they load as
# extension modules (a ``.so`` file) or from their ``.py`` source.
COMPILED_MODULES: dict[str, bool] = {module: _is_compiled(module) for module in _sources.COMPILABLE}
COMPILED = all(COMPILED_MODULES.values())


def stale_modules() -> list[str]:
    """The compiled modules whose source changed since ``make compile``.

    Empty in pure Python (nothing can be stale). A compiled module with no
    manifest entry counts as stale: nobody can tell what it was built from.
    """
    compiled = [name for name, is_compiled in COMPILED_MODULES.items() if is_compiled]
    if not compiled:
        return []
    built = _sources.built_hashes()
    now = _sources.source_hashes()
    return [name for name in compiled if built.get(name) != now[name]]


def describe() -> str:
    """The mode in a few words, for benchmark headers and bug reports.

    Example:
        >>> from statekit import _engine
        >>> _engine.describe() in ("engine: pure Python", "engine: compiled")
        True
    """
    if not COMPILED:
        return "engine: pure Python"
    stale = stale_modules()
    return "engine: compiled" + (f", STALE: {', '.join(stale)}" if stale else "")
