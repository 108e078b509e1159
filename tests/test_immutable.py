"""ImmutableState and StateRef: immutability, sharing, equality, round trips, atomicity."""

from __future__ import annotations

import copy
import json
import pickle
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from immutables import Map

from statekit.exceptions import ReadOnlyError
from statekit.immutable import MISSING, Change, ImmutableState, StateRef

# -- basics -----------------------------------------------------------------------


def test_fields_read_as_attributes_and_keys() -> None:
    s = ImmutableState(user_id="user_123", status="active", count=0)
    assert s.user_id == "user_123"
    assert s["count"] == 0
    assert s.get("missing", 5) == 5
    assert "status" in s and "nope" not in s
    assert len(s) == 3
    assert list(s) == ["count", "status", "user_id"]  # sorted: stable across runs


def test_missing_field_is_attribute_error_naming_fields() -> None:
    s = ImmutableState(a=1)
    with pytest.raises(AttributeError, match=r"no field 'b'.*fields: a"):
        _ = s.b


def test_update_returns_new_state_and_leaves_old() -> None:
    s = ImmutableState(count=0, status="active")
    n = s.update(count=1, status="processing")
    assert (s.count, s.status) == (0, "active")
    assert (n.count, n.status) == (1, "processing")
    assert type(n) is ImmutableState


def test_update_can_add_fields() -> None:
    s = ImmutableState(status="pending")
    assert s.update(status="failed", error="boom").error == "boom"


def test_noop_update_returns_same_object() -> None:
    s = ImmutableState(a=1, b=[1, 2], c={"x": 1})
    assert s.update() is s
    assert s.update(a=1) is s
    assert s.update(b=[1, 2], c={"x": 1}) is s  # equal after freezing


def test_update_of_several_fields_with_some_unchanged() -> None:
    # The first field of an update takes a separate fast path from the rest:
    # every position must freeze, compare and apply the same way.
    s = ImmutableState(a=1, b=[1], c=2)
    for changes in ({"a": 1, "b": [1], "c": 3}, {"c": 3, "a": 1, "b": (1,)}, {"b": [1], "c": 3}):
        n = s.update(**changes)
        assert n.to_dict() == {"a": 1, "b": [1], "c": 3}
    n = s.update(c=2, d={"x": [1]})
    assert n.to_dict()["d"] == {"x": [1]} and s.to_dict() == {"a": 1, "b": [1], "c": 2}
    assert s.update(a=1, c=2.0) is not s  # 2.0 is not 2: a type change is a change
    assert s.update(c=2, b=(1,), a=1) is s


def test_type_changes_are_changes() -> None:
    s = ImmutableState(flag=1)
    assert s.update(flag=True) is not s
    assert s.update(flag=True).flag is True
    assert s.update(flag=1.0).flag == 1.0 and type(s.update(flag=1.0).flag) is float


def test_cannot_set_or_delete_attributes() -> None:
    s = ImmutableState(a=1)
    with pytest.raises(ReadOnlyError, match=r"update\(a=...\)"):
        s.a = 2  # type: ignore[misc]
    with pytest.raises(ReadOnlyError):
        s.new = 2
    with pytest.raises(ReadOnlyError):
        del s.a
    assert s.a == 1


def test_deep_freezing() -> None:
    raw: dict[str, Any] = {"tags": ["a", "b"], "cfg": {"nested": {"xs": [1, {"y": 2}]}}, "s": {1}}
    s = ImmutableState(raw)
    assert s.tags == ("a", "b")
    assert isinstance(s.cfg, Map)
    assert s.cfg["nested"]["xs"] == (1, Map({"y": 2}))
    assert s.s == frozenset({1})
    raw["tags"].append("c")
    raw["cfg"]["nested"]["xs"].append(3)
    assert s.tags == ("a", "b")
    assert s.cfg["nested"]["xs"] == (1, Map({"y": 2}))
    with pytest.raises(TypeError):
        s.cfg["nested"]["new"] = 1  # type: ignore[index]


def test_positional_mapping_and_keywords_combine() -> None:
    s = ImmutableState({"a": 1, "b": 2}, b=3)
    assert s.to_dict() == {"a": 1, "b": 3}


def test_non_str_field_names_refused() -> None:
    with pytest.raises(TypeError, match="field names must be str"):
        ImmutableState({1: "x"})  # type: ignore[dict-item]


def test_mapping_protocol() -> None:
    from collections.abc import Mapping

    s = ImmutableState(b=2, a=1)
    assert isinstance(s, Mapping)
    assert dict(s) == {"a": 1, "b": 2}
    assert {**s} == {"a": 1, "b": 2}
    assert list(s.keys()) == ["a", "b"]
    assert list(s.values()) == [1, 2]
    assert list(s.items()) == [("a", 1), ("b", 2)]
    # A field named like a method is reachable by key.
    assert ImmutableState(items=3)["items"] == 3


