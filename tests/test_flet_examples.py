"""The Flet examples in examples/, run in real offline Flet sessions."""

from __future__ import annotations

import asyncio
import itertools
import pathlib
from types import ModuleType
from typing import Any

import pytest

ft = pytest.importorskip("flet")

import statekit as sk  # noqa: E402
import statekit.flet as skf  # noqa: E402
from flet_harness import OfflineSession, load_file, open_session, settle  # noqa: E402

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
_ids = itertools.count()


def load(name: str) -> ModuleType:
    """Import an example afresh (its module-level code runs again)."""
    return load_file(EXAMPLES / name)


def find(s: OfflineSession, kind: type, **where: Any) -> Any:
    found = [
        c
        for c in s.session.index.values()
        if isinstance(c, kind) and all(getattr(c, k, None) == v for k, v in where.items())
    ]
    assert len(found) == 1, f"{len(found)} {kind.__name__} with {where}"
    return found[0]


def texts(s: OfflineSession, prefix: str) -> list[str]:
    return [
        p.value for p in s.conn.props if isinstance(p.value, str) and p.value.startswith(prefix)
    ]


async def test_flet_counter() -> None:
    module = load("flet_counter.py")
    main = skf.app(module.main)
    a = await open_session(main)
    b = await open_session(main)
    plus = find(a, ft.Button, content="Increment")
    await a.click(plus)
    await a.click(plus)
    assert texts(a, "Count")[-1] == "Count: 2"
    await a.type(find(a, ft.TextField, label="Step"), "5")
    await a.click(plus)
    assert texts(a, "Count")[-1] == "Count: 7"
    errors: list[BaseException] = []
    old = sk.set_error_hook(lambda exc, where: errors.append(exc))
    try:
        await a.type(find(a, ft.TextField, label="Step"), "abc")  # refused: the step stays 5
    finally:
        sk.set_error_hook(old)
    assert isinstance(errors[0], ValueError)
    await a.click(find(a, ft.Button, content="Decrement"))
    assert texts(a, "Count")[-1] == "Count: 2"
    assert texts(b, "Count") == ["Count: 0"]  # the other tab has its own count...
    await settle()
    assert texts(b, "Clicks in all tabs")[-1] == "Clicks in all tabs: 4"  # ...and sees all clicks
    assert a.errors() == [] and b.errors() == []


async def test_flet_login_form() -> None:
    module = load("flet_login_form.py")
    module.DELAY = 0.01
    s = await open_session(skf.app(module.main))
    submit = find(s, ft.Button, content="Sign in")
    assert submit.disabled is True
    await s.type(find(s, ft.TextField, label="Email"), "ada@example.com")
    assert submit.disabled is True
    await s.type(find(s, ft.TextField, label="Password"), "nope")
    assert submit.disabled is False and s.last(submit, "disabled") is False
    await s.click(submit)
    await asyncio.sleep(0.05)
    await settle()
    status = find(s, ft.Text, value="Invalid credentials")
    assert s.sent(status) == ["Signing in...", "Invalid credentials"]
    assert True in s.sent(submit, "disabled")  # disabled while signing in
    await s.type(find(s, ft.TextField, label="Password"), "123")
    await s.click(submit)
    await asyncio.sleep(0.05)
    await settle()
    assert s.last(status) == "Welcome, Ada Lovelace!"
    assert s.run(lambda: module.form.get("user")) == {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
    }


async def test_flet_cart() -> None:
    module = load("flet_cart.py")
    a = await open_session(skf.app(module.main))
    b = await open_session(skf.app(module.main))
    await a.click(find(a, ft.Button, content="Laptop - $999.99"))
    await a.click(find(a, ft.Button, content="Mouse - $29.99"))
    await a.click(find(a, ft.Button, content="Laptop - $999.99"))
    assert texts(a, "3 items")[-1] == "3 items, total $2029.97"
    assert texts(a, "Laptop x")[-1] == "Laptop x 2"
    assert texts(b, "0 items") == ["0 items, total $0.00"]  # b's cart is its own
    await a.click(find(a, ft.Button, content="Clear"))
    assert texts(a, "0 items")[-1] == "0 items, total $0.00"
    assert a.errors() == [] and b.errors() == []
