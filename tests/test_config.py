"""ConfigManager and VersionedConfig: versions, audit, CAS, schema, diff, secrets, durability."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pydantic
import pytest

import statekit as sk
from statekit.config import MASK, ConfigChange, ConfigManager, Masked, VersionedConfig
from statekit.config._journal import encode, read_records
from statekit.exceptions import (
    PathError,
    ReadOnlyError,
    StatekitError,
    ValidationError,
    VersionConflict,
)


@pytest.fixture
def errors() -> Any:
    caught: list[tuple[BaseException, str]] = []
    old = sk.set_error_hook(lambda exc, where: caught.append((exc, where)))
    yield caught
    sk.set_error_hook(old)


# -- the seed's API -------------------------------------------------------------------


def test_seed_api() -> None:
    config = ConfigManager(
        initial_config={"log_level": "INFO", "timeout": 30, "enabled_features": ["auth", "api"]}
    )
    config.update_config({"log_level": "DEBUG", "timeout": 60})
    current = config.get_config()
    assert current["log_level"] == "DEBUG"
    assert config.get_version() == 1
    history = config.get_history()
    assert [h.version for h in history] == [0, 1]
    assert dict(history[1].changes) == {"log_level": "DEBUG", "timeout": 60}
    assert history[0].config["timeout"] == 30
    assert history[1].metadata["reason"] is None
    assert list(current["enabled_features"]) == ["auth", "api"]


def test_versions_index_history() -> None:
    c = ConfigManager(initial_config={"n": 0})
    for n in range(1, 6):
        c.update_config({"n": n})
    assert all(h.version == i for i, h in enumerate(c.get_history()))
    assert c.get_history()[3].config["n"] == 3


def test_get_config_is_frozen_and_copyable() -> None:
    c = ConfigManager(initial_config={"features": {"a": True}, "xs": [1]})
    cfg = c.get_config()
    with pytest.raises(ReadOnlyError):
        cfg["features"]["a"] = False  # type: ignore[index]
    with pytest.raises(ReadOnlyError):
        cfg["xs"].append(2)
    features = cfg["features"].copy()
    features["b"] = True
    c.update_config({"features": features})
    assert c.get_config()["features"] == {"a": True, "b": True}
    assert c.get_history()[0].config["features"] == {"a": True}


def test_initial_config_is_copied() -> None:
    raw = {"a": [1]}
    c = ConfigManager(initial_config=raw)
    raw["a"].append(2)
    assert c.get_config()["a"] == [1]


# -- audit, no-ops, CAS -----------------------------------------------------------------


def test_author_reason_timestamp_recorded() -> None:
    c = ConfigManager(initial_config={"t": 1}, author="deploy-bot")
    before = time.time()
    v = c.update_config({"t": 2}, reason="tune", metadata={"ticket": "OPS-1"})
    assert v.author == "deploy-bot"
    assert v.reason == "tune"
    assert v.metadata["ticket"] == "OPS-1"
    assert before <= v.timestamp <= time.time()
    v2 = c.update_config({"t": 3}, author="ana")
    assert v2.author == "ana"
    assert c.get_history()[0].reason == "initial configuration"


def test_noop_update_creates_no_version_and_no_event() -> None:
    c = ConfigManager(initial_config={"t": 30, "xs": [1, 2]})
    calls: list[Any] = []
    c.subscribe(calls.append)
    same = c.update_config({"t": 30, "xs": [1, 2]})
    assert same.version == 0 and c.get_version() == 0
    assert len(c.get_history()) == 1
    assert calls == []
    assert c.update_config({"t": True}).version == 1  # True is not 30, nor 1


def test_expected_version_compare_and_set() -> None:
    c = ConfigManager(initial_config={"t": 1})
    c.update_config({"t": 2}, expected_version=0)
    with pytest.raises(VersionConflict, match="at version 1, not the expected 0"):
        c.update_config({"t": 3}, expected_version=0)
    assert c.get_config()["t"] == 2
    assert isinstance(VersionConflict("x"), RuntimeError)


def test_cas_increments_from_threads_are_exact() -> None:
    c = ConfigManager(initial_config={"n": 0})

    def work() -> None:
        for _ in range(200):
            while True:
                v = c.current
                try:
                    c.update_config({"n": v.config["n"] + 1}, expected_version=v.version)
                    break
                except VersionConflict:
                    continue

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get_config()["n"] == 1_600
    assert c.get_version() == 1_600


# -- schema --------------------------------------------------------------------------------


class Settings(pydantic.BaseModel):
    log_level: str = "INFO"
    timeout: int = 30
    ratio: float = 0.5


def test_pydantic_schema_validates_before_commit() -> None:
    c = ConfigManager(initial_config={"timeout": "45"}, schema=Settings)
    assert c.get_config() == {"log_level": "INFO", "timeout": 45, "ratio": 0.5}
    c.update_config({"timeout": "60"})
    assert c.get_config()["timeout"] == 60
    with pytest.raises(ValidationError, match="timeout"):
        c.update_config({"timeout": "soon"})
    assert c.get_config()["timeout"] == 60 and c.get_version() == 1
    assert c.get_model() == Settings(timeout=60)
    with pytest.raises(ValidationError):
        ConfigManager(initial_config={"timeout": []}, schema=Settings)


def test_callable_schema() -> None:
    def check(cfg: dict[str, Any]) -> None:
        if cfg.get("workers", 1) < 1:
            raise ValueError("workers must be >= 1")

    c = ConfigManager(initial_config={"workers": 2}, schema=check)
    with pytest.raises(ValidationError, match="workers must be"):
        c.update_config({"workers": 0})
    with pytest.raises(TypeError, match="no pydantic schema"):
        c.get_model()


# -- path operations --------------------------------------------------------------------------


def test_set_remove_replace_and_get() -> None:
    c = ConfigManager(initial_config={"features": {"auth": True}, "a": 1})
    c.set("/features/metrics", True)
    assert c.get("features/metrics") is True
    assert c.get("features/nope", "dflt") == "dflt"
    with pytest.raises(PathError):
        c.set("missing/deep", 1)
    with pytest.raises(PathError):
        c.set("a/b", 1)
    with pytest.raises(PathError):
        c.remove("zzz")
    assert c.remove("a").removed == ("a",)
    assert "a" not in c.get_config()
    assert c.replace_config({"only": True}).config == {"only": True}
    assert c.get_history()[-1].removed == ("features",)


# -- diff -------------------------------------------------------------------------------------


def test_diff_by_path_and_as_json_patch() -> None:
    c = ConfigManager(initial_config={"log": "INFO", "features": {"a": True, "b": False}, "x": 1})
    c.update_config({"log": "DEBUG", "features": {"a": True, "b": True, "c/d": 1}})
    c.remove("x")
    assert c.diff(0) == [
        ConfigChange("replace", "/features/b", False, True),
        ConfigChange("add", "/features/c~1d", None, 1),
        ConfigChange("replace", "/log", "INFO", "DEBUG"),
        ConfigChange("remove", "/x", 1, None),
    ]
    patch = c.diff_patch(0, 2)
    assert {"op": "remove", "path": "/x"} in patch
    assert {"op": "replace", "path": "/log", "value": "DEBUG"} in patch
    assert {"op": "add", "path": "/features/c~1d", "value": 1} in patch
    assert c.diff(1, 1) == []


def test_diff_patch_applies_to_reproduce_target() -> None:
    def apply(doc: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
        import copy

        doc = copy.deepcopy(doc)
        for op in patch:
            keys = [k.replace("~1", "/").replace("~0", "~") for k in op["path"][1:].split("/")]
            parent = doc
            for k in keys[:-1]:
                parent = parent[k]
            if op["op"] == "remove":
                del parent[keys[-1]]
            else:
                parent[keys[-1]] = op["value"]
        return doc

    rng = random.Random(7)
    c = ConfigManager(initial_config={"a": {"b": {"c": 1}}, "l": [1]})
    for _ in range(50):
        key = rng.choice(["a", "l", "m", "n"])
        if rng.random() < 0.2 and key in c.get_config():
            c.remove(key)
        else:
            c.update_config(
                {key: rng.choice([1, "s", [1, 2], {"b": {"c": rng.randint(0, 3)}}, None])}
            )
    for a in range(0, c.get_version(), 7):
        b = min(a + 11, c.get_version())
        got = apply(sk.thaw(c.get_entry(a).config), c.diff_patch(a, b, reveal=True))
        assert got == sk.thaw(c.get_entry(b).config)


def test_versioned_config_diff() -> None:
    v1 = VersionedConfig(version=1, config={"db": "a", "cache": True})
    v2 = VersionedConfig(version=2, config={"db": "b", "cache": True, "replicas": 3})
    assert [c.path for c in v1.diff(v2)] == ["/db", "/replicas"]


# -- rollback / reset ------------------------------------------------------------------------


def test_rollback_appends_a_version() -> None:
    c = ConfigManager(initial_config={"level": "INFO", "n": 1})
    c.update_config({"level": "DEBUG"})
    c.update_config({"n": 2})
    v = c.rollback(1, author="ana", reason="bad n")
    assert v.version == 3
    assert v.config == {"level": "DEBUG", "n": 1}
    assert v.metadata["rollback_to"] == 1 and v.author == "ana" and v.reason == "bad n"
    # History is never rewritten.
    assert [h.config["n"] for h in c.get_history()] == [1, 1, 2, 1]
    assert c.rollback(3).version == 3  # already there: no new version
    with pytest.raises(KeyError, match="no version 9"):
        c.rollback(9)


def test_reset_goes_back_to_initial() -> None:
    c = ConfigManager(initial_config={"timeout": 30})
    c.update_config({"timeout": 60, "extra": True})
    v = c.reset(author="ops")
    assert v.config == {"timeout": 30}
    assert v.version == 2
    assert v.removed == ("extra",)
    assert v.reason == "reset to the initial configuration"


# -- listeners -----------------------------------------------------------------------------


def test_listeners_filtered_by_path_after_commit() -> None:
    c = ConfigManager(initial_config={"log": "INFO", "features": {"a": 1}, "t": 1})
    root: list[int] = []
    features: list[int] = []
    a_only: list[int] = []

    def on_features(v: VersionedConfig) -> None:
        assert c.get_version() == v.version  # already committed
        features.append(v.version)

    c.subscribe(lambda v: root.append(v.version))
    c.subscribe(on_features, path="features")
    c.subscribe(lambda v: a_only.append(v.version), path="/features/a")
    c.update_config({"t": 2})  # v1
    c.set("features/b", 2)  # v2
    c.update_config({"features": {"a": 5, "b": 2}})  # v3
    c.update_config({"features": {"a": 5, "b": 2}})  # no-op
    c.remove("features")  # v4
    assert root == [1, 2, 3, 4]
    assert features == [2, 3, 4]
    assert a_only == [3, 4]


def test_listener_errors_and_reentrant_updates(errors: Any) -> None:
    c = ConfigManager(initial_config={"n": 0})
    seen: list[int] = []

    def bad(v: VersionedConfig) -> None:
        raise RuntimeError("listener boom")

    def chain(v: VersionedConfig) -> None:
        seen.append(v.config["n"])
        if v.config["n"] < 3:
            c.update_config({"n": v.config["n"] + 1})  # outside the lock: no deadlock

    c.subscribe(bad)
    c.subscribe(chain)
    c.update_config({"n": 1})
    assert seen == [1, 2, 3]
    assert len(errors) == 3 and "config" in errors[0][1]


def test_unsubscribe() -> None:
    c = ConfigManager(initial_config={"n": 0})
    seen: list[int] = []
    off = c.subscribe(lambda v: seen.append(v.version))
    c.update_config({"n": 1})
    off()
    c.update_config({"n": 2})
    assert seen == [1]


# -- secrets ----------------------------------------------------------------------------------


def test_secrets_masked_in_history_and_diffs() -> None:
    c = ConfigManager(
        initial_config={
            "db_password": "hunter2",
            "database_url": "postgresql://app:s3cret@db/main",
            "nested": {"API_KEY": "k1", "name": "svc"},
            "plain": 1,
        }
    )
    c.update_config({"db_password": "hunter3", "nested": {"API_KEY": "k2", "name": "svc"}})
    h = c.get_history()
    assert h[0].config["db_password"] == MASK
    assert h[0].config["database_url"] == "postgresql://app:********@db/main"
    assert h[1].changes["nested"]["API_KEY"] == MASK
    assert h[0].config["plain"] == 1
    text = repr(h) + repr(c.diff(0)) + repr(c.diff_patch(0))
    for secret in ("hunter2", "hunter3", "s3cret", "k1", "k2"):
        assert secret not in text
    revealed = {ch.path: ch.new for ch in c.diff(0, reveal=True)}
    assert revealed == {"/db_password": "hunter3", "/nested/API_KEY": "k2"}
    assert c.get_history(reveal=True)[0].config["db_password"] == "hunter2"
    assert c.get_config()["db_password"] == "hunter3"  # the app still gets real values


def test_masked_values_written_back_keep_real_secrets() -> None:
    # The seed's rollback recipe: update_config(history[n].config).
    c = ConfigManager(initial_config={"api_token": "real", "level": "INFO"})
    c.update_config({"level": "DEBUG"})
    old = c.get_history()[0].config
    assert old["api_token"] == MASK
    c.update_config(old)
    assert c.get_config() == {"api_token": "real", "level": "INFO"}
    with pytest.raises(ValidationError, match="masked secret"):
        c.update_config({"new_password": Masked("********")})


def test_custom_secret_patterns() -> None:
    c = ConfigManager(initial_config={"dsn": "x", "token": "t"}, secrets=["dsn"])
    assert c.get_history()[0].config == {"dsn": MASK, "token": "t"}
    c2 = ConfigManager(initial_config={"a": {"b": 1}}, secrets=["/a/b"])
    assert c2.get_history()[0].config == {"a": {"b": MASK}}


# -- VersionedConfig ----------------------------------------------------------------------------


def test_versioned_config_seed_usage() -> None:
    config = VersionedConfig(
        version=1,
        config={"database_url": "postgresql://localhost/mydb", "cache_enabled": True},
        metadata={"author": "admin", "reason": "Initial configuration"},
    )
    config_v2 = VersionedConfig(
        version=2,
        config={
            "database_url": "postgresql://prod-db/mydb",
            "cache_enabled": True,
            "read_replicas": 3,
        },
        metadata={"author": "admin", "reason": "Production migration"},
    )
    assert (config.version, config_v2.version) == (1, 2)
    assert config_v2.metadata["reason"] == "Production migration"
    assert config_v2.author == "admin"
    with pytest.raises(ReadOnlyError):
        config.config["x"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.version = 5  # type: ignore[misc]
    assert VersionedConfig.from_dict(config_v2.to_dict()) == config_v2
    with pytest.raises(TypeError):
        VersionedConfig(version="1", config={})  # type: ignore[arg-type]


# -- durability ------------------------------------------------------------------------------


def test_durable_reopen_equals(tmp_path: Path) -> None:
    path = tmp_path / "cfg.journal"
    with ConfigManager(initial_config={"a": 1, "t": (1, 2)}, path=path, author="me") as c:
        c.update_config({"a": 2}, reason="r1")
        c.set("nested", {"x": [1, 2]})
        c.remove("t")
        c.rollback(1)
        assert c.update_config({"nested": {"x": (1, 2)}}).version == c.get_version()
        history = c.get_history(reveal=True)
    with ConfigManager(initial_config={"ignored": True}, path=path) as again:
        assert again.get_history(reveal=True) == history
        assert again.get_config() == history[-1].config
        assert again.reset().config == {"a": 1, "t": [1, 2]}
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_durable_refuses_non_json(tmp_path: Path) -> None:
    with ConfigManager(initial_config={}, path=tmp_path / "j") as c:
        with pytest.raises(ValidationError, match="JSON"):
            c.update_config({"obj": object()})
        with pytest.raises(ValidationError, match="JSON"):
            c.update_config({"nan": float("nan")})
        assert c.get_version() == 0


def test_journal_is_locked_while_open(tmp_path: Path) -> None:
    path = tmp_path / "j"
    c = ConfigManager(initial_config={}, path=path)
    with pytest.raises(StatekitError, match="in use"):
        ConfigManager(initial_config={}, path=path)
    c.close()
    ConfigManager(initial_config={}, path=path).close()


@pytest.mark.parametrize(
    "tail",
    [
        b"0000",  # a few bytes of the next record
        b'deadbeef {"kind":"delta"',  # no newline
        b"00000000 {}\n",  # bad checksum, complete line
        b"\x00" * 64,  # zero-filled blocks after a power cut
        b"\x00" * 10 + b"\n" + b"garbage\n",  # several bad lines, none good after
    ],
)
def test_torn_last_record_is_dropped(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "j"
    with ConfigManager(initial_config={"n": 0}, path=path) as c:
        c.update_config({"n": 1})
    good = path.read_bytes()
    path.write_bytes(good + tail)
    with ConfigManager(path=path) as c:
        assert c.get_version() == 1 and c.get_config() == {"n": 1}
        c.update_config({"n": 2})  # appends on a clean line
    records, end = read_records(path.read_bytes())
    assert end == path.stat().st_size
    assert [r["version"] for r in records] == [0, 1, 2]


def test_damage_before_good_records_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with ConfigManager(initial_config={"n": 0}, path=path) as c:
        for n in range(1, 4):
            c.update_config({"n": n})
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"n":1', b'"n":7')  # checksum no longer matches
    path.write_bytes(b"".join(lines))
    with pytest.raises(StatekitError, match="damaged record"):
        ConfigManager(path=path)


def test_out_of_sequence_record_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with ConfigManager(initial_config={"n": 0}, path=path) as c:
        c.update_config({"n": 1})
    bad = encode({"kind": "delta", "version": 5, "set": {}, "remove": [], "metadata": {}})
    good = encode({"kind": "delta", "version": 2, "set": {"n": 2}, "remove": [], "metadata": {}})
    path.write_bytes(path.read_bytes() + bad + good)
    with pytest.raises(StatekitError, match="damaged"):
        ConfigManager(path=path)


def test_compaction_is_atomic_and_keeps_versions(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with ConfigManager(initial_config={"n": 0}, path=path) as c:
        for n in range(1, 30):
            c.update_config({"n": n})
        c.compact(keep=5)
        assert [h.version for h in c.get_history()] == [25, 26, 27, 28, 29]
        c.update_config({"n": 30})
        with pytest.raises(KeyError):
            c.get_entry(3)
    assert not (tmp_path / "j.tmp").exists()
    with ConfigManager(path=path) as c:
        assert [h.version for h in c.get_history()] == [25, 26, 27, 28, 29, 30]
        assert c.reset().config == {"n": 0}
        assert c.diff(25, 30) == [ConfigChange("replace", "/n", 25, 30)]


CHILD = textwrap.dedent(
    """
    import sys
    from statekit.config import ConfigManager

    path = sys.argv[1]
    c = ConfigManager(initial_config={"counter": 0, "blob": ""}, path=path)
    print("ready", c.get_version(), flush=True)
    n = c.get_version()
    while True:
        n += 1
        v = c.update_config(
            {"counter": n, "blob": "x" * (n % 97)}, author="child", reason=f"commit {n}"
        )
        print(v.version, flush=True)  # acknowledged: update_config returned
    """
)


def test_sigkill_never_loses_an_acknowledged_version(tmp_path: Path) -> None:
    path = tmp_path / "cfg.journal"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(20240611)
    acknowledged: set[int] = set()
    deadline = time.monotonic() + 45
    kills = 0
    while kills < 24 and time.monotonic() < deadline:
        child = subprocess.Popen(
            [sys.executable, str(script), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None
        ready = child.stdout.readline().split()
        assert ready and ready[0] == b"ready", child.stderr.read() if child.stderr else ready
        time.sleep(rng.uniform(0.0, 0.06))
        child.send_signal(signal.SIGKILL)
        out, _err = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        kills += 1
        for line in out.split(b"\n"):
            if line.strip().isdigit():
                acknowledged.add(int(line))
        # Reopen: every acknowledged version is there, with its content.
        data = path.read_bytes()
        with ConfigManager(path=path) as c:
            history = c.get_history(reveal=True)
            assert [h.version for h in history] == list(range(len(history)))
            assert acknowledged <= {h.version for h in history}
            for h in history[1:]:
                assert h.config["counter"] == h.version
                assert h.config["blob"] == "x" * (h.version % 97)
                assert h.author == "child" and h.reason == f"commit {h.version}"
        # Checksums verify over the whole file (recovery cut any torn tail).
        records, end = read_records(path.read_bytes())
        assert end == path.stat().st_size
        assert len(records) == len(history)
        assert len(data) >= end
    assert kills >= 20
    assert len(acknowledged) > 20
