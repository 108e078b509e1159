"""Compile the reactive engine with mypyc, in place: ``make compile``.

The engine (``statekit/_engine/_nodes.py``, ``_graph.py``, ``_core.py``) and
the store's write path (``statekit/_store_hot.py``) and JSON Pointer and Patch
(``statekit/_paths.py``, ``_patch.py``), listed in ``_engine/_sources.py``, are
ordinary Python and always work as such.
Compiled, the same sources become extension modules next to the ``.py``
files, and Python imports those instead (an extension module wins over a
``.py`` of the same name). mypyc comes with mypy (the ``dev`` extra); a C
compiler and the Python headers are needed. ``make pure`` (``--clean``) removes what this builds.

Why an explicit step and not an always-on build hook: installing statekit
must never need a compiler or mypy, and which mode a checkout runs in should
be a visible choice (``statekit._engine.COMPILED``, printed by the
benchmark). A wheel built with the opt-in hook (``hatch_build.py``) calls
``compile_engine`` here too. See docs/engine.md, "Compiled mode".

Options:
    --clean        remove the compiled modules (back to pure Python)
    --refresh      rebuild only if compiled modules exist and are stale
    --if-possible  compile when mypyc and a C compiler are there, else say why and go on
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "mypyc"


def _load_sources() -> ModuleType:
    # By path, not ``import statekit``: the package may hold stale extension
    # modules, and this tool must work whatever state the checkout is in.
    path = ROOT / "src" / "statekit" / "_engine" / "_sources.py"
    spec = importlib.util.spec_from_file_location("_statekit_engine_sources", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sources = _load_sources()
SRC: Path = sources.SRC


def built_files() -> list[Path]:
    """The extension modules a compile leaves in ``src``."""
    found: list[Path] = []
    for module in sources.COMPILABLE:
        source = sources.source_path(module)
        found += sorted(source.parent.glob(source.stem + ".*.so"))
    return found + sorted(SRC.glob(f"{sources.GROUP}__mypyc.*.so"))


def clean() -> None:
    """Remove the extension modules, the manifest and the build folder."""
    for path in built_files():
        path.unlink()
    sources.MANIFEST.unlink(missing_ok=True)
    shutil.rmtree(BUILD, ignore_errors=True)


def missing_tools() -> list[str]:
    """What a compile needs and this machine lacks (empty: it can compile)."""
    missing = []
    if importlib.util.find_spec("mypyc") is None:
        missing.append("mypyc (pip install mypy)")
    if importlib.util.find_spec("setuptools") is None:
        missing.append("setuptools")
    compiler = str(sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        missing.append(f"a C compiler ({compiler})")
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        missing.append(f"the Python headers ({include})")
    return missing


def is_stale() -> bool:
    """Whether compiled modules exist and were built from other sources."""
    if not built_files():
        return False
    return bool(sources.built_hashes() != sources.source_hashes())


def compile_engine() -> None:
    """Build the extension modules in place and record what they came from."""
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped,unused-ignore]

    clean()
    hashes = sources.source_hashes()
    paths = [str(sources.source_path(m).relative_to(SRC)) for m in sources.COMPILABLE]
    cwd = Path.cwd()
    os.chdir(SRC)  # module names follow from paths relative to here
    try:
        extensions = mypycify(paths, group_name=sources.GROUP, target_dir=str(BUILD / "c"))
        setup(
            name="statekit-engine",
            ext_modules=list(extensions),
            script_args=[
                "--quiet",
                "build_ext",
                "--inplace",
                "--build-temp",
                str(BUILD / "temp"),
                "--build-lib",
                str(BUILD / "lib"),
            ],
        )
    finally:
        os.chdir(cwd)
    sources.MANIFEST.write_text(json.dumps(hashes, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--clean", action="store_true", help="remove the compiled modules")
    group.add_argument("--refresh", action="store_true", help="rebuild stale compiled modules only")
    group.add_argument("--if-possible", action="store_true", help="skip, saying why, if tools lack")
    args = parser.parse_args(argv)
    if args.clean:
        clean()
        print("engine: pure Python")
        return 0
    if args.refresh and not is_stale():
        return 0
    missing = missing_tools()
    if missing:
        print("engine: cannot compile, missing:", ", ".join(missing), file=sys.stderr)
        return 0 if args.if_possible else 1
    compile_engine()
    print("engine: compiled:", ", ".join(str(p.relative_to(ROOT)) for p in built_files()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
