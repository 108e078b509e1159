"""RedisBackend specifics: the Lua patch semantics agree with statekit._patch, keys,
connections, errors, dropped pub/sub and a Redis restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import statekit as sk
from _backends import free_port, make_backend, new_prefix, redis_url, start_redis
from statekit import _patch
from statekit.backends import BackendUnavailable, RedisBackend, backend_from_url, scope_key

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[RedisBackend]:
    made = make_backend("redis", tmp_path)
    assert isinstance(made, RedisBackend)
    try:
        yield made
    finally:
        made.close()


def wait_for(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# ---------------------------------------------------------------- one case table

BIG = 123456789012345678901234567890
CASES: list[tuple[Any, list[dict[str, Any]]]] = [
    # RFC 6902 appendix A
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}]),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}]),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}]),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
    ),
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
    ),
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}]),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
    # arrays: ends, bounds, bad indices
    (
        {"xs": []},
        [{"op": "add", "path": "/xs/0", "value": 1}, {"op": "add", "path": "/xs/-", "value": 2}],
    ),
    ({"xs": [1]}, [{"op": "add", "path": "/xs/2", "value": 1}]),
    ({"xs": [1, 2]}, [{"op": "remove", "path": "/xs/-"}]),
    ({"xs": [1, 2]}, [{"op": "replace", "path": "/xs/01", "value": 0}]),
    ({"xs": [1, 2]}, [{"op": "replace", "path": "/xs/1", "value": 0}]),
    ({"xs": [1, 2]}, [{"op": "remove", "path": "/xs/+1"}]),
    ({"xs": [1, 2, 3]}, [{"op": "remove", "path": "/xs/0"}, {"op": "remove", "path": "/xs/1"}]),
    # paths: optional leading slash, escapes, scalars in the way, the root
    ({"a": {"b": 1}}, [{"op": "replace", "path": "a/b", "value": 2}]),
    (
        {"a/b": 1, "m~n": 2},
        [{"op": "remove", "path": "/a~1b"}, {"op": "replace", "path": "/m~0n", "value": 3}],
    ),
    ({"a": 1}, [{"op": "add", "path": "/a~2", "value": 1}]),
    ({"a": 1}, [{"op": "add", "path": "/a/b", "value": 1}]),
    ({"a": "text"}, [{"op": "replace", "path": "/a/0", "value": 1}]),
    ({"a": 1}, [{"op": "remove", "path": ""}]),
    ({"a": 1}, [{"op": "replace", "path": "", "value": {"b": [True, None]}}]),
    ({"a": 1}, [{"op": "replace", "path": "", "value": [1, 2]}]),
    ({"a": 1}, [{"op": "add", "path": "", "value": "x"}]),
    # move / copy
    ({"a": {"b": {}}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}]),
    ({"a": [1]}, [{"op": "move", "from": "/a", "path": "/a"}]),
    ({"a": {"x": 1}, "b": 0}, [{"op": "move", "from": "/a", "path": "/b"}]),
    (
        {"a": [1]},
        [{"op": "copy", "from": "/a", "path": "/b"}, {"op": "add", "path": "/b/-", "value": 2}],
    ),
    ({"a": {}}, [{"op": "copy", "from": "/missing", "path": "/b"}]),
    (
        {"a": 1},
        [
            {"op": "add", "path": "/v", "value": {"n": [1]}},
            {"op": "add", "path": "/v/n/-", "value": 2},
        ],
    ),
    # equality as RFC 6902 test defines it
    ({"n": 1}, [{"op": "test", "path": "/n", "value": 1.0}]),
    ({"n": 1}, [{"op": "test", "path": "/n", "value": True}]),
    ({"b": True}, [{"op": "test", "path": "/b", "value": 1}]),
    (
        {"o": {"x": 1, "y": [1, {"z": None}]}},
        [{"op": "test", "path": "/o", "value": {"y": [1, {"z": None}], "x": 1}}],
    ),
    ({"o": {"x": 1}}, [{"op": "test", "path": "/o", "value": {"x": 1, "y": 2}}]),
    ({"xs": [1, 2]}, [{"op": "test", "path": "/xs", "value": [2, 1]}]),
    ({"e": []}, [{"op": "test", "path": "/e", "value": {}}]),
    ({"n": None}, [{"op": "test", "path": "/n", "value": None}]),
    ({"big": BIG}, [{"op": "test", "path": "/big", "value": BIG + 1}]),
    # values kept exactly: empty containers, floats, big ints, text, key order
    (
        {"z": 1, "a": 2},
        [{"op": "add", "path": "/m", "value": {"e": [], "o": {}, "f": 0.1, "g": 1e-7, "h": 1.0}}],
    ),
    ({"s": ""}, [{"op": "replace", "path": "/s", "value": 'é "quoted" \\ / \n\t \u0001 😀'}]),
    (
        {"big": 1},
        [
            {"op": "replace", "path": "/big", "value": BIG},
            {"op": "add", "path": "/neg", "value": -2.5e300},
        ],
    ),
    (
        {"k": {"b": 1, "a": 2}},
        [{"op": "remove", "path": "/k/b"}, {"op": "add", "path": "/k/b", "value": 3}],
    ),
    # malformed ops
    ({"a": 1}, [{"op": "jump", "path": "/a"}]),
    ({"a": 1}, [{"path": "/a"}]),
    ({"a": 1}, [{"op": "add", "value": 1}]),
    ({"a": 1}, [{"op": "add", "path": "/b"}]),
    ({"a": 1}, [{"op": "add", "path": 5, "value": 1}]),
    ({"a": 1}, [{"op": "move", "path": "/b"}]),
    ({"a": 1}, ["add"]),
    ({"a": 1}, [{"op": "add", "path": "/b", "value": 1}, {"op": "remove", "path": "/c"}]),
]


def _outcome(run: Any) -> tuple[str, Any, Any]:
    """("ok", document, applied ops) or the kind of error, for one way of applying."""
    try:
        return ("ok", *run())
    except sk.PatchTestFailed:
        return ("test", None, None)
    except sk.PathError:
        return ("path", None, None)
    except sk.PatchError:
        return ("patch", None, None)


def _python(doc: Any, ops: list[dict[str, Any]]) -> tuple[str, Any, Any]:
    def run() -> tuple[Any, Any]:
        new, applied = _patch.apply(_patch.freeze_json(doc), ops)
        if not isinstance(new, dict):
            raise sk.PatchError("the document must stay an object")
        return json.loads(json.dumps(new)), json.loads(json.dumps(applied))

    return _outcome(run)


def _lua(
    backend: RedisBackend, at: int, doc: Any, ops: list[dict[str, Any]]
) -> tuple[str, Any, Any]:
    scope = f"case:{at}"

    def run() -> tuple[Any, Any]:
        backend.commit(scope, "s", ops, 0, initial=json.dumps(doc))
        log = backend.history(scope, "s", 0)
        assert log is not None and len(log) == 1
        return backend.load(scope, "s")[1], log[0][1]

    return _outcome(run)


def _ordered(value: Any) -> Any:
    """Key order made visible, so that it is compared too."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize("at", range(len(CASES)))