def test_remove() -> None:
    s = ImmutableState(a=1, b=2)
    assert s.remove("b") == ImmutableState(a=1)
    assert s.remove("zzz") is s


# -- equality, hashing, copying ---------------------------------------------------


def test_equality_and_hash_by_content() -> None:
    a = ImmutableState(x=1, tags=["t"], cfg={"k": "v"})
    b = ImmutableState(cfg={"k": "v"}, tags=("t",), x=1)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != a.update(x=2)
    assert a != {"x": 1, "tags": ("t",), "cfg": {"k": "v"}}


def test_subclasses_do_not_equal_base() -> None:
    class Other(ImmutableState):
        pass

    assert Other(a=1) != ImmutableState(a=1)
    assert Other(a=1) == Other(a=1)


def test_copy_returns_self() -> None:
    s = ImmutableState(a=[1])
    assert copy.copy(s) is s
    assert copy.deepcopy(s) is s


def test_pickle_round_trip() -> None:
    s = ImmutableState(a=1, b=[1, {"c": 2}], d={"e": (1, 2)})
    t = pickle.loads(pickle.dumps(s))
    assert t == s and hash(t) == hash(s)
    assert type(t) is ImmutableState


def test_field_names_are_interned_on_every_way_in() -> None:
    # Run-time keys equal the literal names but are other objects; interning
    # lets every later lookup match by identity (a speed property, checked
    # here because nothing else would notice it going away).
    def name(text: str) -> str:
        made = "".join(text)  # a fresh, non-interned str
        assert made is not sys.intern(text) or len(text) <= 1
        return made

    states = [
        ImmutableState(**{name("alpha"): 1}),
        ImmutableState({name("alpha"): 1}),
        ImmutableState(beta=0).update(**{name("alpha"): 1}),
        ImmutableState(beta=0).update(beta=1, **{name("alpha"): 1}),
        ImmutableState(beta=0).apply({name("alpha"): (MISSING, 1)}),
        ImmutableState.from_json('{"alpha": 1}'),
        pickle.loads(pickle.dumps(ImmutableState(**{name("alpha"): 1}))),
    ]
    for state in states:
        key = next(k for k in state.keys() if k == "alpha")
        assert key is sys.intern("alpha"), state
        assert state.alpha == 1


def test_json_round_trip() -> None:
    s = ImmutableState(b=1, a=[2, {"z": None, "y": True}], c={"n": 1.5})
    text = s.to_json()
    assert json.loads(text) == {"a": [2, {"y": True, "z": None}], "b": 1, "c": {"n": 1.5}}
    assert ImmutableState.from_json(text) == s
    assert ImmutableState.from_dict(s.to_dict()) == s


def test_from_json_needs_an_object() -> None:
    with pytest.raises(TypeError, match="JSON object"):
        ImmutableState.from_json("[1]")


def test_to_dict_is_a_mutable_deep_copy() -> None:
    s = ImmutableState(cfg={"xs": [1]})
    d = s.to_dict()
    d["cfg"]["xs"].append(2)
    assert s.cfg["xs"] == (1,)


def test_repr_is_sorted_and_readable() -> None:
    assert repr(ImmutableState(b=1, a="x")) == "ImmutableState(a='x', b=1)"


# -- declared fields ----------------------------------------------------------------


class Point(ImmutableState):
    x: int
    y: int = 0


def test_declared_fields_defaults_and_checks() -> None:
    p = Point(x=1)
    assert (p.x, p.y) == (1, 0)
    assert p.update(y=5).y == 5
    assert isinstance(p.update(y=5), Point)
    with pytest.raises(TypeError, match="missing field"):
        Point()
    with pytest.raises(TypeError, match="no field"):
        Point(x=1, z=2)
    with pytest.raises(TypeError, match="no field"):
        p.update(z=1)
    with pytest.raises(TypeError, match="declares its fields"):
        p.remove("y")


def test_declared_default_does_not_shadow_instance_value() -> None:
    assert Point(x=1, y=7).y == 7
    assert "y" not in vars(Point)


# -- structural sharing -------------------------------------------------------------


def test_update_shares_structure() -> None:
    big = ImmutableState({f"k{i}": i for i in range(10_000)})
    n = big.update(k5=-1)
    assert n.k5 == -1 and big.k5 == 5
    # Unchanged values are the very same objects (nothing was copied).
    assert n.fields["k9999"] is big.fields["k9999"]


# -- diff / apply -----------------------------------------------------------------------


def test_diff_and_apply() -> None:
    a = ImmutableState(x=1, y=2, gone=True)
    b = ImmutableState(x=1, y=3, new="n")
    d = a.diff(b)
    assert d == {
        "gone": Change(True, MISSING),
        "new": Change(MISSING, "n"),
        "y": Change(2, 3),
    }
    assert a.apply(d) == b
    assert a.diff(a) == {}
    assert a.apply({}) is a


