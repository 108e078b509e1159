"""End to end: examples/flet_counter.py in Chromium, served as Flet's own ASGI app.

``statekit.flet.run(main, export_asgi_app=True, no_cdn=True)`` gives the ASGI
app (Flet's web client comes from the ``flet-web`` wheel, no internet);
uvicorn serves it on 127.0.0.1 and Playwright drives Debian's Chromium. The
test clicks, types and reads text through Flutter's accessibility tree, and
saves a screenshot. ``STATEKIT_REQUIRE_BROWSER=1`` makes a missing browser a
failure.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

ft = pytest.importorskip("flet")
uvicorn = pytest.importorskip("uvicorn")

import statekit.flet as skf  # noqa: E402
from _browser import artifacts, browser  # noqa: E402, F401  (fixture)
from _uvicorn import serve  # noqa: E402
from flet_harness import load_file  # noqa: E402

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "flet_counter.py"


@pytest.fixture(scope="module")
def counter_url() -> Iterator[str]:
    pytest.importorskip("flet_web", reason="flet-web (the Flet web client) is not installed")
    module = load_file(EXAMPLE)
    asgi = skf.run(module.main, export_asgi_app=True, no_cdn=True)
    with serve(asgi, ws="auto", lifespan="auto") as url:
        yield url


def _accessible(tab: Any) -> None:
    """Flutter draws on a canvas; its accessibility tree gives roles and names."""
    placeholder = tab.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=60_000)
    placeholder.evaluate("el => el.click()")


def test_counter_in_chromium(browser: Any, counter_url: str) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 900, "height": 700})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    try:
        tab.goto(counter_url, timeout=60_000)
        _accessible(tab)
        tab.get_by_text("Count: 0").wait_for(timeout=60_000)
        increment = tab.get_by_role("button", name="Increment")
        increment.click()
        increment.click()
        tab.get_by_text("Count: 2").wait_for(timeout=20_000)
        step = tab.get_by_role("textbox", name="Step")
        step.click()
        tab.keyboard.press("Control+A")
        tab.keyboard.type("5")
        time.sleep(0.5)  # let the change event reach the server
        increment.click()
        tab.get_by_text("Count: 7").wait_for(timeout=20_000)
        tab.get_by_role("button", name="Decrement").click()
        tab.get_by_text("Count: 2").wait_for(timeout=20_000)
        tab.get_by_text("Clicks in all tabs: 4").wait_for(timeout=20_000)
        shot = artifacts() / "flet_counter.png"
        tab.screenshot(path=str(shot))
        assert shot.stat().st_size > 1000
        assert errors == []
    finally:
        context.close()
