"""One store/scope suite for every backend (memory, SQLite, Redis), parametrised.

Two app scopes attached to one backend object stand for two processes here
(the cross-process tests are in test_backends_processes.py): they share
nothing but the backend.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import statekit as sk
from _backends import BACKENDS, expire_local, make_backend, two_apps, wait_for
from statekit.backends import (
    Backend,
    MemoryBackend,
    SQLiteBackend,
    apatch,
    aupdate,
    backend_from_url,
    scope_key,
)

pytestmark = pytest.mark.timeout(120)


def write_around(backend: Backend, key: str, store: str, op: dict[str, Any], initial: str) -> None:
    """A commit by "another process": the copies here are not told."""
    backend._write(key, store, [op], 0, initial=initial, ttl=None)


# ---------------------------------------------------------------- the interface


def test_commit_load_history(backend: Backend) -> None:
    key = "app:app"
    assert backend.load(key, "s") == (0, None)
    assert backend.history(key, "s", 0) == []
    ops = [{"op": "add", "path": "/xs/-", "value": {"a": [1, 2.5, None, True]}}]
    assert backend.commit(key, "s", ops, 0, initial='{"xs": []}') == 1
    assert backend.load(key, "s") == (1, {"xs": [{"a": [1, 2.5, None, True]}]})
    # The log holds the ops as applied: '-' is the concrete index.
    assert backend.history(key, "s", 0) == [
        (1, [{"op": "add", "path": "/xs/0", "value": {"a": [1, 2.5, None, True]}}])
    ]
    assert backend.commit(key, "s", [{"op": "remove", "path": "/xs/0"}], None, initial="{}") == 2
    assert backend.load(key, "s") == (2, {"xs": []})
    assert [v for v, _ in backend.history(key, "s", 0) or []] == [1, 2]
    assert backend.history(key, "s", 2) == []
    assert backend.history(key, "s", 5) is None  # newer than the copy: reload


def test_version_conflict_changes_nothing(backend: Backend) -> None:
    backend.commit("app:app", "s", [{"op": "add", "path": "/n", "value": 1}], 0, initial="{}")
    with pytest.raises(sk.VersionConflict, match="expected version 0, the current one is 1"):
        backend.commit(
            "app:app", "s", [{"op": "replace", "path": "/n", "value": 9}], 0, initial="{}"
        )
    assert backend.load("app:app", "s") == (1, {"n": 1})


@pytest.mark.parametrize(
    ("ops", "error", "match"),
    [
        ([{"op": "replace", "path": "/missing", "value": 1}], sk.PathError, "missing"),
        ([{"op": "test", "path": "/n", "value": 2}], sk.PatchTestFailed, "test"),
        ([{"op": "jump", "path": "/n"}], sk.PatchError, "unknown op"),
        ([{"op": "remove", "path": ""}], sk.PatchError, "whole document"),
    ],
)
def test_bad_ops_write_nothing(backend: Backend, ops: Any, error: type, match: str) -> None:
    backend.commit("app:app", "s", [{"op": "add", "path": "/n", "value": 1}], 0, initial="{}")
    good = {"op": "add", "path": "/m", "value": 1}
    with pytest.raises(error, match=match):
        backend.commit("app:app", "s", [good, *ops], 1, initial="{}")
    assert backend.load("app:app", "s") == (1, {"n": 1})
    assert [v for v, _ in backend.history("app:app", "s", 0) or []] == [1]


def test_history_trimmed_means_reload(tmp_path: Any, request: pytest.FixtureRequest) -> None:
    for kind in BACKENDS:
        small = make_backend(kind, tmp_path / kind, history_limit=3)
        try:
            for v in range(200):
                small.commit(
                    "app:app", "s", [{"op": "add", "path": "/n", "value": v}], v, initial="{}"
                )
            assert small.history("app:app", "s", 0) is None
            recent = small.history("app:app", "s", 199)
            assert recent == [(200, [{"op": "add", "path": "/n", "value": 199}])]
        finally:
            small.close()


# ---------------------------------------------------------------- store copies


def test_copies_share_through_the_backend(backend: Backend) -> None:
    todos = sk.Store({"todo": []}, name="todos")
    one, two = two_apps(backend)
    with two:
        assert todos.get("todo") == []
        seen: list[Any] = []
        patches: list[tuple[Any, int]] = []
        todos.listen("todo", seen.append)
        todos.on_patch(lambda ops, version: patches.append((ops, version)))
    with one:
        todos.add("todo/-", {"title": "milk", "done": False})
        todos.set("todo/0/done", True)
        assert todos.version == 2
    with two:
        wait_for(lambda: todos.version == 2)
        assert todos.get("todo") == [{"title": "milk", "done": True}]
    # Listeners of a followed commit run just after the copy took it (outside its lock).
    wait_for(lambda: len(patches) == 2)
    assert seen[-1] == [{"title": "milk", "done": True}]
    assert [v for _, v in patches] == [1, 2]
    assert patches[0][0] == [
        {"op": "add", "path": "/todo/0", "value": {"title": "milk", "done": False}}
    ]
    # Applying a change heard from elsewhere pushed nothing back.
    assert backend.load(scope_key(one), "todos")[0] == 2


def test_a_new_copy_loads_the_backend_version(backend: Backend) -> None:
    counter = sk.Store({"n": 0}, name="counter")
    one, two = two_apps(backend)
    with one:
        for _ in range(5):
            counter.update("n", lambda n: n + 1)
    with two:  # created after the writes: loaded, not replayed
        assert (counter.get("n"), counter.version) == (5, 5)
        counter.update("n", lambda n: n * 10)
    with one:
        wait_for(lambda: counter.version == 6)
        assert counter.get("n") == 50


def test_stale_copy_retries_update_on_fresh_value(backend: Backend) -> None:
    counter = sk.Store({"n": 0}, name="counter")
    one, two = two_apps(backend)
    with one:
        counter.get("n")
    with two:
        counter.get("n")
    # Write around both copies: they are now behind the backend.
    key = scope_key(one)
    write_around(backend, key, "counter", {"op": "replace", "path": "/n", "value": 41}, '{"n": 0}')
    with one:
        assert counter.update("n", lambda n: n + 1) == 42  # re-read 41, not 0
        assert counter.version == 2


def test_listeners_of_a_following_copy_run_outside_its_lock(backend: Backend) -> None:
    """Commits heard from elsewhere (a notice, or a conflict's catch-up) reach
    listeners only once the copy's lock is released: a listener that writes
    another copy would otherwise deadlock with a thread doing the reverse."""
    counter = sk.Store({"n": 0}, name="counter")
    one, two = two_apps(backend)
    with two:
        state = counter._state()
        held: list[tuple[str, bool]] = []
        counter.listen("n", lambda n: held.append(("listen", state.lock._is_owned())))
        counter.on_patch(lambda ops, v: held.append(("on_patch", state.lock._is_owned())))
    with one:
        counter.set("n", 1)  # two follows this (a notice)
    with two:
        wait_for(lambda: counter.version == 1)
    op = {"op": "replace", "path": "/n", "value": 5}
    backend._write(scope_key(one), "counter", [op], 1, initial='{"n": 0}', ttl=None)
    with two:  # stale: the push conflicts, the copy catches up, the update re-runs
        assert counter.update("n", lambda n: n + 1) in (2, 6)
        wait_for(lambda: counter.get("n") == 6)
    assert {kind for kind, _ in held} == {"listen", "on_patch"}
    assert not any(owned for _, owned in held), held


def test_threads_across_copies_lose_nothing(backend: Backend) -> None:
    counter = sk.Store({"n": 0}, name="counter")
    apps = two_apps(backend)
    per_thread = 50

    def work(app: sk.Scope) -> None:
        with app:
            for _ in range(per_thread):
                counter.update("n", lambda n: n + 1)

    threads = [threading.Thread(target=work, args=(apps[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert backend.load(scope_key(apps[0]), "counter") == (6 * per_thread, {"n": 6 * per_thread})
    for app in apps:
        with app:
            wait_for(lambda: counter.version == 6 * per_thread)
            assert counter.get("n") == 6 * per_thread


def test_listeners_writing_other_copies_under_thread_stress(backend: Backend) -> None:
    """The shape of the f0ff29e deadlock, many times over: 8 copies of one store
    (8 app scopes on one backend), 16 threads updating them, and a patch
    listener on every copy that writes the *next* copy whenever it hears a
    thread's commit. A listener run under its copy's lock would take locks in
    a cycle (copy i's, then copy i+1's) against the thread doing the reverse."""
    apps = [backend.attach(sk.new_app_scope()) for _ in range(8)]
    pair = sk.Store({"a": 0, "b": 0}, name="pair")
    heard = [0] * len(apps)
    errors: list[BaseException] = []

    def echo(i: int) -> Callable[[Any, int], None]:
        def listener(ops: Any, version: int) -> None:
            if not any(op["path"] == "/a" for op in ops):
                return  # an echo: not echoed again
            heard[i] += 1  # one thread at a time per copy: on_patch is serialised
            try:
                with apps[(i + 1) % len(apps)]:
                    pair.update("b", lambda b: b + 1)
            except BaseException as exc:
                errors.append(exc)

        return listener

    for i, app in enumerate(apps):
        with app:
            pair.get("a")  # every copy exists before the threads start
            pair.on_patch(echo(i))
    threads_per_app, per_thread = 2, 5
    writes = len(apps) * threads_per_app * per_thread

    def work(app: sk.Scope) -> None:
        try:
            with app:
                for _ in range(per_thread):
                    pair.update("a", lambda a: a + 1)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(app,), daemon=True)
        for app in apps
        for _ in range(threads_per_app)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running after 30 s (a deadlock?): {stuck}"
    # Every copy hears every thread commit once, and echoes it once; echoes
    # heard by notice threads may still be on their way.
    wait_for(lambda: backend.load("app:app", "pair")[1] == {"a": writes, "b": len(apps) * writes})
    assert not errors, errors
    assert heard == [writes] * len(apps)
    version = backend.load("app:app", "pair")[0]
    for app in apps:
        with app:
            wait_for(lambda: pair.version == version)
            assert pair.snapshot() == {"a": writes, "b": len(apps) * writes}


def test_async_writers_across_copies_end_exact(backend: Backend) -> None:
    counter = sk.Store({"n": 0}, name="counter")
    apps = two_apps(backend)

    async def writer(app: sk.Scope) -> None:
        with app:
            await aupdate(counter, "n", lambda n: n + 1)

    async def main() -> None:
        await asyncio.gather(*(writer(apps[i % 2]) for i in range(200)))

    asyncio.run(main())
    version, stored = backend.load(scope_key(apps[0]), "counter")
    assert stored == {"n": 200}
    # Writers queued on one copy go out together: fewer commits than writes.
    assert 2 <= version <= 200


def test_expected_version_exactly_one_wins(backend: Backend) -> None:
    doc = sk.Store({"owner": None}, name="doc")
    apps = two_apps(backend)
    for app in apps:
        with app:
            assert doc.version == 0

    async def claim(app: sk.Scope, who: str) -> str:
        with app:
            try:
                await apatch(
                    doc, [{"op": "replace", "path": "/owner", "value": who}], expected_version=0
                )
            except sk.VersionConflict:
                return "lost"
            return "won"

    async def main() -> list[str]:
        return await asyncio.gather(*(claim(apps[i % 2], f"w{i}") for i in range(20)))

    results = asyncio.run(main())
    assert results.count("won") == 1
    version, stored = backend.load(scope_key(apps[0]), "doc")
    assert version == 1
    assert stored["owner"] == f"w{results.index('won')}"


def test_bad_patch_on_a_bound_copy_changes_nothing(backend: Backend) -> None:
    s = sk.Store({"a": 1}, name="s")
    (app, _) = two_apps(backend)
    with app:
        s.set("a", 2)
        with pytest.raises(sk.PathError):
            s.patch([{"op": "replace", "path": "/a", "value": 3}, {"op": "remove", "path": "/zz"}])
        assert (s.get("a"), s.version) == (2, 1)
    assert backend.load(scope_key(app), "s") == (1, {"a": 2})


def test_transaction_conflict_rolls_back_and_catches_up(backend: Backend) -> None:
    s = sk.Store({"a": 0, "b": 0}, name="s")
    one, _ = two_apps(backend)
    key = scope_key(one)
    with one:
        s.get("a")
        with pytest.raises(sk.VersionConflict, match="not committed"), s.transaction():
            s.set("b", 1)
            # Another process commits while the block runs (the copy's lock
            # keeps notices out until it ends).
            write_around(
                backend, key, "s", {"op": "replace", "path": "/a", "value": 7}, '{"a": 0, "b": 0}'
            )
        assert s.snapshot() == {"a": 7, "b": 0}
        assert s.version == 1
        with s.transaction():
            s.set("b", 1)
        assert backend.load(key, "s") == (2, {"a": 7, "b": 1})


def test_lost_backend_data_resets_the_copy(backend: Backend) -> None:
    s = sk.Store({"n": 0}, name="s")
    one, _ = two_apps(backend)
    with one:
        s.set("n", 5)
        backend.drop(scope_key(one))
        s.update("n", lambda n: n + 1)  # the copy learns the data is gone, then writes
        assert (s.get("n"), s.version) == (1, 1)


def test_users_and_sessions_are_isolated(backend: Backend) -> None:
    prefs = sk.Store({"lang": "en"}, name="prefs", scope="user")
    cart = sk.Store({"items": []}, name="cart", scope="session")
    one, two = two_apps(backend)
    with one, sk.user("alice"), sk.session("phone"):
        prefs.set("lang", "fr")
        cart.add("items/-", "tea")
    with two, sk.user("bob"), sk.session("phone"):
        assert prefs.get("lang") == "en"
        assert cart.get("items") == []
    with two, sk.user("alice"), sk.session("laptop"):
        assert prefs.get("lang") == "fr"
        assert cart.get("items") == []
    with two, sk.user("alice"), sk.session("phone"):
        assert cart.get("items") == ["tea"]
    assert "app:app/user:alice/session:phone" in backend.scopes()


def test_idle_sessions_expire_and_registries_agree(backend: Backend) -> None:
    cart = sk.Store({"items": []}, name="cart", scope="session")
    app, _ = two_apps(backend)
    with app:
        with sk.session("idle", ttl=0.5):
            cart.add("items/-", "tea")
        with sk.session("busy", ttl=60):
            cart.add("items/-", "milk")
    idle, busy = "app:app/session:idle", "app:app/session:busy"
    assert {idle, busy} <= set(backend.scopes())
    wait_for(lambda: idle not in backend.scopes())
    assert busy in backend.scopes()
    assert expire_local(app) == 1  # the local tree drops the same session
    assert [s.id for s in app.scopes("session")] == ["busy"]
    backend.expire()
    assert backend.load(idle, "cart") == (0, None)
    with app, sk.session("idle", ttl=0.5):
        assert cart.get("items") == []  # a new session starts from the initial value
        assert cart.version == 0


def test_subscribe_hears_each_commit_once(backend: Backend) -> None:
    heard: list[tuple[str, str, int]] = []
    off = backend.subscribe(lambda scope, store, version: heard.append((scope, store, version)))
    s = sk.Store({"n": 0}, name="s")
    app, _ = two_apps(backend)
    with app:
        s.set("n", 1)
        s.set("n", 2)
    wait_for(lambda: len(heard) >= 2)
    time.sleep(0.2)  # a duplicate (pub/sub echo of a local commit) would show up here
    assert heard == [("app:app", "s", 1), ("app:app", "s", 2)]
    off()


def test_undo_goes_through_the_backend(backend: Backend) -> None:
    s = sk.Store({"n": 0}, name="s")
    one, two = two_apps(backend)
    with one:
        s.set("n", 1)
        assert s.undo()
        assert (s.get("n"), s.version) == (0, 2)
    with two:
        assert s.get("n") == 0


# ---------------------------------------------------------------- URLs


def test_backend_from_url(tmp_path: Any) -> None:
    assert isinstance(backend_from_url("memory://"), MemoryBackend)
    assert isinstance(backend_from_url(None), MemoryBackend)
    made = backend_from_url(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(made, SQLiteBackend) and made.path == f"{tmp_path}/a.db"
    assert backend_from_url(made) is made
    made.close()
    with pytest.raises(ValueError, match="unknown scheme 'postgres'"):
        backend_from_url("postgres://x")
    with pytest.raises(ValueError, match="sqlite:///relative"):
        backend_from_url("sqlite://")
    with pytest.raises(TypeError, match="not int"):
        backend_from_url(3)  # type: ignore[arg-type]


def test_attach_needs_an_app_scope() -> None:
    backend = MemoryBackend()
    with sk.session("s") as s, pytest.raises(ValueError, match="app scope"):
        backend.attach(s)


# ---------------------------------------------------------------- SQLite's watcher


def test_sqlite_watcher_reads_the_log_only_when_the_file_moved(tmp_path: Any) -> None:
    """Idle polls are one ``PRAGMA data_version`` each; the history table is
    read once per change, whichever connection (here: another backend object,
    as another process would) made it."""
    here = SQLiteBackend(tmp_path / "w.db", poll_interval=0.005, busy_interval=0.001)
    there = SQLiteBackend(tmp_path / "w.db")
    heard: list[int] = []
    here.subscribe(lambda scope, store, version: heard.append(version))
    try:
        wait_for(lambda: here.reads == 1)  # the first poll reads what it missed
        time.sleep(0.3)  # ~100 idle polls
        assert here.reads == 1
        there.commit("app:app", "s", [{"op": "add", "path": "/n", "value": 1}], 0, initial="{}")
        wait_for(lambda: heard == [1])
        time.sleep(0.3)
        assert here.reads == 2
    finally:
        here.close()
        there.close()
    with pytest.raises(ValueError, match="busy_interval"):
        SQLiteBackend(tmp_path / "w.db", busy_interval=0)
    with pytest.raises(ValueError, match="busy_for"):
        SQLiteBackend(tmp_path / "w.db", busy_for=-1)