def test_missing_is_a_singleton_that_pickles() -> None:
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert repr(MISSING) == "MISSING" and not MISSING


# -- Hypothesis properties ----------------------------------------------------------------

keys = st.sampled_from([f"k{i}" for i in range(12)])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
states = st.dictionaries(keys, values, max_size=8)
updates = st.lists(st.dictionaries(keys, values, max_size=4), max_size=10)


@settings(max_examples=200, deadline=None)
@given(initial=states, steps=updates)
def test_updates_never_mutate_earlier_states(initial: dict[str, Any], steps: list[Any]) -> None:
    history = [ImmutableState(initial)]
    snapshots = [history[0].to_dict()]
    for change in steps:
        history.append(history[-1].update(**change))
        snapshots.append(history[-1].to_dict())
    for state, snapshot in zip(history, snapshots, strict=True):
        assert state.to_dict() == snapshot
    # Each state equals a fresh state built from its plain data.
    for state in history:
        assert ImmutableState(state.to_dict()) == state


@settings(max_examples=200, deadline=None)
@given(a=states, b=states)
def test_diff_then_apply_reproduces_target(a: dict[str, Any], b: dict[str, Any]) -> None:
    sa, sb = ImmutableState(a), ImmutableState(b)
    assert sa.apply(sa.diff(sb)) == sb
    assert sb.apply(sb.diff(sa)) == sa


@settings(max_examples=100, deadline=None)
@given(data=states)
def test_round_trips(data: dict[str, Any]) -> None:
    s = ImmutableState(data)
    assert pickle.loads(pickle.dumps(s)) == s
    assert ImmutableState.from_json(s.to_json()) == s


# -- StateRef ---------------------------------------------------------------------------


def test_ref_swap_and_cas() -> None:
    ref = StateRef(ImmutableState(count=0))
    assert ref.swap(lambda s: s.update(count=s.count + 1)).count == 1
    old = ref.value
    assert ref.compare_and_set(old, old.update(count=9))
    assert not ref.compare_and_set(old, old.update(count=10))
    assert ref.get().count == 9
    assert ref.set(ImmutableState(count=0)).count == 0


def test_ref_threads_lose_nothing() -> None:
    ref = StateRef(ImmutableState(count=0))

    def work() -> None:
        for _ in range(2_000):
            ref.swap(lambda s: s.update(count=s.count + 1))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ref.value.count == 16_000


def test_ref_cas_loop_from_threads() -> None:
    ref = StateRef(0)

    def work() -> None:
        for _ in range(1_000):
            while True:
                cur = ref.value
                if ref.compare_and_set(cur, cur + 1):
                    break

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ref.value == 4_000


def test_ref_subscribers_run_outside_lock_in_order() -> None:
    ref = StateRef(0)
    seen: list[tuple[int, int]] = []

    def listener(old: int, new: int) -> None:
        # Outside the lock: the listener may itself swap without deadlock.
        assert not ref._lock.locked()
        seen.append((old, new))
        if new < 3:
            ref.swap(lambda n: n + 1)

    ref.subscribe(listener)
    ref.swap(lambda n: n + 1)
    assert seen == [(0, 1), (1, 2), (2, 3)]


def test_ref_subscriber_pairs_chain_under_threads() -> None:
    ref = StateRef(0)
    seen: list[tuple[int, int]] = []
    ref.subscribe(lambda old, new: seen.append((old, new)))

    def work() -> None:
        for _ in range(500):
            ref.swap(lambda n: n + 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [(i, i + 1) for i in range(2_000)]


def test_ref_noop_swap_notifies_nobody() -> None:
    s = ImmutableState(a=1)
    ref = StateRef(s)
    calls: list[object] = []
    ref.subscribe(lambda o, n: calls.append(n))
    ref.swap(lambda st: st.update(a=1))
    assert calls == []


def test_ref_raising_subscriber_does_not_stop_others() -> None:
    import statekit as sk

    errors: list[BaseException] = []
    old_hook = sk.set_error_hook(lambda exc, where: errors.append(exc))
    try:
        ref = StateRef(0)
        seen: list[int] = []

        def bad(o: int, n: int) -> None:
            raise RuntimeError("boom")

        ref.subscribe(bad)
        ref.subscribe(lambda o, n: seen.append(n))
        assert ref.set(1) == 1
        assert seen == [1]
        assert [str(e) for e in errors] == ["boom"]
    finally:
        sk.set_error_hook(old_hook)


def test_ref_unsubscribe() -> None:
    ref = StateRef(0)
    seen: list[int] = []
    off = ref.subscribe(lambda o, n: seen.append(n))
    ref.set(1)
    off()
    off()  # twice is harmless
    ref.set(2)
    assert seen == [1]


def test_import_statekit_loads_no_third_party() -> None:
    import subprocess
    import sys

    code = (
        "import sys, statekit, statekit.machine, statekit.config;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('immutables', 'pydantic')];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