def test_lua_and_python_agree(backend: RedisBackend, at: int) -> None:
    doc, ops = CASES[at]
    expected, got = _python(doc, ops), _lua(backend, at, doc, ops)
    assert got[0] == expected[0], (doc, ops, got, expected)
    assert _ordered(got[1]) == _ordered(expected[1])
    assert _ordered(got[2]) == _ordered(expected[2])
    if got[0] != "ok":  # nothing written
        assert backend.load(f"case:{at}", "s") == (0, None)


# ---------------------------------------------------------------- layout and errors


def test_keys_use_one_hash_tag_per_scope(backend: RedisBackend) -> None:
    cart = sk.Store({"items": []}, name="cart", scope="session")
    prefs = sk.Store({"lang": "en"}, name="prefs", scope="session")
    app = backend.attach(sk.new_app_scope())
    with app, sk.session("s{1}"):
        cart.add("items/-", "tea")
        prefs.set("lang", "fr")
        key = scope_key(sk.current_scope())
    client = redis.Redis.from_url(backend.url)
    keys = sorted(k.decode() for k in client.scan_iter(f"{backend.prefix}:*"))
    tag = "{" + key + "}"
    assert keys == [
        f"{backend.prefix}:{tag}:h",
        f"{backend.prefix}:{tag}:x:cart",
        f"{backend.prefix}:{tag}:x:prefs",
    ]
    assert "{" not in key[1:]  # ids are quoted: the tag cannot be cut short
    fields = client.hgetall(f"{backend.prefix}:{tag}:h")
    assert {k.decode(): v.decode() for k, v in fields.items()} == {
        "d:cart": '{"items":["tea"]}',
        "v:cart": "1",
        "d:prefs": '{"lang":"fr"}',
        "v:prefs": "1",
    }
    client.close()


