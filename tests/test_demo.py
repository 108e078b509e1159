"""``statekit demo``: the web demo as a user runs it, in a subprocess on 127.0.0.1.

It prints its URL and where its secret came from, serves one page, logs users
in and out by name, lets clients write only what the stores declare, keeps a
draft per tab, keeps its state in a SQLite backend across restarts, refuses a
bad ``--backend`` as a usage error (exit code 2), and stops on Ctrl-C.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx

from _backends import cleanup_prefix, redis_base_url, redis_url
from _demo_proc import Demo, demo

MUTATION = {"X-Statekit": "1", "Content-Type": "application/json"}
PATCH = {"X-Statekit": "1", "Content-Type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def live() -> Iterator[Demo]:
    with demo("--port", "0", env={"STATEKIT_SECRET": ""}) as running:
        yield running


@contextmanager
def visitor(live: Demo) -> Iterator[httpx.Client]:
    """A client with a session cookie (a GET of the sync server issues it)."""
    with httpx.Client(base_url=live.url, timeout=10) as c:
        assert c.get("sk/stores").status_code == 200
        yield c


def log_in(c: httpx.Client, name: str) -> httpx.Response:
    return c.post("login", data={"name": name}, follow_redirects=False)


def act(c: httpx.Client, store: str, action: str, **args: Any) -> httpx.Response:
    return c.post(f"sk/stores/{store}/actions/{action}", json=args, headers=MUTATION)


def test_it_prints_its_url_and_its_generated_secret_and_serves_the_page(live: Demo) -> None:
    said = "\n".join(live.lines)
    assert "statekit demo: secret generated for this run" in said
    assert "STATEKIT_SECRET" in said  # how to keep sessions across runs
    assert "state in MemoryBackend()" in said
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", live.url) and not live.url.endswith(":0/")
    page = httpx.get(live.url, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for part in (
        '<script type="module" src="/sk/client.js" data-sk-auto>',
        'data-sk-text="counter:/n"',
        'data-sk-action="counter:increment"',
        'data-sk-value="draft:/text"',
        'action="/login"',
        "<style>",
    ):
        assert part in html, part
    assert "data-sk-list" not in html  # no user: the page does not name the user store
    assert re.search(r"""(src|href)=["']?(https?:)?//""", html) is None  # no external asset
    client_js = httpx.get(live.url + "sk/client.js", timeout=10)
    assert client_js.status_code == 200 and "export function connect" in client_js.text


def test_login_and_logout(live: Demo) -> None:
    with visitor(live) as ada, visitor(live) as bob:
        assert ada.get("sk/stores/todos").status_code == 404  # a visitor has no todo list
        answer = log_in(ada, "  Ada   Lovelace ")
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("sk_demo_user=") and "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        page = ada.get("/").text
        assert "Logged in as <b>Ada Lovelace</b>" in page and 'data-sk-list="todos:/todo"' in page
        assert act(ada, "todos", "add", title="ada's secret").json()["result"] == 1
        assert ada.get("sk/stores/todos").json()["value"]["todo"] == [
            {"title": "ada's secret", "done": False}
        ]

        assert log_in(bob, "bob").status_code == 303
        assert bob.get("sk/stores/todos").json()["value"] == {"todo": []}  # bob's own list

        forged = ada.cookies["sk_demo_user"].replace("QWRh", "Ym9i", 1)  # "Ada" -> "bob"
        with visitor(live) as mallory:
            mallory.cookies.set("sk_demo_user", forged)
            assert mallory.get("sk/stores/todos").status_code == 404
            assert "Logged in" not in mallory.get("/").text

        out = ada.post("logout", follow_redirects=False)
        assert out.status_code == 303 and 'sk_demo_user=""' in out.headers["set-cookie"]
        assert "sk_demo_user" not in ada.cookies
        assert ada.get("sk/stores/todos").status_code == 404
        assert 'action="/login"' in ada.get("/").text

        log_in(ada, "Ada Lovelace")  # the list belongs to the user, not to the login
        assert ada.get("sk/stores/todos").json()["value"]["todo"][0]["title"] == "ada's secret"


