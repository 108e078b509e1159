"""Wheel build hook: ship the reactive engine compiled with mypyc, on request.

Off by default, so that installing statekit never needs mypy or a C compiler::

    HATCH_BUILD_HOOK_ENABLE_CUSTOM=1 pip install .      # or: pip wheel .

builds a platform wheel (``cp311-cp311-<platform>``) whose engine modules are
extension modules, with the manifest of the sources they came from
(docs/engine.md, "Compiled mode"). hatchling installs the hook's dependencies
(mypy, setuptools) into the build environment only when it is enabled; the
compiler and the Python headers must be on the machine. The compile itself is
``tools/compile_engine.py``, the same as ``make compile``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _load_tool(root: str) -> ModuleType:
    path = Path(root) / "tools" / "compile_engine.py"
    spec = importlib.util.spec_from_file_location("_statekit_compile_engine", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the engine into the wheel; editable installs use ``make compile``."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._cleanup = False
        if self.target_name != "wheel" or version == "editable":
            return
        tool = _load_tool(self.root)
        missing = tool.missing_tools()
        if missing:
            # Asked for a compiled wheel: a pure one would be a silent surprise.
            needed = ", ".join(missing)
            raise RuntimeError(f"statekit: cannot compile the engine, missing: {needed}")
        if not tool.built_files() or tool.is_stale():
            # Built here for this wheel: leave the checkout as it was found.
            self._cleanup = not tool.built_files()
            tool.compile_engine()
        for path in tool.built_files():
            build_data["force_include"][str(path)] = path.relative_to(tool.SRC).as_posix()
        manifest = tool.sources.MANIFEST
        build_data["force_include"][str(manifest)] = manifest.relative_to(tool.SRC).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._cleanup:
            _load_tool(self.root).clean()
