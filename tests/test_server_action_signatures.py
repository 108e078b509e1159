"""Exposed actions whose annotations are strings (``from __future__ import annotations``)."""

from __future__ import annotations

from typing import Annotated

import pytest

pytest.importorskip("pydantic")

import pydantic

import statekit as sk
from statekit.server._actions import Exposed
from statekit.server._errors import ApiError

Title = Annotated[str, pydantic.StringConstraints(strip_whitespace=True, min_length=1)]

notes = sk.Store({"notes": []}, name="notes")


def add(title: Title, pinned: bool = False) -> int:
    notes.add("notes/-", title)
    return len(notes.get("notes"))


def test_a_module_level_alias_is_resolved_and_enforced() -> None:
    exposed = Exposed(notes, add)
    assert exposed.validate({"title": "  milk "}) == {"title": "milk", "pinned": False}
    with pytest.raises(ApiError) as caught:
        exposed.validate({"title": "   "})
    assert caught.value.code == "invalid_arguments" and "'title'" in caught.value.detail
    assert exposed.schema()["properties"]["title"]["minLength"] == 1


def test_an_unresolvable_annotation_fails_when_the_action_is_exposed() -> None:
    def broken(x: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ValueError, match="action 'broken' of store 'notes': annotation 'Missing'"):
        Exposed(notes, broken)