def test_works_where_admin_commands_are_disabled(tmp_path: Path) -> None:
    # As on managed Redis: CONFIG, KEYS, FLUSHALL and DEBUG renamed away.
    disabled = [
        a
        for c in ("CONFIG", "KEYS", "FLUSHALL", "FLUSHDB", "DEBUG")
        for a in ("--rename-command", c, "")
    ]
    proc, port = start_redis(tmp_path / "managed", persist=False, extra=disabled)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        one, two = RedisBackend(url), RedisBackend(url)
        counter = sk.Store({"n": 0}, name="counter")
        a, b = one.attach(sk.new_app_scope()), two.attach(sk.new_app_scope())
        with a:
            counter.update("n", lambda n: n + 1)
        with b:
            wait_for(lambda: counter.version == 1)
            assert counter.get("n") == 1
        assert one.scopes() == ["app:app"]
        one.close()
        two.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_unreachable_redis_names_the_url() -> None:
    port = free_port()
    url = f"redis://user:secret@127.0.0.1:{port}/0"
    with pytest.raises(BackendUnavailable, match=rf"127\.0\.0\.1:{port}.*unreachable") as info:
        RedisBackend(url, timeout=1)
    assert "secret" not in str(info.value)
    with pytest.raises(BackendUnavailable):
        backend_from_url(f"redis://127.0.0.1:{port}/0", timeout=1)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisBackend(redis_url(), prefix="a{b")
    with pytest.raises(ValueError, match="pool_size"):
        RedisBackend(redis_url(), pool_size=0)


def test_pool_is_capped_and_one_pubsub_connection(backend: RedisBackend) -> None:
    counter = sk.Store({"n": 0}, name="counter")
    apps = [backend.attach(sk.new_app_scope()) for _ in range(8)]
    import threading

    def work(app: sk.Scope) -> None:
        with app:
            for _ in range(20):
                counter.update("n", lambda n: n + 1)

    threads = [threading.Thread(target=work, args=(app,)) for app in apps for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert backend.load(scope_key(apps[0]), "counter")[0] == 8 * 6 * 20
    assert len(backend._pool._connections) <= backend.pool_size  # type: ignore[attr-defined]
    client = redis.Redis.from_url(backend.url)
    subscribers = client.pubsub_numsub(f"{backend.prefix}:n")
    assert subscribers == [(f"{backend.prefix}:n".encode(), 1)]  # one per backend, not per copy
    client.close()


# ---------------------------------------------------------------- faults


def test_dropped_pubsub_connection_resyncs_from_the_stream(backend: RedisBackend) -> None:
    counter = sk.Store({"n": 0}, name="counter")
    here = backend.attach(sk.new_app_scope())
    with here:
        assert counter.get("n") == 0
    other = RedisBackend(backend.url, prefix=backend.prefix)  # another process, in effect
    there = other.attach(sk.new_app_scope())
    admin = redis.Redis.from_url(backend.url)
    try:
        before = backend.reconnects
        # CLIENT KILL TYPE pubsub, narrowed to this backend's connection
        # (other test runs may share this Redis).
        for client in admin.client_list(_type="pubsub"):
            if client["name"] == backend.pubsub_name:
                admin.client_kill_filter(_id=client["id"])
        # Commits made while the subscriber is gone: no notice reaches it.
        with there:
            for _ in range(5):
                counter.update("n", lambda n: n + 1)
        wait_for(lambda: backend.reconnects > before)
        with here:
            wait_for(lambda: counter.version == 5)
            assert counter.get("n") == 5
        with there:
            counter.update("n", lambda n: n + 1)
        with here:
            wait_for(lambda: counter.version == 6)  # and notices flow again
    finally:
        admin.close()
        other.close()


def test_redis_restart_reconnects_and_resyncs(tmp_path: Path) -> None:
    proc, port = start_redis(tmp_path / "redis", persist=True)
    url, prefix = f"redis://127.0.0.1:{port}/0", new_prefix()
    one, two = (
        RedisBackend(url, prefix=prefix, timeout=2),
        RedisBackend(url, prefix=prefix, timeout=2),
    )
    counter = sk.Store({"n": 0}, name="counter")
    a, b = one.attach(sk.new_app_scope()), two.attach(sk.new_app_scope())
    try:
        with a:
            for _ in range(3):
                counter.update("n", lambda n: n + 1)
        with b:
            wait_for(lambda: counter.version == 3)
        proc.kill()
        proc.wait(timeout=10)
        with a, pytest.raises(BackendUnavailable, match=str(port)):
            counter.update("n", lambda n: n + 1)
        with a:
            assert (counter.get("n"), counter.version) == (3, 3)  # nothing half-done
        proc, _ = start_redis(tmp_path / "redis", persist=True, port=port)
        # The persisted data is back; writes work again and reach the other copy.
        wait_for(lambda: one.reconnects >= 1 and two.reconnects >= 1)
        with a:
            assert counter.update("n", lambda n: n + 1) == 4
        with b:
            wait_for(lambda: counter.version == 4)
            assert counter.get("n") == 4
    finally:
        one.close()
        two.close()
        proc.kill()
        proc.wait(timeout=10)
