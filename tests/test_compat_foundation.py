"""Every code example of seed 003 (provide.foundation state docs), imports changed only.

Each example is kept as the seed prints it; only the lines importing from
``provide.foundation`` are rewritten — to ``statekit.compat.foundation``, or,
for the foundation's own ``logger``/``get_hub``, to a stand-in module that
records calls. Names an example uses without defining (``process_request``,
``execute_transaction``) are supplied, as a reader would.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

import statekit as sk

IMPORT_MAP = {
    "from provide.foundation.state import": "from statekit.compat.foundation import",
    "from provide.foundation import": "from _seed003_standins import",
}


class StandInLogger:
    """Records ``logger.info(event, **fields)`` calls like the foundation's logger."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.records.append(("info", event, fields))


@pytest.fixture
def standins() -> Iterator[types.ModuleType]:
    module = types.ModuleType("_seed003_standins")
    module.logger = StandInLogger()  # type: ignore[attr-defined]
    module.get_hub = object  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def run(source: str, **names: Any) -> dict[str, Any]:
    """Rewrite the import lines only, then run the example; return its namespace."""
    lines = []
    for line in textwrap.dedent(source).strip("\n").splitlines():
        for old, new in IMPORT_MAP.items():
            if line.lstrip().startswith(old):
                line = line.replace(old, new)
        lines.append(line)
    namespace: dict[str, Any] = {"__name__": "seed_example", **names}
    exec(compile("\n".join(lines), "<seed 003 example>", "exec"), namespace)
    return namespace


def test_example_immutable_state(capsys: pytest.CaptureFixture[str]) -> None:
    run(
        """
        from provide.foundation.state import ImmutableState
        # Create initial state
        state = ImmutableState(
            user_id="user_123",
            status="active",
            count=0
        )
        # Read values
        print(state.user_id) # "user_123"
        print(state.count) # 0
        # Create new state with updates (original unchanged)
        new_state = state.update(count=1, status="processing")
        print(state.count) # 0 (unchanged)
        print(new_state.count) # 1 (new state)
        """
    )
    assert capsys.readouterr().out.split() == ["user_123", "0", "0", "1"]


def test_example_request_context() -> None:
    seen: list[Any] = []
    ns = run(
        """
        from provide.foundation.state import ImmutableState
        def handle_request(request_id: str):
            # Create immutable request context
            context = ImmutableState(
                request_id=request_id,
                user_id=None,
                authenticated=False
            )
            # Authenticate user (creates new state)
            context = context.update(
                user_id="user_123",
                authenticated=True
            )
            # Process with guaranteed immutability
            process_request(context)
        """,
        process_request=seen.append,
    )
    ns["handle_request"]("req-1")
    (context,) = seen
    assert (context.request_id, context.user_id, context.authenticated) == (
        "req-1",
        "user_123",
        True,
    )
    with pytest.raises(TypeError):
        context.user_id = "someone else"


def test_example_transaction_state() -> None:
    class Result:
        amount = 42
        timestamp = 1_700_000_000.0

    outcomes: list[Any] = [Result()]

    def execute_transaction() -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    ns = run(
        """
        from provide.foundation.state import ImmutableState
        def process_transaction(transaction_id: str):
            state = ImmutableState(
                transaction_id=transaction_id,
                status="pending",
                amount=0,
                timestamp=None
            )
            try:
                state = state.update(status="processing")
                result = execute_transaction()
                state = state.update(
                    status="completed",
                    amount=result.amount,
                    timestamp=result.timestamp
                )
                return state
            except Exception as e:
                state = state.update(status="failed", error=str(e))
                raise
        """,
        execute_transaction=execute_transaction,
    )
    done = ns["process_transaction"]("tx-1")
    assert (done.status, done.amount, done.timestamp) == ("completed", 42, 1_700_000_000.0)
    outcomes.append(RuntimeError("card declined"))
    with pytest.raises(RuntimeError, match="card declined"):
        ns["process_transaction"]("tx-2")


