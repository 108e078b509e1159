"""The hub's JSON encoding (one C encoder made once): the same text as json.dumps."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given

from _server_fixtures import json_values
from statekit._patch import freeze_json
from statekit.server._hub import encode


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@given(json_values)
def test_encode_is_compact_json_dumps(value: Any) -> None:
    assert encode(value) == _dumps(value)
    assert encode(freeze_json(value)) == _dumps(value)  # the frozen copies the hub holds


def test_encode_refuses_what_is_not_json() -> None:
    for bad in (math.nan, [math.inf], {"a": -math.inf}):
        with pytest.raises(ValueError):
            encode(bad)
    with pytest.raises(TypeError):
        encode({"a": object()})


def test_encode_calls_are_independent() -> None:
    # One encoder serves every call: nothing of one value leaks into the next.
    shared = [1, 2]
    assert encode({"a": shared, "b": shared}) == '{"a":[1,2],"b":[1,2]}'
    assert encode(shared) == "[1,2]"
    assert encode("é\n\u2028") == '"é\\n\u2028"'
