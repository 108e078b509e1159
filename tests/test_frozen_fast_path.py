"""freeze's all-scalar shortcut (one copy, no call per item) against its general path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import statekit as sk
from statekit import FrozenDict, FrozenList, ReadOnlyError

scalars = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(), st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


def _all_frozen(value: Any) -> bool:
    if isinstance(value, list):
        return type(value) is FrozenList and all(_all_frozen(item) for item in value)
    if isinstance(value, dict):
        return type(value) is FrozenDict and all(_all_frozen(item) for item in value.values())
    return True


@given(values)
def test_every_nested_container_is_frozen_and_equal(value: Any) -> None:
    frozen = sk.freeze(value)
    assert frozen == value
    assert _all_frozen(frozen)


def test_flat_containers_are_copies_that_refuse_changes() -> None:
    source_list, source_dict = [1, "a", None], {"a": 1, "b": 2.5}
    frozen_list, frozen_dict = sk.freeze(source_list), sk.freeze(source_dict)
    source_list.append(4)
    source_dict["c"] = 3
    assert frozen_list == [1, "a", None]
    assert frozen_dict == {"a": 1, "b": 2.5}
    with pytest.raises(ReadOnlyError):
        frozen_list.append(5)
    with pytest.raises(ReadOnlyError):
        frozen_dict["d"] = 4


def test_a_container_after_scalars_is_still_frozen() -> None:
    assert type(sk.freeze([1, 2, [3]])[2]) is FrozenList
    assert type(sk.freeze({"a": 1, "b": {"c": 2}})["b"]) is FrozenDict
