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


def test_a_refused_click_on_a_per_user_store_leaves_the_page_live(
    browser: Any,  # noqa: F811
) -> None:
    # An anonymous visitor's page shows a global counter and has a button writing a
    # per-user store. The click is refused (no user: 404), and the page keeps
    # following the counter: the refused store never joins its event stream.
    from statekit.compat.htealeaf import App, AuthStore, Store, SuperStore, button, div

    app = App(secret="browser test secret " + "x" * 12)
    hub = SuperStore(app)
    counter = Store({"n": 0})
    todos = AuthStore(lambda s: s.get("userName"), {"todo": []})

    @app.route("/mixed")
    def mixed() -> Any:
        return div(
            counter.react("n", id="n"),
            button("add").attr(onclick=todos.do.set("todo", ["x"]), id="add"),
        )

    with serve(app) as url:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(5000)
            page.goto(url + "/mixed")
            page.wait_for_selector("html[data-sk-ready]")
            page.evaluate(
                "() => document.addEventListener('statekit:error', "
                "(e) => { window.refused = e.detail; })"
            )
            page.click("#add")
            page.wait_for_function("window.refused !== undefined", timeout=5000)
            refused = page.evaluate("window.refused")
            assert (refused["status"], refused["error"]) == (404, "unknown_store")
            with hub.scope:
                counter.update("n", 5)  # Python code in the process
            page.wait_for_function("document.querySelector('#n').textContent === '5'", timeout=1000)
            page.screenshot(path=str(artifacts() / "htealeaf_refused_click.png"))
        finally:
            context.close()
    assert counter.read("n") == 5 and hub.server is not None
