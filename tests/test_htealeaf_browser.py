"""The HTeaLeaf seed's counter example in Chromium: a click in one page shows in another.

HTeaLeaf re-fetched the whole page after each call (ANCHORS.md §1); here the
example file, with only its imports changed, runs under uvicorn and two
browser contexts (two visitors) open ``/counter``. A click on ``+`` in one
updates the count in the other within a second, over the mounted sync
server's event stream, without a reload. ``STATEKIT_REQUIRE_BROWSER=1``
makes a missing browser a failure (tests/_browser.py).
"""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from _browser import artifacts, browser  # noqa: F401  (fixture)
from _uvicorn import serve

EXAMPLE = Path(__file__).parent.parent / "examples" / "htealeaf_seed.py"
COUNT = "h3 > span"


@pytest.fixture
def seed() -> Iterator[tuple[str, dict[str, Any]]]:
    module = runpy.run_path(str(EXAMPLE))
    with serve(module["app"]) as url:
        yield url, module


def open_counter(browser: Any, url: str) -> tuple[Any, Any]:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(5000)
    page.goto(url + "/counter")
    page.wait_for_selector("html[data-sk-ready]")
    return context, page


def shows(page: Any, text: str, within_ms: int = 1000) -> None:
    page.wait_for_function(
        f"document.querySelector({COUNT!r}).textContent === {text!r}", timeout=within_ms
    )


def test_seed_counter_click_updates_a_second_page_live(
    browser: Any,  # noqa: F811
    seed: tuple[str, dict[str, Any]],
) -> None:
    url, module = seed
    cstore = module["cstore"]
    (one, clicker), (two, watcher) = open_counter(browser, url), open_counter(browser, url)
    try:
        assert clicker.text_content(COUNT) == watcher.text_content(COUNT) == "1"
        watcher.evaluate("window.notReloaded = true")
        clicker.get_by_role("button", name="+").click()
        shows(watcher, "2")
        shows(clicker, "2")
        watcher.screenshot(path=str(artifacts() / "htealeaf_counter_watcher.png"))
        for _ in range(3):
            clicker.get_by_role("button", name="-").click()
        shows(watcher, "-1")
        # and the other way round, from the second visitor
        watcher.get_by_role("button", name="+").click()
        shows(clicker, "0")
        shows(watcher, "0")
        assert watcher.evaluate("window.notReloaded") is True  # no reload happened
        clicker.screenshot(path=str(artifacts() / "htealeaf_counter_clicker.png"))
        assert cstore.read("counter") == 0
    finally:
        one.close()
        two.close()