def test_example_state_machine(capsys: pytest.CaptureFixture[str]) -> None:
    ns = run(
        """
        from provide.foundation.state import StateMachine
        # Define states and allowed transitions
        machine = StateMachine(
            initial_state="draft",
            transitions={
                "draft": ["review", "archived"],
                "review": ["approved", "rejected", "draft"],
                "approved": ["published", "archived"],
                "rejected": ["draft", "archived"],
                "published": ["archived"],
                "archived": [] # Terminal state
            }
        )
        # Check current state
        print(machine.current_state) # "draft"
        # Transition to new state
        machine.transition("review")
        print(machine.current_state) # "review"
        # Invalid transitions raise errors
        try:
            machine.transition("published") # Not allowed from "review"
        except ValueError as e:
            print(f"Invalid transition: {e}")
        # Check if transition is valid
        if machine.can_transition("approved"):
            machine.transition("approved")
        """
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "draft"
    assert out[1] == "review"
    assert out[2].startswith("Invalid transition: ")
    assert "'review'" in out[2] and "'published'" in out[2] and "'approved'" in out[2]
    assert ns["machine"].current_state == "approved"


def test_example_document_workflow(standins: types.ModuleType) -> None:
    ns = run(
        """
        from provide.foundation.state import StateMachine
        from provide.foundation import logger
        class Document:
            def __init__(self, doc_id: str):
                self.doc_id = doc_id
                self.machine = StateMachine(
                    initial_state="draft",
                    transitions={
                        "draft": ["submitted"],
                        "submitted": ["reviewing"],
                        "reviewing": ["approved", "rejected"],
                        "approved": ["published"],
                        "rejected": ["draft"],
                        "published": []
                    }
                )
            def submit(self):
                \"\"\"Submit document for review.\"\"\"
                if self.machine.can_transition("submitted"):
                    self.machine.transition("submitted")
                    logger.info("document_submitted", doc_id=self.doc_id)
                else:
                    raise ValueError("Cannot submit from current state")
            def review(self):
                \"\"\"Start review process.\"\"\"
                self.machine.transition("reviewing")
                logger.info("document_review_started", doc_id=self.doc_id)
            def approve(self):
                \"\"\"Approve document.\"\"\"
                self.machine.transition("approved")
                logger.info("document_approved", doc_id=self.doc_id)
            def publish(self):
                \"\"\"Publish approved document.\"\"\"
                self.machine.transition("published")
                logger.info("document_published", doc_id=self.doc_id)
        # Usage
        doc = Document("doc_001")
        doc.submit()
        doc.review()
        doc.approve()
        doc.publish()
        """
    )
    assert ns["doc"].machine.current_state == "published"
    assert [event for _, event, _ in standins.logger.records] == [
        "document_submitted",
        "document_review_started",
        "document_approved",
        "document_published",
    ]
    assert all(fields == {"doc_id": "doc_001"} for _, _, fields in standins.logger.records)
    with pytest.raises(ValueError, match="Cannot submit"):
        ns["doc"].submit()


def test_example_config_manager(capsys: pytest.CaptureFixture[str]) -> None:
    run(
        """
        from provide.foundation.state import ConfigManager
        # Create manager with initial config
        config = ConfigManager(initial_config={
            "log_level": "INFO",
            "timeout": 30,
            "enabled_features": ["auth", "api"]
        })
        # Update configuration
        config.update_config({
            "log_level": "DEBUG",
            "timeout": 60
        })
        # Get current config
        current = config.get_config()
        print(current["log_level"]) # "DEBUG"
        # Get config version
        version = config.get_version()
        print(f"Config version: {version}")
        # Get change history
        history = config.get_history()
        for change in history:
            print(f"Version {change.version}: {change.changes}")
        """
    )
    assert capsys.readouterr().out.splitlines() == [
        "DEBUG",
        "Config version: 1",
        "Version 0: {'log_level': 'INFO', 'timeout': 30, 'enabled_features': ['auth', 'api']}",
        "Version 1: {'log_level': 'DEBUG', 'timeout': 60}",
    ]


def test_example_runtime_configuration(standins: types.ModuleType) -> None:
    ns = run(
        """
        from provide.foundation.state import ConfigManager
        from provide.foundation import logger, get_hub
        class DynamicConfig:
            def __init__(self):
                self.manager = ConfigManager(initial_config={
                    "log_level": "INFO",
                    "max_connections": 100,
                    "cache_ttl": 300,
                    "features": {
                        "auth_enabled": True,
                        "metrics_enabled": False
                    }
                })
            def update_log_level(self, level: str):
                \"\"\"Update log level at runtime.\"\"\"
                self.manager.update_config({"log_level": level})
                # Apply to Foundation logger
                hub = get_hub()
                logger.info("log_level_changed", new_level=level)
            def enable_feature(self, feature: str):
                \"\"\"Enable a feature flag.\"\"\"
                config = self.manager.get_config()
                features = config["features"].copy()
                features[f"{feature}_enabled"] = True
                self.manager.update_config({"features": features})
                logger.info("feature_enabled", feature=feature)
            def rollback_to_version(self, version: int):
                \"\"\"Rollback to previous configuration version.\"\"\"
                history = self.manager.get_history()
                if version < len(history):
                    old_config = history[version].config
                    self.manager.update_config(old_config)
                    logger.info("config_rolled_back", version=version)
        # Usage
        config = DynamicConfig()
        config.update_log_level("DEBUG")
        config.enable_feature("metrics")
        """
    )
    config = ns["config"]
    manager = config.manager
    assert manager.get_config()["log_level"] == "DEBUG"
    assert manager.get_config()["features"] == {"auth_enabled": True, "metrics_enabled": True}
    assert manager.get_version() == 2
    # The example's rollback recipe: back to version 0's values, as a new version.
    config.rollback_to_version(0)
    assert manager.get_config() == manager.get_history()[0].config
    assert manager.get_version() == 3
    assert [event for _, event, _ in standins.logger.records] == [
        "log_level_changed",
        "feature_enabled",
        "config_rolled_back",
    ]
    config.rollback_to_version(99)  # out of range: the example does nothing
    assert manager.get_version() == 3


def test_example_versioned_config(capsys: pytest.CaptureFixture[str]) -> None:
    run(
        """
        from provide.foundation.state import VersionedConfig
        # Create versioned config
        config = VersionedConfig(
            version=1,
            config={
                "database_url": "postgresql://localhost/mydb",
                "cache_enabled": True
            },
            metadata={"author": "admin", "reason": "Initial configuration"}
        )
        # Create new version
        config_v2 = VersionedConfig(
            version=2,
            config={
                "database_url": "postgresql://prod-db/mydb",
                "cache_enabled": True,
                "read_replicas": 3
            },
            metadata={"author": "admin", "reason": "Production migration"}
        )
        # Compare versions
        print(f"Version {config.version} -> Version {config_v2.version}")
        print(f"Changes: {config_v2.metadata['reason']}")
        """
    )
    assert capsys.readouterr().out.splitlines() == [
        "Version 1 -> Version 2",
        "Changes: Production migration",
    ]


def test_example_best_practice_immutable_state() -> None:
    ns = run(
        """
        # ✅ Good: Thread-safe immutable state
        from provide.foundation.state import ImmutableState
        shared_state = ImmutableState(count=0)
        def increment():
            global shared_state
            shared_state = shared_state.update(count=shared_state.count + 1)
        # ❌ Bad: Mutable shared state
        shared_dict = {"count": 0}
        def increment_bad():
            shared_dict["count"] += 1 # Race condition!
        """
    )
    first = ns["shared_state"]
    ns["increment"]()
    ns["increment"]()
    assert ns["shared_state"].count == 2
    assert first.count == 0  # earlier states never change


def test_example_best_practice_state_machine() -> None:
    ns = run(
        """
        # ✅ Good: Explicit state machine
        from provide.foundation.state import StateMachine
        order = StateMachine(
            initial_state="pending",
            transitions={
                "pending": ["processing"],
                "processing": ["shipped", "cancelled"],
                "shipped": ["delivered"],
                "cancelled": [],
                "delivered": []
            }
        )
        # ❌ Bad: Manual state tracking
        order_status = "pending"
        if order_status == "pending":
            order_status = "shipped" # Skipped "processing"!
        """
    )
    order = ns["order"]
    with pytest.raises(ValueError, match="'pending' to 'shipped'"):
        order.transition("shipped")  # the machine refuses the skip the bad code made
    order.transition("processing")
    order.transition("shipped")
    order.transition("delivered")
    assert order.current_state == "delivered"


def test_example_best_practice_config_tracking() -> None:
    ns = run(
        """
        # ✅ Good: Version configuration changes
        from provide.foundation.state import ConfigManager
        config = ConfigManager(initial_config={"timeout": 30})
        config.update_config({"timeout": 60})
        history = config.get_history()
        # Can see who changed what and when
        # ❌ Bad: Direct updates without tracking
        global_config = {"timeout": 30}
        global_config["timeout"] = 60 # No audit trail
        """
    )
    history = ns["history"]
    assert [h.config["timeout"] for h in history] == [30, 60]
    assert all({"author", "reason", "timestamp"} <= set(h.metadata) for h in history)
    assert history[1].timestamp >= history[0].timestamp


def test_example_state_manager(capsys: pytest.CaptureFixture[str]) -> None:
    run(
        """
        from provide.foundation.state import StateManager
        # Create manager with initial state
        manager = StateManager(initial_state={
        "connection_count": 0,
        "status": "idle"
        })
        # Register state change observers
        def on_state_change(old_state, new_state):
            print(f"State changed: {old_state} -> {new_state}")
        manager.add_observer(on_state_change)
        # Update state
        manager.update_state({"connection_count": 1, "status": "active"})
        # Get current state
        current = manager.get_state()
        print(current["connection_count"]) # 1
        """
    )
    assert capsys.readouterr().out.splitlines() == [
        "State changed: {'connection_count': 0, 'status': 'idle'} -> "
        "{'connection_count': 1, 'status': 'active'}",
        "1",
    ]


def test_example_application_state(standins: types.ModuleType) -> None:
    names = run(
        """
        from provide.foundation.state import StateManager
        from provide.foundation import logger
        class ApplicationState:
            def __init__(self):
                self.manager = StateManager(initial_state={
                "initialized": False,
                "connections": 0,
                "errors": 0,
                "status": "starting"
                })
                # Log state changes
                self.manager.add_observer(self._log_state_change)
            def _log_state_change(self, old_state, new_state):
                \"\"\"Log all state changes.\"\"\"
                logger.info("app_state_changed", old=old_state, new=new_state)
            def mark_initialized(self):
                \"\"\"Mark application as initialized.\"\"\"
                self.manager.update_state({"initialized": True, "status": "ready"})
            def increment_connections(self):
                \"\"\"Increment connection count.\"\"\"
                current = self.manager.get_state()
                self.manager.update_state({
                "connections": current["connections"] + 1
                })
            def record_error(self):
                \"\"\"Record an error.\"\"\"
                current = self.manager.get_state()
                self.manager.update_state({
                "errors": current["errors"] + 1
                })
            def get_health(self) -> dict:
                \"\"\"Get application health status.\"\"\"
                state = self.manager.get_state()
                return {
                "status": state["status"],
                "initialized": state["initialized"],
                "connections": state["connections"],
                "errors": state["errors"]
                }
        """
    )
    app = names["ApplicationState"]()
    assert app.get_health() == {
        "status": "starting",
        "initialized": False,
        "connections": 0,
        "errors": 0,
    }
    app.mark_initialized()
    app.increment_connections()
    app.increment_connections()
    app.record_error()
    assert app.get_health() == {
        "status": "ready",
        "initialized": True,
        "connections": 2,
        "errors": 1,
    }
    records = standins.logger.records
    assert [event for _, event, _ in records] == ["app_state_changed"] * 4
    first = records[0][2]
    assert first["old"]["status"] == "starting" and first["new"]["status"] == "ready"
    assert [r[2]["new"]["connections"] for r in records] == [0, 1, 2, 2]
    assert records[-1][2]["old"]["errors"] == 0 and records[-1][2]["new"]["errors"] == 1


def test_state_manager_atomic_update_8_threads_x_2000_is_exact() -> None:
    from statekit.compat.foundation import StateManager

    manager = StateManager(initial_state={"count": 0})
    seen: list[int] = []
    manager.add_observer(lambda old, new: seen.append(new["count"] - old["count"]))
    scope = sk.current_scope()
    barrier = threading.Barrier(8)

    def work() -> None:
        with scope:
            barrier.wait()
            for _ in range(2_000):
                manager.update(lambda state: {"count": state["count"] + 1})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert manager.get_state()["count"] == 16_000  # foundation: 9,599
    assert seen == [1] * 16_000  # every observer call saw exactly one increment


def test_state_manager_observers_run_outside_the_lock_and_survive_errors() -> None:
    from statekit.compat.foundation import StateManager

    manager = StateManager(initial_state={"n": 0, "echo": 0})
    calls: list[str] = []
    scope = sk.current_scope()

    def writes_from_another_thread(old: Any, new: Any) -> None:
        if old["n"] == 0 and new["n"] == 1:
            # Would deadlock if observers ran under the lock.
            def other() -> None:
                with scope:
                    manager.update_state({"echo": 1})

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(timeout=5)
            calls.append("unblocked" if not thread.is_alive() else "blocked")

    def raises(old: Any, new: Any) -> None:
        raise RuntimeError("observer boom")

    errors: list[BaseException] = []
    old_hook = sk.set_error_hook(lambda exc, where: errors.append(exc))
    try:
        manager.add_observer(writes_from_another_thread)
        manager.add_observer(raises)
        manager.add_observer(lambda old, new: calls.append(f"last {new['n']}/{new['echo']}"))
        manager.update_state({"n": 1})
    finally:
        sk.set_error_hook(old_hook)
    assert calls == ["unblocked", "last 1/0", "last 1/1"]
    assert [str(e) for e in errors] == ["observer boom", "observer boom"]
    assert manager.get_state() == {"n": 1, "echo": 1}


def test_state_manager_extras() -> None:
    from statekit.compat.foundation import StateManager

    manager = StateManager(initial_state={"a": 1}, name="app-state")
    seen: list[Any] = []
    remove = manager.add_observer(lambda old, new: seen.append(dict(new)))
    manager.update_state({"a/b": 2, "~": 3})  # keys with pointer characters
    assert manager.get_state() == {"a": 1, "a/b": 2, "~": 3}
    with pytest.raises(sk.ReadOnlyError):
        manager.get_state()["a"] = 5
    with pytest.raises(TypeError, match="'app-state'"):
        manager.update_state([("a", 2)])  # type: ignore[arg-type]
    manager.update_state({"a": 1})  # no change: no observer call
    manager.reset()
    assert manager.get_state() == {"a": 1}
    assert manager.store.undo() and manager.get_state()["~"] == 3
    remove()
    manager.update_state({"a": 9})
    assert seen == [{"a": 1, "a/b": 2, "~": 3}, {"a": 1}, {"a": 1, "a/b": 2, "~": 3}]
    manager.remove_observer(print)  # unknown observer: no error


def test_facade_exports() -> None:
    import statekit.compat.foundation as foundation
    from statekit.config import ConfigManager, VersionedConfig
    from statekit.immutable import ImmutableState
    from statekit.machine import StateMachine

    assert foundation.__all__ == [
        "ConfigManager",
        "ImmutableState",
        "StateMachine",
        "StateManager",
        "VersionedConfig",
    ]
    assert foundation.ImmutableState is ImmutableState
    assert foundation.StateMachine is StateMachine
    assert foundation.ConfigManager is ConfigManager
    assert foundation.VersionedConfig is VersionedConfig
    assert isinstance(foundation.StateManager().store, sk.Store)
