"""The engine's two modes (pure Python, compiled with mypyc) and what must not differ.

``STATEKIT_EXPECT_COMPILED=1`` (or ``0``) makes the run fail unless the engine
is (or is not) compiled: CI runs the suite once in each mode and must not
silently test the same one twice.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import weakref
from pathlib import Path
from typing import Any

import pytest

import statekit as sk
from statekit import _engine
from statekit._engine import ComputedNode, Node, SignalNode, WatcherNode, _mode, _sources


def test_all_engine_modules_are_in_the_same_mode() -> None:
    modes = set(_engine.COMPILED_MODULES.values())
    assert len(modes) == 1, f"half-compiled engine: {_engine.COMPILED_MODULES} (make compile)"
    assert _engine.COMPILED is modes.pop()


def test_the_expected_mode_runs() -> None:
    expected = os.environ.get("STATEKIT_EXPECT_COMPILED")
    if expected is None:
        pytest.skip("STATEKIT_EXPECT_COMPILED not set")
    assert _engine.COMPILED is (expected == "1")


def test_compiled_modules_were_built_from_the_sources_here() -> None:
    # A .so built from an older source would test code that is not in the
    # checkout; ``make pytest`` rebuilds (``--refresh``) before it runs.
    assert _engine.stale_modules() == [], "stale compiled engine: make compile (or make pure)"


def test_a_changed_source_makes_the_compiled_modules_stale(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    manifest = tmp_path / "compiled.json"
    monkeypatch.setattr(_sources, "MANIFEST", manifest)
    monkeypatch.setattr(_mode, "COMPILED_MODULES", dict.fromkeys(_sources.COMPILABLE, True))
    hashes = _sources.source_hashes()
    manifest.write_text(json.dumps(hashes), encoding="utf-8")
    assert _mode.stale_modules() == []
    core = "statekit._engine._core"
    manifest.write_text(json.dumps({**hashes, core: "0" * 64}), encoding="utf-8")
    assert _mode.stale_modules() == [core]
    manifest.write_text("not json", encoding="utf-8")
    assert _mode.stale_modules() == list(_sources.COMPILABLE)
    manifest.unlink()
    assert _mode.stale_modules() == list(_sources.COMPILABLE)
    monkeypatch.setattr(_mode, "COMPILED_MODULES", dict.fromkeys(_sources.COMPILABLE, False))
    assert _mode.stale_modules() == []  # pure Python: nothing to be stale


def test_the_source_hashes_cover_the_files_that_compile() -> None:
    hashes = _sources.source_hashes()
    assert list(hashes) == list(_sources.COMPILABLE)
    for module, digest in hashes.items():
        assert _sources.source_path(module).is_file()
        assert len(digest) == 64


def test_base_nodes_cannot_be_weakly_referenced_in_either_mode() -> None:
    # Compiled classes cannot clear weak references when they die (mypyc),
    # so the pure classes must not offer them either: code relying on a
    # weak reference to a node would work in one mode only.
    nodes: list[Any] = [
        Node(0, "n", None),
        SignalNode(1, "s", None, None),
        ComputedNode(lambda: 1, "c", None, None),
        WatcherNode(lambda: None, "w", None, None),
    ]
    for node in nodes:
        with pytest.raises(TypeError):
            weakref.ref(node)


def test_a_subclass_that_declares_weakref_is_weakly_referenceable() -> None:
    # The store's per-scope state and the action cells live in weak maps.
    class Sub(Node):
        __slots__ = ("__weakref__", "extra")

    died: list[str] = []
    node = Sub(0, "sub", None)
    node.extra = 5
    ref = weakref.ref(node, lambda _: died.append("sub"))
    assert ref() is node
    assert node.extra == 5
    del node
    gc.collect()
    assert ref() is None
    assert died == ["sub"]


def test_the_weakly_held_engine_subclasses_declare_weakref() -> None:
    from statekit._action_call import Cell
    from statekit._store import _StoreState

    for cls in (_StoreState, Cell):
        assert issubclass(cls, Node)
        assert "__weakref__" in cls.__slots__, cls


def test_set_error_hook_keeps_its_docstring() -> None:
    assert ">>>" in (sk.set_error_hook.__doc__ or "")


def _cycle_names(read: Any) -> list[str]:
    with pytest.raises(sk.CycleError) as info:
        read()
    return info.value.nodes


def test_cycle_names_go_through_untracked_reads() -> None:
    holder: dict[str, Any] = {}
    a = sk.computed(lambda: sk.untracked(lambda: holder["b"].value), name="a")
    b = sk.computed(lambda: holder["c"].value, name="b")
    c = sk.computed(lambda: sk.untracked(lambda: a.value), name="c")
    holder.update(b=b, c=c)
    assert _cycle_names(lambda: a.value) == ["a", "b", "c", "a"]


def test_cycle_names_go_through_peeks_and_effects() -> None:
    holder: dict[str, Any] = {}
    p = sk.computed(lambda: holder["q"].peek(), name="p")  # noqa: PLW0108 (q is set later)
    q = sk.computed(lambda: holder["r"].value, name="q")
    r = sk.computed(lambda: sk.untracked(lambda: holder["s"].value), name="r")
    s = sk.computed(lambda: p.value, name="s")
    holder.update(q=q, r=r, s=s)
    assert _cycle_names(lambda: p.value) == ["p", "q", "r", "s", "p"]
    assert _cycle_names(lambda: r.value) == ["r", "s", "p", "q", "r"]
    seen: list[list[str]] = []

    def watch() -> None:
        try:
            q.value
        except sk.CycleError as exc:
            seen.append(exc.nodes)

    stop = sk.effect(watch)
    stop()
    assert seen == [["q", "r", "s", "p", "q"]]


def _live_computed_nodes(name: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, ComputedNode) and o.name == name)


def test_a_finished_run_keeps_no_reference_to_its_caller() -> None:
    # Each run records the run it nests in (for CycleError names); once it
    # ends, that reference must go, or a session's node would outlive it.
    base = sk.atom(1)
    inner = sk.computed(lambda: base.value + 1, name="inner")
    outer = sk.computed(lambda: inner.value + 1, name="outer-of-caller-test", scope="session")
    scope = sk.session("s1")
    with scope:
        assert outer.value == 3
    assert _live_computed_nodes("outer-of-caller-test") == 1
    scope.dispose()
    assert _live_computed_nodes("outer-of-caller-test") == 0
    assert inner.value == 2


def test_definitions_stand_on_the_engine_base_and_stay_weakly_referenceable() -> None:
    # The ``.value`` getters read ``_depth`` and ``_cache`` from the engine's
    # base class (native when compiled); the definitions themselves add
    # ``__weakref__`` so that weak maps of atoms and computeds keep working.
    from statekit._engine import DefinitionBase

    n = sk.atom(1, name="weakly-held", scope="session")
    double = sk.computed(lambda n=n: n.value * 2, scope="session")  # n is deleted below
    assert isinstance(n, DefinitionBase)
    assert isinstance(double, DefinitionBase)
    scope = sk.session("weakly-held")
    with scope:
        assert double.value == 2
    scope.dispose()
    died: list[str] = []
    refs = [weakref.ref(d, lambda _, name=d.name: died.append(name)) for d in (double, n)]
    del n, double
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert len(died) == 2  # both callbacks ran
    assert "weakly-held" in died


def test_a_definition_base_without_its_methods_says_which_class() -> None:
    from statekit._engine import DefinitionBase

    class Half(DefinitionBase):
        __slots__ = ()

    with pytest.raises(NotImplementedError, match="Half must define _lookup"):
        Half()._lookup(None)
    with pytest.raises(NotImplementedError, match="Half must define _misplaced"):
        Half()._misplaced(None, None, None)


def test_each_compilable_module_loaded_from_where_the_mode_says() -> None:
    # COMPILED_MODULES is worked out before some of them are imported (the
    # store's _store_hot imports the engine): what loaded must match it.
    for name in _sources.COMPILABLE:
        loaded = importlib.import_module(name)
        assert (not str(loaded.__file__).endswith(".py")) is _engine.COMPILED_MODULES[name], name


def test_the_store_write_path_compiles_with_the_engine() -> None:
    # In COMPILABLE, so the mode tests above (and CI's compiled run) cover it.
    assert "statekit._store_hot" in _sources.COMPILABLE
    from statekit import _store_hot, _store_listen, _store_select

    # The classes the hot path reads fields of, compiled along with it, and
    # the names the store's modules re-export from it.
    assert _store_listen.Listener is _store_hot.Listener
    assert _store_listen.dispatch is _store_hot.dispatch
    assert _store_select.SelectorRun is _store_hot.SelectorRun


def test_store_docstrings_stay_in_python() -> None:
    # mypyc drops docstrings: the public ones (with their doctests) are on
    # the Python side of the compiled write path.
    for method in (sk.Store.set, sk.Store.listen, sk.Store.selector):
        assert ">>>" in (method.__doc__ or ""), method
