"""``State.get()``'s creation fast path: what ``cls()`` makes, only where nothing is tracked.

A class whose creation runs no user code (State's ``__init__`` and
``model_post_init``, no validators, immutable or statekit-frozen defaults) is
made by its validator directly, outside ``untracked_call``; every other class
still goes through ``cls()`` untracked. These tests pin both halves.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pydantic")

from pydantic import ConfigDict, Field, field_validator, model_validator

import statekit as sk
from statekit._model import _plain


class Plain(sk.State, scope="session"):
    count: int = 0
    name: str = "x"
    ratio: float = 0.5
    flag: bool = False
    maybe: str | None = None
    items: list[str] = ["a"]  # shared frozen default: still plain


def test_plain_classification() -> None:
    assert _plain(Plain)

    class WithValidator(sk.State):
        n: int = 0

        @field_validator("n")
        @classmethod
        def check(cls, v: int) -> int:
            return v

    class WithModelValidator(sk.State):
        n: int = 0

        @model_validator(mode="after")
        def check(self) -> Any:
            return self

    class WithFactory(sk.State):
        n: list[int] = Field(default_factory=list)

    class WithValidateDefault(sk.State):
        model_config = ConfigDict(validate_default=True)
        n: int = 0

    class WithFieldValidateDefault(sk.State):
        n: int = Field(default=0, validate_default=True)

    class WithInit(sk.State):
        n: int = 0

        def __init__(self, **data: Any) -> None:
            super().__init__(**data)

    class WithPostInit(sk.State):
        n: int = 0

        def model_post_init(self, context: Any, /) -> None:
            pass

    class Inner(sk.State):
        n: int = 0

    class WithNested(sk.State):
        inner: Inner = Inner()

    class Required(sk.State):
        n: int

    for kind in (
        WithValidator,
        WithModelValidator,
        WithFactory,
        WithValidateDefault,
        WithFieldValidateDefault,
        WithInit,
        WithPostInit,
        WithNested,
        Required,
    ):
        assert not _plain(kind), kind.__name__


def test_plain_get_makes_what_the_constructor_makes() -> None:
    with sk.session("s") as scope:
        made = Plain.get()
        assert Plain.get() is made
    direct = Plain()
    assert made.model_dump() == direct.model_dump()
    assert made.model_fields_set == direct.model_fields_set == set()
    assert made == direct
    assert made._sk_scope is scope
    assert direct._sk_scope is None
    assert isinstance(made.items, sk.FrozenList)
    seen: list[int] = []
    with scope:
        stop = sk.effect(lambda: seen.append(Plain.get().count))
        made.count = 3
        with pytest.raises(sk.ValidationError):
            made.count = "three"  # type: ignore[assignment]
    stop()
    assert seen == [0, 3]
    assert made.count == 3


def test_get_inside_a_computed_does_not_track_a_default_factory() -> None:
    source = sk.atom(1, name="factory-source")
    runs: list[int] = []

    class FromFactory(sk.State, scope="session"):
        n: int = Field(default_factory=lambda: source.value)

    assert not _plain(FromFactory)

    @sk.computed(scope="session")
    def reader() -> int:
        runs.append(1)
        return FromFactory.get().n

    with sk.session("s"):
        assert reader.value == 1
        source.value = 2  # read by the factory, not by the computed
        assert reader.value == 1
    assert len(runs) == 1


def test_get_inside_a_computed_does_not_track_a_validated_default() -> None:
    limit = sk.atom(10, name="validator-limit")
    runs: list[int] = []

    class Checked(sk.State, scope="session"):
        n: int = Field(default=1, validate_default=True)

        @field_validator("n")
        @classmethod
        def below_limit(cls, v: int) -> int:
            assert v < limit.value
            return v

    @sk.computed(scope="session")
    def reader() -> int:
        runs.append(1)
        return Checked.get().n

    with sk.session("s"):
        assert reader.value == 1
        limit.value = 20
        assert reader.value == 1
    assert len(runs) == 1


def test_get_runs_a_subclass_init() -> None:
    calls: list[str] = []

    class Counted(sk.State, scope="session"):
        n: int = 0

        def __init__(self, **data: Any) -> None:
            calls.append("init")
            super().__init__(**data)

    with sk.session("s"):
        Counted.get()
        Counted.get()
    assert calls == ["init"]


def test_get_on_state_itself_still_refuses() -> None:
    with pytest.raises(sk.InvalidDefinition):
        sk.State.get()


def test_get_in_a_scope_disposed_under_it_refuses_and_does_not_hand_out_the_old_one() -> None:
    with sk.session("gone") as scope:
        first = Plain.get()
        scope.dispose()
        with pytest.raises(sk.DisposedError):
            Plain.get()
    with sk.session("gone") as again:  # a new session of the same id
        assert again is not scope
        fresh = Plain.get()
    assert fresh is not first
    assert fresh._sk_scope is again


def test_get_caches_per_scope_and_finds_each_sessions_own() -> None:
    made = {}
    for sid in ("a", "b", "a", "c", "b"):
        with sk.session(sid):
            inst = Plain.get()
            assert made.setdefault(sid, inst) is inst
    assert len({id(v) for v in made.values()}) == 3