@pytest.mark.parametrize("name", ["", "   ", "x" * 41, "tab\there\x00"])
def test_a_bad_name_is_refused_with_a_message(live: Demo, name: str) -> None:
    with visitor(live) as c:
        answer = log_in(c, name)
        assert answer.status_code == 303 and answer.headers["location"] == "/?login=invalid"
        assert "sk_demo_user" not in c.cookies
        assert "A name is 1 to 40 printable characters" in c.get("/?login=invalid").text


def test_another_site_cannot_log_a_visitor_in(live: Demo) -> None:
    with visitor(live) as c:
        answer = c.post(
            "login",
            data={"name": "attacker"},
            headers={"Origin": "http://evil.example"},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/?login=invalid"
        assert "sk_demo_user" not in c.cookies


def test_clients_write_only_what_the_stores_declare(live: Demo) -> None:
    with visitor(live) as c:
        log_in(c, "writer")
        refused = c.patch(
            "sk/stores/counter", json=[{"op": "replace", "path": "/n", "value": 99}], headers=PATCH
        )
        assert refused.status_code == 403 and refused.json()["error"] == "not_writable"
        start = c.get("sk/stores/counter").json()["value"]["n"]
        assert act(c, "counter", "increment").json()["result"] == start + 1
        assert act(c, "counter", "decrement").json()["result"] == start
        assert act(c, "counter", "reset").json()["result"] == 0
        assert c.get("sk/stores/counter").json()["value"] == {"n": 0}

        todo = c.patch(
            "sk/stores/todos", json=[{"op": "add", "path": "/todo/-", "value": 1}], headers=PATCH
        )
        assert todo.status_code == 403
        empty = act(c, "todos", "add", title="   ")
        assert empty.status_code == 422 and empty.json()["error"] == "invalid_arguments"
        assert act(c, "todos", "add", title="walk").status_code == 200
        assert act(c, "todos", "toggle", index=0).json()["result"] is True
        assert act(c, "todos", "toggle", index=5).json()["error"] == "action_failed"
        assert act(c, "todos", "remove", index=-1).json()["error"] == "invalid_arguments"
        assert act(c, "todos", "remove", index=0).json()["result"] == 0

        ok = c.patch(
            "sk/stores/draft",
            json=[{"op": "replace", "path": "/text", "value": "hello"}],
            headers=PATCH,
        )
        assert ok.status_code == 200
        too_long = c.patch(
            "sk/stores/draft",
            json=[{"op": "replace", "path": "/text", "value": "x" * 2001}],
            headers=PATCH,
        )
        assert too_long.status_code == 422 and too_long.json()["error"] == "validation_failed"
        assert c.get("sk/stores/draft").json()["value"] == {"text": "hello"}


def test_each_tab_has_its_own_draft(live: Demo) -> None:
    with visitor(live) as c:
        tabs = [c.post("sk/session/tab", json={}, headers=MUTATION).json()["tab"] for _ in "ab"]
        assert tabs[0] != tabs[1]
        for tab, text in zip(tabs, ["first tab", "second tab"], strict=True):
            answer = c.patch(
                "sk/stores/draft",
                json=[{"op": "replace", "path": "/text", "value": text}],
                headers={**PATCH, "X-Statekit-Tab": tab},
            )
            assert answer.status_code == 200
        seen = [
            c.get("sk/stores/draft", headers={"X-Statekit-Tab": tab}).json()["value"]["text"]
            for tab in tabs
        ]
        assert seen == ["first tab", "second tab"]
        assert c.get("sk/stores/draft").json()["value"]["text"] == ""  # no tab: the cookie's own


def test_a_sqlite_backend_keeps_the_state_across_restarts(tmp_path: Path) -> None:
    env = {"STATEKIT_SECRET": "a secret kept between the two runs"}
    args = ("--port", "0", "--backend", "sqlite:///state.db")
    with demo(*args, env=env, cwd=tmp_path) as first:
        assert "statekit demo: secret from STATEKIT_SECRET" in first.lines
        assert any("state in SQLiteBackend" in line for line in first.lines)
        with visitor(first) as c:
            log_in(c, "ada")
            act(c, "counter", "increment")
            act(c, "counter", "increment")
            act(c, "todos", "add", title="survives a restart")
            cookies = dict(c.cookies)
    assert (tmp_path / "state.db").exists()
    with demo(*args, env=env, cwd=tmp_path) as second:
        with httpx.Client(base_url=second.url, cookies=cookies, timeout=10) as c:
            counter = c.get("sk/stores/counter").json()
            assert counter["value"] == {"n": 2} and counter["version"] == 2
            todos = c.get("sk/stores/todos").json()["value"]["todo"]
            assert todos == [{"title": "survives a restart", "done": False}]


REDIS_DB = 12  # the demo's keys use the default prefix: a database of their own


def test_a_redis_backend_shares_the_state_between_two_demo_processes() -> None:
    redis_url()  # skips, or fails under STATEKIT_REQUIRE_REDIS=1, without a Redis
    url = f"{redis_base_url()}/{REDIS_DB}"
    cleanup_prefix(url, "statekit")
    env = {"STATEKIT_SECRET": "one secret for both processes"}
    try:
        with (
            demo("--port", "0", "--backend", url, env=env) as one,
            demo("--port", "0", "--backend", url, env=env) as two,
        ):
            assert any("state in RedisBackend" in line for line in one.lines)
            with visitor(one) as c:
                log_in(c, "ada")
                act(c, "counter", "increment")
                act(c, "todos", "add", title="seen by both processes")
                cookies = dict(c.cookies)
            with httpx.Client(base_url=two.url, cookies=cookies, timeout=10) as c:
                assert c.get("sk/stores/counter").json()["value"] == {"n": 1}
                todos = c.get("sk/stores/todos").json()["value"]["todo"]
                assert todos == [{"title": "seen by both processes", "done": False}]
                act(c, "counter", "increment")  # and back: process one follows process two
            with httpx.Client(base_url=one.url, timeout=10) as c:
                deadline = time.monotonic() + 5
                while c.get("sk/stores/counter").json()["value"]["n"] != 2:
                    assert time.monotonic() < deadline, "process one did not follow"
                    time.sleep(0.05)
    finally:
        cleanup_prefix(url, "statekit")


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statekit.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example", "unknown scheme 'ftp'"),
        ("sqlite://relative.db", "sqlite:///relative/path.db"),
        ("redis://127.0.0.1:1/0", "cannot open backend 'redis://127.0.0.1:1/0'"),
    ],
)
def test_a_bad_backend_is_a_usage_error(url: str, says: str) -> None:
    out = run_demo("--port", "0", "--backend", url)
    assert out.returncode == 2, out
    assert "--backend" in out.stderr and says in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "open http" not in out.stdout


def test_a_taken_port_is_a_usage_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = run_demo("--port", str(taken.getsockname()[1]))
    assert out.returncode == 2 and "cannot listen on 127.0.0.1:" in out.stderr, out.stderr


def test_ctrl_c_stops_it_within_seconds_with_an_event_stream_open() -> None:
    with demo("--port", "0") as running:
        with httpx.Client(base_url=running.url, timeout=10) as c:
            with c.stream("GET", "sk/events?store=counter") as stream:
                lines = stream.iter_lines()
                assert next(lines).startswith("retry:")
                took = running.interrupt(timeout=10)
        assert running.proc.returncode == 0
        assert took < 5, f"took {took:.1f} s to stop"
        assert "statekit demo: stopped" in running.output()
