"""``statekit demo`` in Chromium: two users in two browser contexts on the running demo.

The demo runs as a user runs it (``python -m statekit.cli demo`` in a
subprocess on 127.0.0.1) with a SQLite backend, so that it can be stopped and
started again with its state. Alice and Bob each log in through the page's
form in their own browser context. Checked:

- a click on the shared counter in one context shows in the other within 1 s
  (measured, every time);
- todo lists stay private: Bob never sees Alice's items, and Alice sees hers
  after a reload;
- the draft is per tab: two tabs of one context keep different drafts, and a
  reload keeps the tab's own (its token is in ``sessionStorage``);
- a cut event stream resumes without loss or duplicates: once by closing the
  client's stream while the other tab writes, once by restarting the server
  process while the other user writes (the stream blocked meanwhile), both
  times by replay from the last event id, not by a new snapshot;
- logging out in the page leaves a visitor's page, and logging in again
  brings the user's list back.

Screenshots go to ``tests/artifacts/`` (``$STATEKIT_ARTIFACTS``), as
``demo-*.png``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn")

from _browser import artifacts, browser  # noqa: F401  (fixture)
from _demo_proc import Demo
from _uvicorn import free_port

SECRET = "the browser test's secret, the same across restarts"
WAIT = 10_000  # ms: the bound of every wait that is not itself the subject


class Running:
    """The demo process, restartable on the same port with the same state and secret."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.args = ["--port", str(self.port), "--backend", "sqlite:///demo.db"]
        self.demo = self._start()
        self.url = self.demo.url

    def _start(self) -> Demo:
        return Demo(self.args, {"STATEKIT_SECRET": SECRET}, self.folder).started()

    def restart(self) -> None:
        assert self.demo.interrupt(timeout=10) < 5
        self.demo = self._start()
        assert self.demo.url == self.url

    def stop(self) -> None:
        try:
            self.demo.interrupt(timeout=10)
        finally:
            self.demo.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("demo"))
    try:
        yield running
    finally:
        running.stop()


class User:
    """One browser context (one person) with its first tab, logged in by the page's form."""

    def __init__(self, browser: Any, url: str, name: str) -> None:  # noqa: F811
        self.url = url
        self.name = name
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1100, "height": 640})
        self.context.set_default_timeout(WAIT)
        self.page = self.tab()
        self.page.fill("input[name=name]", name)
        with self.page.expect_navigation():
            self.page.click("#todos form button")
        ready(self.page)
        assert f"Logged in as {name}" in self.page.inner_text("#todos")

    def tab(self) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda e: self.errors.append(f"{self.name}: {e}"))
        page.goto(self.url)
        ready(page)
        return page


def ready(page: Any) -> None:
    """Wait until every store on the page has its first value and the stream is live."""
    page.wait_for_selector("html[data-sk-ready]", state="attached", timeout=WAIT)
    page.wait_for_selector('[data-sk-state="live"]', timeout=WAIT)


def counter(page: Any) -> int:
    return int(page.inner_text("#counter output"))


def titles(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("ul.todos li span", "els => els.map(e => e.textContent)"))


