"""examples/fastapi_todo.py in Chromium: the page's list updates live from the mounted sync server.

The page posts to a FastAPI route; the route changes the session's store; the
sync server (mounted at /sk, same cookie) streams the change to the page. A
second tab of the same browser session sees it too without a reload; another
browser context (another session) never does.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import pytest

pytest.importorskip("fastapi")

import httpx

from _browser import artifacts, browser  # noqa: F401 (the fixture)
from _uvicorn import serve
from test_fastapi_example import SECRET, load

pytestmark = pytest.mark.timeout(120)


def items(page: Any) -> list[str]:
    texts: list[str] = page.eval_on_selector_all(
        "ul[data-sk-list] li span:first-child", "els => els.map(e => e.textContent)"
    )
    return texts


def wait_items(page: Any, expected: list[str], timeout: float = 5.0) -> float:
    """Seconds until the page's list shows ``expected`` (fails after ``timeout``)."""
    start = time.monotonic()
    while items(page) != expected:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"the list shows {items(page)}, expected {expected}")
        page.wait_for_timeout(20)
    return time.monotonic() - start


def test_the_todo_page_updates_live_per_session(
    browser: Any,  # noqa: F811 (the fixture)
    tmp_path: pathlib.Path,
) -> None:
    example = load()
    app = example.create_app(tmp_path / "b.db", secret=SECRET)
    with serve(app, lifespan="on") as url:
        alice = browser.new_context()
        bob = browser.new_context()
        try:
            first = alice.new_page()
            first.goto(url + "/")
            first.wait_for_selector("[data-sk-status]")
            second = alice.new_page()  # the same session (cookie) in a second tab
            second.goto(url + "/")
            other = bob.new_page()
            other.goto(url + "/")
            for page in (first, second, other):
                page.wait_for_function(
                    "document.querySelector('[data-sk-status]').textContent.length > 0"
                )
            first.fill("#add input[name=title]", "milk")
            first.click("#add button")
            assert wait_items(first, ["milk"]) < 2.0
            # No reload: the other tab hears it on its event stream within a second.
            assert wait_items(second, ["milk"]) < 1.0
            # A route called from outside the page (same cookie) reaches both tabs.
            cookies = {c["name"]: c["value"] for c in alice.cookies()}
            with httpx.Client(base_url=url, cookies=cookies, timeout=10) as client:
                assert client.post("/api/todos", json={"title": "eggs"}).status_code == 201
            wait_items(first, ["milk", "eggs"])
            wait_items(second, ["milk", "eggs"])
            first.screenshot(path=str(artifacts() / "fastapi-todo.png"))
            # Bob's session has its own (empty) list, and stays so.
            other.wait_for_timeout(300)
            assert items(other) == []
            other.reload()
            other.wait_for_timeout(300)
            assert items(other) == []
        finally:
            alice.close()
            bob.close()
