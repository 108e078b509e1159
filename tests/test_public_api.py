"""The public namespace: sorted, complete, and free of third-party imports."""

from __future__ import annotations

import doctest
import importlib
import json
import pkgutil
import subprocess
import sys
import types

import pytest

import statekit as sk


def test_all_is_sorted_and_unique() -> None:
    assert list(sk.__all__) == sorted(sk.__all__)
    assert len(set(sk.__all__)) == len(sk.__all__)


def test_all_matches_public_names() -> None:
    # "@py_builtins" and friends: pytest rewrites the plugin module's package.
    public = {
        name
        for name, value in vars(sk).items()
        if not name.startswith(("_", "@")) and not isinstance(value, types.ModuleType)
    }
    modules = {"exceptions", "testing", "cli"}
    assert set(sk.__all__) == (public | set(sk._LAZY)) - modules - {
        "annotations",
        "importlib",
        "Any",
    }
    for name in sk.__all__:
        assert getattr(sk, name) is not None


def test_import_loads_no_third_party_module() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import statekit; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = json.loads(out)
    stdlib = set(sys.stdlib_module_names)
    # statekit__mypyc: the runtime of the compiled engine (``make compile``).
    ours = {"statekit", "statekit__mypyc"}
    foreign = [m for m in loaded if m.split(".")[0] not in stdlib | ours]
    assert foreign == []


def _modules() -> list[str]:
    names = ["statekit"]
    for info in pkgutil.walk_packages(sk.__path__, "statekit."):
        names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # an optional dependency that is not installed
        pytest.skip(f"{module_name} needs {exc.name}")
    with sk.new_app_scope():
        result = doctest.testmod(
            module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
        )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def test_every_public_name_has_a_docstring_with_an_example() -> None:
    missing = []
    for name in sk.__all__:
        obj = getattr(sk, name)
        doc = getattr(obj, "__doc__", None) or ""
        if ">>>" not in doc:
            missing.append(name)
    assert missing == []
