"""statekit.js in Chromium: its RFC 6902 apply agrees with the server's, case by case.

The same cases (RFC 6902 appendix A, then a few thousand random documents and
operations, valid and not) run through ``statekit._patch.apply`` and through
the client's ``applyPatch`` in a real page; results and error kinds must be
identical, and the input document must be left unchanged.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from starlette.applications import Starlette
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import Route

import statekit as sk
from _browser import artifacts, browser  # noqa: F401  (fixture)
from _uvicorn import serve
from statekit import _patch
from test_patch import APPENDIX_A

STATIC = Path(sk.__file__).parent / "server" / "static" / "statekit.js"
PAGE = """<!doctype html><meta charset="utf-8"><title>statekit.js unit</title>
<script type="module">
import * as sk from "/statekit.js"; window.sk = sk; window.loaded = true;
</script>
"""


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    app = Starlette(
        routes=[
            Route("/", lambda r: HTMLResponse(PAGE)),
            Route("/statekit.js", lambda r: FileResponse(STATIC, media_type="text/javascript")),
        ]
    )
    with serve(app) as url:
        context = browser.new_context()
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(url + "/")
        tab.wait_for_function("window.loaded === true")
        yield tab
        assert errors == []
        context.close()


def python_result(doc: Any, ops: Any) -> dict[str, Any]:
    try:
        new, _ = _patch.apply(_patch.freeze_json(doc), ops)
    except sk.PatchTestFailed:
        return {"error": "test_failed"}
    except sk.PathError:
        return {"error": "path_not_found"}
    except sk.PatchError:
        return {"error": "invalid_patch"}
    return {"ok": json.loads(json.dumps(new))}


JS_RUN = """(cases) => cases.map(([doc, ops]) => {
  const before = JSON.stringify(doc);
  let out;
  try { out = {ok: window.sk.applyPatch(doc, ops)}; }
  catch (e) { out = {error: e.code || ("js:" + e.message)}; }
  if (JSON.stringify(doc) !== before) out = {error: "input changed"};
  return out;
})"""


def compare(page: Any, cases: list[tuple[Any, Any]]) -> None:
    got = page.evaluate(JS_RUN, [[doc, ops] for doc, ops in cases])
    mismatches = []
    for (doc, ops), js in zip(cases, got, strict=True):
        want = python_result(doc, ops)
        if "ok" in want and "ok" in js:
            same = _patch.json_equal(want["ok"], js["ok"])
        else:
            same = want == js
        if not same:
            mismatches.append({"doc": doc, "ops": ops, "python": want, "js": js})
    assert mismatches == [], json.dumps(mismatches[:5], indent=1)


def test_appendix_a_agrees(page: Any) -> None:
    compare(page, [(doc, ops) for _, doc, ops, _ in APPENDIX_A])


def random_doc(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.35:
        return {
            rng.choice(["a", "b", "c/d", "e~f", "", "0"]): random_doc(rng, depth + 1)
            for _ in range(rng.randint(0, 3))
        }
    if depth < 3 and roll < 0.6:
        return [random_doc(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice([0, 1, 1.5, -2, True, False, None, "x", "", "<&>"])


def paths_of(doc: Any) -> list[list[str]]:
    found: list[list[str]] = [[]]
    todo: list[tuple[Any, list[str]]] = [(doc, [])]
    while todo:
        node, at = todo.pop()
        children = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else []
        )
        for key, child in children:
            found.append([*at, str(key)])
            todo.append((child, [*at, str(key)]))
    return found


def pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def random_path(rng: random.Random, doc: Any) -> str:
    parts = rng.choice(paths_of(doc))
    roll = rng.random()
    if roll < 0.15:
        parts = [*parts, rng.choice(["-", "-1", "01", "9", "zz", "0"])]
    elif roll < 0.2:
        return pointer(parts) + rng.choice(["/~2", "/~", "~1"])
    return pointer(parts)


def random_op(rng: random.Random, doc: Any) -> dict[str, Any]:
    name = rng.choice(["add", "add", "remove", "replace", "move", "copy", "test", "bogus"])
    op: dict[str, Any] = {"op": name, "path": random_path(rng, doc)}
    if name == "test" and rng.random() < 0.5:  # a test that holds
        parts = rng.choice(paths_of(doc))
        op["path"] = pointer(parts)
        value = doc
        for part in parts:
            value = value[int(part)] if isinstance(value, list) else value[part]
        op["value"] = value
    elif name in ("add", "replace", "test", "bogus"):
        op["value"] = random_doc(rng, 2)
    if name in ("move", "copy"):
        op["from"] = random_path(rng, doc)
    if rng.random() < 0.03:
        op.pop("value", None)
    return op


def test_random_patches_agree(page: Any) -> None:
    rng = random.Random(6902)
    cases = []
    for _ in range(3000):
        doc = random_doc(rng)
        ops = []
        current = doc
        for _ in range(rng.randint(1, 4)):
            ops.append(random_op(rng, current))
            result = python_result(doc, ops)
            if "ok" in result:
                current = result["ok"]
        cases.append((doc, ops))
    outcomes = {
        ("ok" if "ok" in python_result(d, o) else python_result(d, o)["error"]) for d, o in cases
    }
    assert outcomes == {"ok", "path_not_found", "invalid_patch", "test_failed"}
    compare(page, cases)


def test_pointer_helpers_in_the_page(page: Any) -> None:
    got = page.evaluate(
        """() => [
          window.sk.parsePointer("/a~1b/~0/0"),
          window.sk.formatPointer(["a/b", "~", "0"]),
          window.sk.getPointer({"a/b": [5]}, "/a~1b/0"),
          window.sk.textOf("s"), window.sk.textOf(null), window.sk.textOf({a: [1]}),
          window.sk.jsonEqual({a: [1, true]}, {a: [1.0, true]}), window.sk.jsonEqual(true, 1),
        ]"""
    )
    assert got == [["a/b", "~", "0"], "/a~1b/~0/0", 5, "s", "", '{"a":[1]}', True, False]


def test_applied_documents_share_unchanged_parts(page: Any) -> None:
    got = page.evaluate(
        """() => {
          const doc = {todo: [{t: 1}, {t: 2}], meta: {x: 1}};
          const next = window.sk.applyPatch(doc, [{op: "replace", path: "/todo/1/t", value: 3}]);
          return [next.meta === doc.meta, next.todo[0] === doc.todo[0], next.todo !== doc.todo,
                  Object.isFrozen(doc) || doc.todo[1].t === 2];
        }"""
    )
    assert got == [True, True, True, True]
    page.screenshot(path=str(artifacts() / "client-unit.png"))