def add_todo(page: Any, title: str) -> None:
    count = len(titles(page))
    page.fill("input[name=title]", title)
    page.press("input[name=title]", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('ul.todos li').length > n", arg=count, timeout=WAIT
    )
    page.evaluate("() => window.statekit.settled()")


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(artifacts() / f"demo-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def users(browser: Any, server: Running) -> Iterator[tuple[User, User]]:  # noqa: F811
    alice = User(browser, server.url, "alice")
    bob = User(browser, server.url, "bob")
    try:
        yield alice, bob
        assert alice.errors + bob.errors == []
    finally:
        alice.context.close()
        bob.context.close()


def test_the_counter_clicked_by_one_user_shows_for_the_other_within_a_second(
    users: tuple[User, User],
) -> None:
    alice, bob = users
    delays = []
    shown = "n => document.querySelector('#counter output').textContent === String(n)"
    expected = counter(alice.page)
    for clicker, watcher in [(alice, bob), (bob, alice), (alice, bob), (bob, alice)]:
        # Both pages show the last click before the next one. The clicker's own
        # page may see its click after the other user's page does: waiting on
        # the value read from one page alone could wait for one that has passed.
        for page in (clicker.page, watcher.page):
            page.wait_for_function(shown, arg=expected, timeout=WAIT)
        want = expected + 1
        start = time.monotonic()
        clicker.page.click("[aria-label=increment]")
        watcher.page.wait_for_function(shown, arg=want, timeout=1000, polling="raf")
        delays.append(time.monotonic() - start)
        expected = want
    print("counter delays between contexts (s):", [round(d, 3) for d in delays])
    assert max(delays) < 1.0, f"delays {delays}"
    shot(alice.page, "counter-alice")
    shot(bob.page, "counter-bob")


def test_todo_lists_stay_private(users: tuple[User, User]) -> None:
    alice, bob = users
    add_todo(alice.page, "alice: call the bank")
    add_todo(alice.page, "alice: water the plants")
    add_todo(bob.page, "bob: buy bread")
    alice.page.wait_for_timeout(300)  # time for a leak to arrive, if there were one
    assert titles(alice.page) == ["alice: call the bank", "alice: water the plants"]
    assert titles(bob.page) == ["bob: buy bread"]

    alice.page.reload()
    ready(alice.page)
    alice.page.wait_for_function(
        "() => document.querySelectorAll('ul.todos li').length === 2", timeout=WAIT
    )
    assert titles(alice.page) == ["alice: call the bank", "alice: water the plants"]
    bob.page.reload()
    ready(bob.page)
    assert titles(bob.page) == ["bob: buy bread"]

    alice.page.click("ul.todos li:first-of-type input[type=checkbox]")  # toggle: an action
    alice.page.wait_for_function(
        "() => document.querySelector('ul.todos li input[type=checkbox]').checked", timeout=WAIT
    )
    shot(alice.page, "todos-alice")
    shot(bob.page, "todos-bob")


def test_the_draft_is_per_tab_and_a_reload_keeps_it(users: tuple[User, User]) -> None:
    alice, _ = users
    first = alice.page
    second = alice.tab()
    try:
        token = "() => window.sessionStorage.getItem('statekit.tab')"
        tokens = (first.evaluate(token), second.evaluate(token))
        assert None not in tokens and tokens[0] != tokens[1]
        first.fill("textarea", "the first tab's draft")
        second.fill("textarea", "the second tab's draft")
        for page in (first, second):
            page.evaluate("() => window.statekit.settled()")
        first.wait_for_timeout(300)  # each tab's write reaching the other would show now
        assert first.input_value("textarea") == "the first tab's draft"
        assert second.input_value("textarea") == "the second tab's draft"

        first.reload()
        ready(first)
        assert first.evaluate(token) == tokens[0]
        first.wait_for_function(
            "() => document.querySelector('textarea').value === \"the first tab's draft\"",
            timeout=WAIT,
        )
        assert second.input_value("textarea") == "the second tab's draft"
        shot(first, "draft-tab-1")
        shot(second, "draft-tab-2")
    finally:
        second.close()


def test_a_closed_stream_resumes_with_what_it_missed_once(users: tuple[User, User]) -> None:
    alice, _ = users
    writer = alice.page
    reader = alice.tab()  # the same user: the same todo list, a stream of its own
    try:
        before = titles(reader)
        assert before == titles(writer)
        snapshots = reader.evaluate("() => window.statekit.stats.snapshots")
        reader.evaluate("() => window.statekit.disconnect()")
        new = ["missed one", "missed two", "missed three"]
        for title in new:
            add_todo(writer, title)
        writer.click("[aria-label=increment]")
        writer.evaluate("() => window.statekit.settled()")
        assert titles(reader) == before  # nothing arrives while the stream is closed
        reader.evaluate("() => window.statekit.reconnect()")
        reader.wait_for_function(
            "n => document.querySelectorAll('ul.todos li').length >= n",
            arg=len(before) + len(new),
            timeout=WAIT,
        )
        reader.wait_for_timeout(300)  # a duplicate would arrive now
        assert titles(reader) == before + new
        assert counter(reader) == counter(writer)
        # Resumed from its last event id: the missed patches, not a fresh snapshot.
        assert reader.evaluate("() => window.statekit.stats.snapshots") == snapshots
    finally:
        reader.close()


def test_a_server_restart_resumes_the_stream_without_loss(
    users: tuple[User, User], server: Running
) -> None:
    alice, bob = users
    # Its own todo: the test holds alone too (pytest -k), not only after the others.
    add_todo(bob.page, "bob: kept across the restart")
    todos = titles(bob.page)
    bob.page.evaluate(
        """() => { window.seen = [];
                   window.statekit.subscribe('counter', '/n', (n) => window.seen.push(n)); }"""
    )
    start = counter(bob.page)
    snapshots = bob.page.evaluate("() => window.statekit.stats.snapshots")
    bob.page.fill("textarea", "bob's draft, kept in SQLite")
    bob.page.evaluate("() => window.statekit.settled()")

    # Bob's browser cannot reach the event stream until the writes below are done.
    blocked = lambda url: "/sk/events" in url  # noqa: E731
    bob.context.route(blocked, lambda route: route.abort())
    server.restart()
    for _ in range(3):
        alice.page.click("[aria-label=increment]")
    alice.page.wait_for_function(
        "n => document.querySelector('#counter output').textContent === String(n)",
        arg=start + 3,
        timeout=WAIT,
    )
    alice.page.evaluate("() => window.statekit.settled()")
    assert counter(bob.page) == start
    bob.page.wait_for_selector('[data-sk-state="reconnecting"]', timeout=WAIT)
    shot(bob.page, "restart-bob-cut-off")

    bob.context.unroute(blocked)
    bob.page.wait_for_function(
        "n => document.querySelector('#counter output').textContent === String(n)",
        arg=start + 3,
        timeout=WAIT,
    )
    bob.page.wait_for_selector('[data-sk-state="live"]', timeout=WAIT)
    bob.page.wait_for_timeout(300)
    seen = bob.page.evaluate("() => window.seen")
    assert seen[0] == start and seen[-1] == start + 3
    assert all(a < b for a, b in itertools.pairwise(seen)), seen  # no repeat, no step back
    assert bob.page.evaluate("() => window.statekit.stats.snapshots") == snapshots

    bob.page.reload()  # the new process serves the tab's draft and the list from SQLite
    ready(bob.page)
    bob.page.wait_for_function(
        "() => document.querySelector('textarea').value.startsWith(\"bob's draft\")",
        timeout=WAIT,
    )
    assert titles(bob.page) == todos
    shot(bob.page, "restart-bob-resumed")


def test_logging_out_and_in_again_in_the_page(browser: Any, server: Running) -> None:  # noqa: F811
    carol = User(browser, server.url, "carol")
    try:
        add_todo(carol.page, "carol: kept for carol")
        with carol.page.expect_navigation():
            carol.page.click("text=log out")
        ready(carol.page)
        assert carol.page.query_selector("ul.todos") is None  # a visitor's page has no list
        assert carol.page.is_visible("input[name=name]")
        assert "sk_demo_user" not in {c["name"] for c in carol.context.cookies()}
        carol.page.fill("input[name=name]", "carol")
        with carol.page.expect_navigation():
            carol.page.click("#todos form button")
        ready(carol.page)
        carol.page.wait_for_function(
            "() => document.querySelectorAll('ul.todos li').length === 1", timeout=WAIT
        )
        assert titles(carol.page) == ["carol: kept for carol"]
        assert carol.errors == []
    finally:
        carol.context.close()
