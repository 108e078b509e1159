"""Wheels: pure Python by default, the compiled engine inside when the hook is on.

Each test builds a real wheel with pip (offline: ``--no-build-isolation``, the
dev extra has hatchling, mypy and setuptools) from a copy of this checkout,
then imports statekit from the unpacked wheel in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from statekit._engine import _sources

ROOT = Path(__file__).resolve().parent.parent
# What a source distribution holds that the build reads.
_SOURCES = ("src", "tools", "pyproject.toml", "README.md", "hatch_build.py")
_ENABLE = "HATCH_BUILD_HOOK_ENABLE_CUSTOM"

pytestmark = pytest.mark.slow


def _checkout_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "statekit"
    copy.mkdir()
    ignore = shutil.ignore_patterns("*.so", "compiled.json", "__pycache__", "*.egg-info")
    for name in _SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=ignore)
        else:
            shutil.copy2(source, copy / name)
    return copy


def _build_wheel(tmp_path: Path, *, compiled: bool) -> Path:
    copy = _checkout_copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != _ENABLE}
    if compiled:
        env[_ENABLE] = "1"
    out = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--wheel-dir", str(out), str(copy)],
        check=True,
        env=env,
        timeout=600,
    )
    (wheel,) = out.glob("statekit-*.whl")
    # The copy is left as it was found: nothing compiled stays behind.
    assert not list(copy.rglob("*.so"))
    return wheel


def _import_from(wheel: Path, tmp_path: Path) -> dict[str, object]:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    code = (
        "import json, statekit as sk; from statekit import _engine as e; "
        "n = sk.atom(2); d = sk.computed(lambda: n.value * 3); n.value = 5; "
        "print(json.dumps({'file': sk.__file__, 'compiled': e.COMPILED, "
        "'stale': e.stale_modules(), 'value': d.value}))"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    ).stdout
    result: dict[str, object] = json.loads(out)
    assert str(result["file"]).startswith(str(site)), result
    return result


def test_the_default_wheel_is_pure_python(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path, compiled=False)
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".so")]
    result = _import_from(wheel, tmp_path)
    assert result == {**result, "compiled": False, "stale": [], "value": 15}


def test_the_hook_ships_the_compiled_engine_and_its_manifest(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path, compiled=True)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert f"-{tag}-{tag}-" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        root_is_purelib = (
            "Root-Is-Purelib: false"
            in archive.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
        )
    extensions = sorted(n.split(".")[0] for n in names if n.endswith(".so"))
    # Every module make compile compiles, and the runtime they share.
    compilable = [module.replace(".", "/") for module in _sources.COMPILABLE]
    assert extensions == sorted([*compilable, f"{_sources.GROUP}__mypyc"])
    assert "statekit/_engine/compiled.json" in names
    assert root_is_purelib
    result = _import_from(wheel, tmp_path)
    assert result == {**result, "compiled": True, "stale": [], "value": 15}
