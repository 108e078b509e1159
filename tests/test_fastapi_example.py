"""examples/fastapi_todo.py: the ADR's shape, run for real, and its migration checklist."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import sys
import textwrap
from types import ModuleType

import httpx
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from _uvicorn import serve
from statekit.fastapi import SESSION_COOKIE

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "fastapi_todo.py"
SECRET = "example-test-secret"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_todo_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the route models' annotations here
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the ADR's checklist

_MUTABLE_CALLS = {"list", "dict", "set", "bytearray", "defaultdict", "deque", "OrderedDict"}


def checklist_violations(source: str) -> list[str]:
    """What the ADR's migration checklist forbids, found in a module's source.

    Module-level mutable globals (list/dict/set displays and comprehensions,
    calls that build containers, ``None`` placeholders for instances made
    later), ``global`` statements, and ``set_*()`` / ``clear_dependencies()``
    helper functions (methods of classes are not dependency helpers).
    """
    tree = ast.parse(source)
    found: list[str] = []
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        for target in targets:
            name = ast.unparse(target)
            if value is None or (isinstance(value, ast.Constant) and value.value is None):
                found.append(f"line {node.lineno}: {name} is a placeholder for a later instance")
            elif isinstance(
                value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
            ):
                found.append(f"line {node.lineno}: {name} is a module-level mutable container")
            elif (
                isinstance(value, ast.Call)
                and ast.unparse(value.func).split(".")[-1] in _MUTABLE_CALLS
            ):
                found.append(f"line {node.lineno}: {name} is a module-level mutable container")
    for node in _outside_classes(tree):
        if isinstance(node, ast.Global):
            found.append(f"line {node.lineno}: global {', '.join(node.names)}")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
            node.name.startswith("set_") or node.name == "clear_dependencies"
        ):
            found.append(f"line {node.lineno}: {node.name}() is a set_*/clear_dependencies helper")
    return found


def _outside_classes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those inside a class body (methods may be called set_x)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(c for c in ast.iter_child_nodes(node) if not isinstance(c, ast.ClassDef))
    return nodes


def test_the_checklist_scan_finds_the_adrs_old_pattern() -> None:
    old = textwrap.dedent(
        """
        from typing import Optional
        _device_repo_instance: Optional[IDeviceRepository] = None
        _cache = {}
        def set_device_repo(repo):
            global _device_repo_instance
            _device_repo_instance = repo
        def get_device_repo():
            return _device_repo_instance
        class Repo:
            def set_name(self, name): ...
        def clear_dependencies():
            global _device_repo_instance
            _device_repo_instance = None
        """
    )
    found = checklist_violations(old)
    assert sorted(line.split(": ", 1)[1] for line in found) == sorted(
        [
            "_device_repo_instance is a placeholder for a later instance",
            "_cache is a module-level mutable container",
            "global _device_repo_instance",
            "global _device_repo_instance",
            "set_device_repo() is a set_*/clear_dependencies helper",
            "clear_dependencies() is a set_*/clear_dependencies helper",
        ]
    )


def test_the_example_meets_the_adrs_migration_checklist() -> None:
    assert checklist_violations(EXAMPLE.read_text()) == []
    module = load()
    assert not hasattr(module, "app"), "the app is made by create_app(), not at import"


# ---------------------------------------------------------------- running it


def test_todos_per_session_persisted_in_sqlite(tmp_path: pathlib.Path) -> None:
    example = load()
    db = tmp_path / "todos.db"
    with TestClient(example.create_app(db, secret=SECRET)) as alice:
        bob = TestClient(alice.app)
        assert alice.get("/api/todos").json() == []
        milk = alice.post("/api/todos", json={"title": "milk"}).json()
        alice.post("/api/todos", json={"title": "eggs"})
        assert bob.post("/api/todos", json={"title": "bob's"}).status_code == 201
        assert alice.post(f"/api/todos/{milk['id']}/toggle").json()["done"] is True
        assert [t["title"] for t in alice.get("/api/todos").json()] == ["milk", "eggs"]
        assert [t["title"] for t in bob.get("/api/todos").json()] == ["bob's"]
        assert alice.post("/api/todos", json={"title": ""}).status_code == 422
        assert alice.post("/api/todos/999/toggle").status_code == 404
        cookie = alice.cookies[SESSION_COOKIE]
    # A new run (a restart): fresh app scope, the same SQLite file and cookie.
    with TestClient(example.create_app(db, secret=SECRET)) as again:
        again.cookies.set(SESSION_COOKIE, cookie)
        assert [(t["title"], t["done"]) for t in again.get("/api/todos").json()] == [
            ("milk", True),
            ("eggs", False),
        ]
        assert again.post("/api/todos/clear-done").json() == {"removed": 1}
        assert [t["title"] for t in again.get("/api/todos").json()] == ["eggs"]


def test_the_repository_is_closed_at_shutdown(tmp_path: pathlib.Path) -> None:
    example = load()
    app = example.create_app(tmp_path / "t.db", secret=SECRET)
    with TestClient(app):
        repo = app.state.statekit.get(example.repository)
        assert repo._db is not None
    assert repo._db is None


def test_the_example_under_uvicorn(tmp_path: pathlib.Path) -> None:
    example = load()
    app = example.create_app(tmp_path / "u.db", secret=SECRET)
    with serve(app, lifespan="on") as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/api/todos", json={"title": "tea"}).status_code == 201
        assert [t["title"] for t in client.get("/api/todos").json()] == ["tea"]
        with httpx.Client(base_url=url, timeout=10) as other:
            assert other.get("/api/todos").json() == []


def test_the_page_and_the_mounted_sync_server(tmp_path: pathlib.Path) -> None:
    example = load()
    with TestClient(example.create_app(tmp_path / "p.db", secret=SECRET)) as client:
        page = client.get("/")
        assert 'src="/sk/client.js"' in page.text and 'data-sk-list="todos:/todo"' in page.text
        assert client.get("/sk/client.js").status_code == 200
        client.post("/api/todos", json={"title": "milk"})
        value = client.get("/sk/stores/todos").json()["value"]
        assert [t["title"] for t in value["todo"]] == ["milk"]
