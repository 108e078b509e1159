"""``sk.State``: typed pydantic models with reactive fields, one instance per scope."""

from __future__ import annotations

import asyncio
import copy
import gc
import inspect
import pickle
import re
import subprocess
import sys
import threading
import weakref
from typing import Any

import pytest

pydantic = pytest.importorskip("pydantic")

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator  # noqa: E402

import statekit as sk  # noqa: E402
from statekit._engine import Node  # noqa: E402


class Cart(sk.State, scope="session"):
    items: list[str] = []
    count: int = 0
    note: str = ""

    @sk.computed
    def size(self) -> int:
        return len(self.items)


class Settings(sk.State):  # app level by default
    theme: str = "light"


# --------------------------------------------------------------------------
# declaring


def test_state_is_a_pydantic_model_with_a_level() -> None:
    assert issubclass(Cart, BaseModel)
    assert Cart.model_config["validate_assignment"] is True
    assert Cart.__sk_level__ == "session"
    assert Settings.__sk_level__ == "app"
    assert set(Cart.model_fields) == {"items", "count", "note"}


def test_subclass_inherits_the_level_and_gets_its_own_instance() -> None:
    class BigCart(Cart):
        limit: int = 10

    assert BigCart.__sk_level__ == "session"
    with sk.session("s"):
        assert BigCart.get() is not Cart.get()
        assert BigCart.get().limit == 10
        assert BigCart.get() is BigCart.get()


def test_subclass_may_redeclare_a_field_without_default() -> None:
    class Named(Cart):
        count: int  # now required

    assert Named.model_fields["count"].is_required()
    assert Named(count=2).count == 2
    with pytest.raises(sk.ValidationError):
        Named()


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scope level 'sesion'"):

        class Bad(sk.State, scope="sesion"):
            x: int = 0


def test_a_field_may_not_hide_the_state_api() -> None:
    with (
        pytest.raises(sk.InvalidDefinition, match=r"'update' is a method of sk.State"),
        pytest.warns(UserWarning, match="shadows an attribute"),
    ):

        class Bad(sk.State):
            update: int = 0


def test_mutable_nested_pydantic_model_is_refused() -> None:
    class Address(BaseModel):
        city: str = ""

    with pytest.raises(sk.InvalidDefinition, match="Address is a mutable pydantic model"):

        class Person(sk.State):
            home: Address = Address()

    with pytest.raises(sk.InvalidDefinition, match=r"Person2.homes"):

        class Person2(sk.State):
            homes: list[Address] | None = None


def test_set_fields_are_refused_in_favour_of_frozenset() -> None:
    with pytest.raises(sk.InvalidDefinition, match=r"Tags.tags: a set could be changed in place"):

        class Tags(sk.State):
            tags: set[str] = set()

    with pytest.raises(sk.InvalidDefinition, match="declare it frozenset"):

        class Index(sk.State):
            by_key: dict[str, set[int]] = {}


def test_async_computed_method_is_refused_clearly() -> None:
    with pytest.raises(sk.InvalidDefinition, match="async computed methods"):

        class Bad(sk.State):
            x: int = 0

            @sk.computed
            async def later(self) -> int:
                return self.x


def test_state_itself_has_no_instance() -> None:
    with pytest.raises(sk.InvalidDefinition, match="subclass it"):
        sk.State.get()


def test_field_names_read_on_the_class_raise_attribute_error_like_pydantic() -> None:
    with pytest.raises(AttributeError):
        Cart.items
    assert not hasattr(Cart, "count")


# --------------------------------------------------------------------------
# scoped instances


def test_get_returns_one_instance_per_session() -> None:
    with sk.session("a"):
        a = Cart.get()
        a.count = 1
        assert Cart.get() is a
    with sk.session("b"):
        b = Cart.get()
        assert b is not a
        assert b.count == 0
    with sk.session("a"):
        assert Cart.get().count == 1


def test_get_outside_its_level_raises_scope_error() -> None:
    with pytest.raises(sk.ScopeError, match="'Cart' lives in a 'session' scope"):
        Cart.get()
    with sk.user("u"), pytest.raises(sk.ScopeError):
        Cart.get()


def test_app_level_state_is_shared_by_sessions() -> None:
    with sk.session("a"):
        Settings.get().theme = "dark"
    with sk.session("b"):
        assert Settings.get().theme == "dark"


def test_request_level_state_lives_as_long_as_the_request() -> None:
    class Req(sk.State, scope="request"):
        hits: int = 0

    with sk.session("s"):
        with sk.request():
            Req.get().hits = 5
            ref = weakref.ref(Req.get())
        gc.collect()
        assert ref() is None
        with sk.request():
            assert Req.get().hits == 0


def test_direct_construction_is_a_plain_unscoped_instance() -> None:
    cart = Cart(items=["a"], count=2)
    assert cart.items == ["a"]
    assert cart.size == 1
    with sk.session("s"):
        assert Cart.get() is not cart
        assert Cart.get().count == 0


def test_exists_never_creates() -> None:
    assert Cart.exists() is False  # no session active
    with sk.session("s"):
        assert Cart.exists() is False
        Cart.get()
        assert Cart.exists() is True
    with sk.session("t"):
        assert Cart.exists() is False


def test_get_of_a_class_with_required_fields_explains() -> None:
    class Login(sk.State, scope="session"):
        email: str

    with sk.session("s"), pytest.raises(sk.InvalidDefinition, match=r"Login.get\(\) cannot"):
        Login.get()


def test_disposing_the_scope_disposes_the_instance() -> None:
    with sk.session("s") as s:
        cart = Cart.get()
        runs: list[int] = []
        sk.effect(lambda: runs.append(cart.count))
        cart.count = 1
    s.dispose()
    with pytest.raises(sk.DisposedError, match="Cart of <Scope session 's' disposed>"):
        cart.count = 2
    assert runs == [0, 1]
    assert cart.count == 1  # still readable


def test_module_level_computed_reading_a_session_state_finds_its_level() -> None:
    label = sk.computed(lambda: f"{Cart.get().size} items")
    with sk.session("a"):
        Cart.get().items = ["x", "y"]
        assert label.value == "2 items"
    with sk.session("b"):
        assert label.value == "0 items"


# --------------------------------------------------------------------------
# initialize (the FtState contract)


def test_initialize_creates_every_registered_state_of_the_current_scope() -> None:
    class Base(sk.State, abstract=True):
        pass

    class Auth(Base, scope="session"):
        user_id: str | None = None

    class CartState(Base, scope="session"):
        items: list[str] = []

    class Global(Base):
        visits: int = 0

    class PerUser(Base, scope="user"):
        lang: str = "en"

    class NeedsArgs(Base, scope="session"):
        token: str  # cannot make itself: not registered

    with sk.session("s"):
        made = Base.initialize()
        assert set(made) == {"Auth", "CartState", "Global"}  # no user scope active: skipped
        assert made["Auth"] is Auth.get()
        assert Auth.exists() and CartState.exists() and Global.exists()
        assert not NeedsArgs.exists()
        assert Base.initialize() == made  # idempotent: the same instances
    with sk.user("alice"), sk.session("p"):
        assert set(Base.initialize()) == {"Auth", "CartState", "Global", "PerUser"}
    # sk.State.initialize() covers every registered class
    with sk.session("t"):
        assert {"Auth", "CartState", "Global"} <= set(sk.State.initialize())


def test_initialize_with_explicit_classes() -> None:
    class Only(sk.State, scope="session"):
        n: int = 0

    with sk.session("s"):
        made = sk.State.initialize(Only)
        assert made == {"Only": Only.get()}
    with pytest.raises(sk.ScopeError):
        sk.State.initialize(Only)


def test_initialize_keys_name_clashes_by_dotted_path() -> None:
    def make() -> type[sk.State]:
        class Twin(sk.State, scope="session"):
            n: int = 0

        return Twin

    first, second = make(), make()
    with sk.session("s"):
        made = sk.State.initialize(first, second)
    assert made["Twin"] is not None
    assert len([k for k in made if k.endswith("Twin")]) == 2


# --------------------------------------------------------------------------
# tracking


def test_effect_tracks_the_fields_it_reads_exactly() -> None:
    cart = Cart()
    runs: list[tuple[int, str]] = []
    stop = sk.effect(lambda: runs.append((cart.count, cart.note)))
    cart.count = 1
    cart.note = "hi"
    cart.items = ["x"]  # not read: no run
    cart.count = 1  # unchanged: no run
    assert runs == [(0, ""), (1, ""), (1, "hi")]
    stop()
    cart.count = 5
    assert len(runs) == 3


def test_computed_reading_fields_recomputes_only_on_their_change() -> None:
    cart = Cart()
    calls: list[int] = []

    def total() -> int:
        calls.append(1)
        return cart.count * 10

    t = sk.computed(total)
    assert t.value == 0
    assert t.value == 0
    cart.note = "unrelated"
    assert t.value == 0
    assert len(calls) == 1
    cart.count = 3
    assert t.value == 30
    assert len(calls) == 2


def test_dynamic_dependencies_are_retracked() -> None:
    cart = Cart()
    runs: list[Any] = []
    stop = sk.effect(lambda: runs.append(cart.note if cart.count else cart.items))
    cart.note = "ignored while count == 0"
    assert len(runs) == 1
    cart.count = 1
    cart.items = ["now ignored"]
    assert len(runs) == 2
    cart.note = "tracked"
    assert runs[-1] == "tracked"
    assert len(runs) == 3
    stop()


def test_batch_runs_effects_once() -> None:
    cart = Cart()
    runs: list[tuple[int, str]] = []
    stop = sk.effect(lambda: runs.append((cart.count, cart.note)))
    with sk.batch():
        cart.count = 1
        cart.note = "a"
        cart.count = 2
    assert runs == [(0, ""), (2, "a")]
    stop()


def test_untracked_reads_create_no_signals() -> None:
    cart = Cart()
    cart.count += 1
    _ = cart.items, cart.note
    assert cart._sk_nodes is None  # nobody watched: plain pydantic memory


def test_writing_a_field_inside_a_computed_is_refused() -> None:
    cart = Cart()

    def bad() -> int:
        cart.count = 9
        return 1

    with pytest.raises(sk.StatekitError, match="must not have side effects"):
        sk.computed(bad).value
    assert cart.count == 0


def test_properties_reading_fields_are_tracked_too() -> None:
    class Person(sk.State):
        first: str = "Ada"
        last: str = "Lovelace"

        @property
        def full(self) -> str:
            return f"{self.first} {self.last}"

    p = Person()
    seen: list[str] = []
    stop = sk.effect(lambda: seen.append(p.full))
    p.last = "Byron"
    assert seen == ["Ada Lovelace", "Ada Byron"]
    stop()


# --------------------------------------------------------------------------
# computed methods


def test_computed_method_is_cached_and_recomputed_only_when_its_fields_change() -> None:
    calls: list[int] = []

    class Basket(sk.State):
        prices: list[float] = []
        discount: float = 0.0
        label: str = ""

        @sk.computed
        def total(self) -> float:
            calls.append(1)
            return sum(self.prices) * (1 - self.discount)

    b = Basket(prices=[10.0, 20.0])
    assert b.total == 30.0
    assert b.total == 30.0
    assert len(calls) == 1
    b.label = "unrelated"
    assert b.total == 30.0
    assert len(calls) == 1
    b.discount = 0.5
    assert b.total == 15.0
    assert len(calls) == 2
    other = Basket(prices=[1.0])  # per instance
    assert other.total == 1.0
    assert b.total == 15.0
    assert len(calls) == 3


def test_computed_method_feeds_effects_and_stops_on_equal_result() -> None:
    cart = Cart()
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(cart.size))
    cart.items = ["a"]
    cart.items = ["b"]  # same size: the effect does not run
    cart.items = ["b", "c"]
    assert seen == [0, 1, 2]
    stop()


def test_computed_methods_chain_and_honour_equals() -> None:
    class Doc(sk.State):
        words: list[str] = []
        celsius: float = 20.0

        @sk.computed
        def count(self) -> int:
            return len(self.words)

        @sk.computed
        def summary(self) -> str:
            return f"{self.count} words" + (" (long)" if self.count > 3 else "")

        @sk.computed(equals=lambda a, b: abs(a - b) < 1)
        def shown(self) -> float:
            return self.celsius

    d = Doc()
    assert d.summary == "0 words"
    d.words = ["a", "b", "c", "d", "e"]
    assert d.summary == "5 words (long)"
    seen: list[float] = []
    stop = sk.effect(lambda: seen.append(d.shown))
    d.celsius = 20.5  # "equal" by the custom equals: no run
    d.celsius = 22.0
    stop()
    assert seen == [20.0, 22.0]
    assert "count" in repr(inspect.getattr_static(Doc, "count"))


def test_computed_method_cannot_be_assigned() -> None:
    with pytest.raises(sk.ReadOnlyError, match=r"Cart.size is computed"):
        Cart().size = 3  # type: ignore[misc]


def test_computed_method_error_is_cached_and_reraised_until_a_field_changes() -> None:
    calls: list[int] = []

    class Ratio(sk.State):
        a: int = 1
        b: int = 0

        @sk.computed
        def value(self) -> float:
            calls.append(1)
            return self.a / self.b

    r = Ratio()
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            r.value
    assert len(calls) == 1
    r.b = 2
    assert r.value == 0.5


def test_computed_method_of_a_session_state_reads_its_session() -> None:
    flag = sk.atom(False, name="flag", scope="session")

    class Panel(sk.State, scope="session"):
        title: str = "t"

        @sk.computed
        def shown(self) -> str:
            return self.title if flag.value else ""

    with sk.session("a") as a:
        panel_a = Panel.get()
        flag.value = True
    with sk.session("b"):
        assert panel_a.shown == "t"  # computed in a's scope, whoever reads it
        assert Panel.get().shown == ""
    with a:
        flag.value = False
    assert panel_a.shown == ""


# --------------------------------------------------------------------------
# validation: a catalog of bad inputs, each leaving the state unchanged


class Profile(sk.State, scope="session"):
    name: str = "anon"
    age: int = Field(default=0, ge=0, le=150)
    tags: list[str] = []
    scores: dict[str, int] = {}

    @field_validator("name")
    @classmethod
    def _no_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()

    @model_validator(mode="after")
    def _adults_have_names(self) -> Profile:
        if self.age >= 18 and self.name == "anon":
            raise ValueError("an adult needs a name")
        return self


BAD_ASSIGNMENTS = [
    ("age", "forty", "valid integer"),
    ("age", -1, "greater than or equal to 0"),
    ("age", 151, "less than or equal to 150"),
    ("age", 3.5, "fractional part"),
    ("age", None, "valid integer"),
    ("name", "   ", "must not be blank"),
    ("name", 12, "valid string"),
    ("tags", "not a list", "valid list"),
    ("tags", [1, 2], "valid string"),
    ("scores", {"a": "x"}, "valid integer"),
    ("scores", ["a"], "valid dictionary"),
    ("age", 30, "an adult needs a name"),  # refused by the model validator
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_ASSIGNMENTS)
def test_bad_assignment_raises_and_changes_nothing(field: str, value: Any, message: str) -> None:
    with sk.session("s"):
        p = Profile.get()
        p.tags = ["a"]
        seen: list[dict[str, Any]] = []
        off = p.subscribe(lambda m: seen.append(m.model_dump()))
        before = p.model_dump()
        fields_set = set(p.model_fields_set)
        with pytest.raises(sk.ValidationError) as info:
            setattr(p, field, value)
        err = info.value
        assert isinstance(err, ValueError)
        assert err.model == "Profile"
        assert err.field == field
        assert message in str(err)
        assert f"Profile.{field}" in str(err) or "Profile" in str(err)
        assert "unchanged" in str(err)
        assert err.errors and isinstance(err.__cause__, pydantic.ValidationError)
        assert p.model_dump() == before
        assert set(p.model_fields_set) == fields_set
        assert getattr(p, field) == before[field]
        assert seen == []
        off()


@pytest.mark.parametrize(("field", "value", "message"), BAD_ASSIGNMENTS)
def test_bad_update_and_set_change_nothing(field: str, value: Any, message: str) -> None:
    p = Profile(tags=["a"])
    before = p.model_dump()
    with pytest.raises(sk.ValidationError, match=message):
        p.update(field, lambda _old: value)
    assert p.model_dump() == before
    other, other_value = ("tags", ["changed"]) if field != "tags" else ("name", "changed")
    with pytest.raises(sk.ValidationError, match=message):
        p.set(**{other: other_value, field: value})  # the valid first write is undone too
    assert p.model_dump() == before


def test_unknown_field_assignment_is_refused() -> None:
    cart = Cart()
    with pytest.raises(sk.ValidationError, match="Cart has no field 'colour'") as info:
        cart.colour = "red"  # type: ignore[attr-defined]
    assert info.value.field == "colour"
    with pytest.raises(sk.ValidationError, match="no field 'colour'"):
        cart.update("colour", lambda v: v)
    with pytest.raises(sk.ValidationError, match="no field 'colour'"):
        cart.set(colour="red")
    with pytest.raises(sk.ValidationError, match="no field or computed method 'colour'"):
        cart.field("colour")
    with pytest.raises(sk.ValidationError, match="no field 'size'"):
        cart.update("size", lambda v: v)


def test_bad_creation_inputs_are_refused_with_the_model_named() -> None:
    class Order(sk.State):
        order_id: str
        qty: int = 1

    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "Order.order_id: Field required"),
        ({"order_id": "o1", "extra": 1}, "Order.extra: Extra inputs are not permitted"),
        ({"order_id": "o1", "qty": "many"}, "Order.qty: Input should be a valid integer"),
        ({"order_id": 5}, "Order.order_id: Input should be a valid string"),
    ]
    for data, message in cases:
        with pytest.raises(sk.ValidationError) as info:
            Order(**data)
        assert message in str(info.value)
        assert "nothing was created" in str(info.value)
        assert info.value.model == "Order"
        with pytest.raises(sk.ValidationError, match=message.split(":")[0]):
            Order.model_validate(data)
    with pytest.raises(sk.ValidationError, match=r"Order.qty"):
        Order.model_validate_json('{"order_id": "x", "qty": "no"}')


def test_bad_nested_values_are_refused() -> None:
    class Line(sk.State):
        sku: str = ""
        qty: int = 1

    class Order(sk.State):
        lines: list[Line] = []
        main: Line | None = None

    o = Order(lines=[Line(sku="a")])
    before = o.model_dump()
    with pytest.raises(sk.ValidationError, match=r"Order.lines.0.qty"):
        o.lines = [{"sku": "b", "qty": "x"}]  # type: ignore[list-item]
    with pytest.raises(sk.ValidationError, match=r"Order.main.sku"):
        o.main = {"sku": 3}  # type: ignore[assignment]
    with pytest.raises(sk.ValidationError, match=r"Order.lines.0.colour"):
        Order(lines=[{"colour": "red"}])  # type: ignore[list-item]
    assert o.model_dump() == before


def test_long_inputs_are_shortened_in_messages() -> None:
    with pytest.raises(sk.ValidationError) as info:
        Cart().count = "x" * 1000  # type: ignore[assignment]
    assert len(str(info.value)) < 400


def test_valid_assignment_is_coerced_like_pydantic() -> None:
    p = Profile()
    p.name = "  Ada  "
    p.age = "42"  # type: ignore[assignment]
    assert (p.name, p.age) == ("Ada", 42)
    assert "age" in p.model_fields_set


def test_frozen_model_config_refuses_every_write() -> None:
    class Fixed(sk.State):
        model_config = ConfigDict(frozen=True)
        n: int = 0

    f = Fixed()
    with pytest.raises(sk.ValidationError, match="frozen"):
        f.n = 1
    assert f.n == 0


# --------------------------------------------------------------------------
# frozen containers


def test_list_dict_and_set_fields_are_frozen() -> None:
    class Bag(sk.State):
        xs: list[int] = []
        d: dict[str, list[int]] = {}
        s: frozenset[int] = frozenset()

    b = Bag(xs=[1], d={"a": [1]}, s={1})  # type: ignore[arg-type]
    assert isinstance(b.xs, sk.FrozenList)
    assert isinstance(b.d, sk.FrozenDict)
    assert isinstance(b.d["a"], sk.FrozenList)
    assert isinstance(b.s, frozenset)
    with pytest.raises(sk.ReadOnlyError):
        b.xs.append(2)
    with pytest.raises(sk.ReadOnlyError):
        b.d["b"] = [2]
    with pytest.raises(sk.ReadOnlyError):
        b.d["a"].append(2)
    b.xs = [*b.xs, 2]
    assert b.xs == [1, 2] and isinstance(b.xs, sk.FrozenList)
    b.update("d", lambda d: {**d, "b": [2]})
    assert b.d == {"a": [1], "b": [2]}
    assert isinstance(Bag().xs, sk.FrozenList)


def test_caller_list_is_not_aliased() -> None:
    mine = ["a"]
    cart = Cart(items=mine)
    mine.append("b")
    assert cart.items == ["a"]


def test_frozen_nested_pydantic_model_is_accepted() -> None:
    class Point(BaseModel):
        model_config = ConfigDict(frozen=True)
        x: int = 0

    class Shape(sk.State):
        origin: Point = Point()

    s = Shape()
    seen: list[int] = []
    stop = sk.effect(lambda: seen.append(s.origin.x))
    s.origin = Point(x=3)
    assert seen == [0, 3]
    with pytest.raises(pydantic.ValidationError):
        s.origin.x = 4  # type: ignore[misc]
    stop()


# --------------------------------------------------------------------------
# nested State models: tracked


class Address(sk.State):
    city: str = ""
    zip: str = ""


class Customer(sk.State, scope="session"):
    name: str = ""
    address: Address = Address()
    others: list[Address] = []


def test_nested_state_fields_are_tracked_through_the_parent() -> None:
    c = Customer()
    seen: list[str] = []
    stop = sk.effect(lambda: seen.append(c.address.city))
    c.address.city = "Paris"  # a write to the nested model
    c.address = Address(city="Rome")  # a write replacing it
    c.address.zip = "00100"  # not read: no run
    assert seen == ["", "Paris", "Rome"]
    stop()


def test_nested_default_instances_are_not_shared() -> None:
    a, b = Customer(), Customer()
    a.address.city = "Oslo"
    assert b.address.city == ""


def test_nested_dump_and_restore_round_trip() -> None:
    c = Customer(name="Ann", address={"city": "Lyon"}, others=[{"city": "Nice"}])  # type: ignore[arg-type]
    dumped = c.model_dump()
    assert dumped == {
        "name": "Ann",
        "address": {"city": "Lyon", "zip": ""},
        "others": [{"city": "Nice", "zip": ""}],
    }
    d = Customer()
    d.restore(dumped)
    assert d == c
    assert d.model_dump() == dumped
    assert isinstance(d.others, sk.FrozenList)
    assert isinstance(d.others[0], Address)


class TreeNode(sk.State):
    name: str = ""
    children: list[TreeNode] = []
    note: Later | None = None  # defined below: resolved by model_rebuild


class Later(sk.State):
    text: str = ""


TreeNode.model_rebuild()


def test_recursive_and_forward_referenced_state_models() -> None:
    tree = TreeNode(name="root", children=[{"name": "a"}], note={"text": "n"})  # type: ignore[list-item,arg-type]
    assert isinstance(tree.children, sk.FrozenList)
    assert isinstance(tree.children[0], TreeNode)
    assert TreeNode().children is TreeNode().children  # the shared frozen default
    seen: list[str] = []
    stop = sk.effect(lambda: seen.append(tree.children[0].name))
    tree.children[0].name = "b"
    assert seen == ["a", "b"]
    stop()
    with pytest.raises(sk.ValidationError, match=r"TreeNode.children.0.children.0.name"):
        tree.children = [{"children": [{"name": 5}]}]  # type: ignore[list-item]
    assert TreeNode.model_validate(tree.model_dump()) == tree


def test_subscribe_is_deep_by_default() -> None:
    c = Customer(others=[Address()])
    seen: list[str] = []
    off = c.subscribe(lambda m: seen.append(m.others[0].city))
    c.others[0].city = "Bern"
    assert seen == ["Bern"]
    off()
    shallow: list[int] = []
    off = c.subscribe(lambda m: shallow.append(1), deep=False)
    c.others[0].city = "Basel"
    assert shallow == []
    c.name = "x"
    assert shallow == [1]
    off()


# --------------------------------------------------------------------------
# dump / restore


def test_model_dump_round_trip() -> None:
    with sk.session("s"):
        cart = Cart.get()
        cart.set(items=["a", "b"], count=2, note="n")
        dumped = cart.model_dump()
        json_text = cart.model_dump_json()
    assert dumped == {"items": ["a", "b"], "count": 2, "note": "n"}
    assert type(dumped["items"]) is list  # plain data out
    with sk.session("t"):
        other = Cart.get()
        seen: list[Any] = []
        stop = sk.effect(lambda: seen.append((other.count, other.size)))
        other.restore(dumped)
        assert other.model_dump() == dumped
        assert seen == [(0, 0), (2, 2)]  # one run for the whole restore
        stop()
        other.restore(Cart.model_validate_json(json_text))
        assert other.model_dump() == dumped


def test_restore_takes_defaults_for_missing_fields_and_refuses_bad_data() -> None:
    cart = Cart(items=["a"], count=3, note="x")
    cart.restore({"count": 1})
    assert cart.model_dump() == {"items": [], "count": 1, "note": ""}
    assert cart.model_fields_set == {"count"}  # as if made from that data
    before = cart.model_dump()
    for bad in ({"count": "x"}, {"unknown": 1}, {"items": [None]}):
        with pytest.raises(
            sk.ValidationError, match="Cart: restore refused; the state is unchanged"
        ):
            cart.restore(bad)
        assert cart.model_dump() == before


def test_set_is_one_change_and_one_notification() -> None:
    cart = Cart()
    seen: list[tuple[int, str]] = []
    stop = sk.effect(lambda: seen.append((cart.count, cart.note)))
    cart.set(count=1, note="a")
    assert seen == [(0, ""), (1, "a")]
    with pytest.raises(sk.ValidationError):
        cart.set(count=2, note=object())
    assert (cart.count, cart.note) == (1, "a")
    assert len(seen) == 2
    stop()


def test_copy_deepcopy_and_pickle_give_plain_instances() -> None:
    with sk.session("s"):
        cart = Cart.get()
        cart.items = ["a"]
        sk.effect(lambda: cart.count)  # make signals
        for twin in (cart.model_copy(), copy.copy(cart), copy.deepcopy(cart)):
            assert twin == cart
            assert twin._sk_scope is None and twin._sk_nodes is None
            twin.count = 5
            assert cart.count == 0
        restored = pickle.loads(pickle.dumps(Cart(items=["z"])))
        assert restored.items == ["z"]
        restored.count = 1


def test_own_model_post_init_still_gets_the_state_set_up() -> None:
    class Hooked(sk.State):
        xs: list[int] = []
        seen: int = 0

        def model_post_init(self, context: Any, /) -> None:
            self.seen = len(self.xs)

    h = Hooked(xs=[1, 2])
    assert h.seen == 2
    assert isinstance(h.xs, sk.FrozenList)


# --------------------------------------------------------------------------
# subscribing and handles


def test_subscribe_fields_callback_gets_the_instance() -> None:
    cart = Cart()
    seen: list[int] = []
    off = cart.subscribe(lambda c: seen.append(c.count), "count")
    cart.note = "no"
    cart.count = 1
    cart.update("count", lambda n: n + 1)
    with sk.batch():
        cart.count = 10
        cart.count = 2  # ends where it began: no call
    off()
    cart.count = 3
    assert seen == [1, 2]


def test_subscribe_to_a_computed_method() -> None:
    cart = Cart()
    seen: list[int] = []
    off = cart.subscribe(lambda c: seen.append(c.size), "size")
    cart.items = ["a"]
    cart.note = "x"
    off()
    assert seen == [1]


def test_field_ref_is_an_atom_like_handle() -> None:
    cart = Cart()
    ref = cart.field("count")
    assert ref.value == 0
    ref.value = 2
    assert ref.peek() == 2
    seen: list[int] = []
    off = ref.subscribe(seen.append)
    ref.update(lambda n: n * 10)
    cart.count = 21
    off()
    assert seen == [20, 21]
    with pytest.raises(sk.ValidationError):
        ref.set("nope")
    size = cart.field("size")
    sizes: list[int] = []
    off = size.subscribe(sizes.append)
    cart.items = ["a", "b"]
    off()
    assert sizes == [2]
    with pytest.raises(sk.ReadOnlyError):
        size.set(1)
    with pytest.raises(sk.ReadOnlyError):
        size.update(lambda n: n)
    assert "Cart.count" in repr(ref)


def test_a_raising_subscriber_does_not_stop_others_nor_undo_the_write() -> None:
    errors: list[str] = []
    old = sk.set_error_hook(lambda exc, where: errors.append(repr(exc)))
    try:
        cart = Cart()
        seen: list[int] = []
        off1 = cart.subscribe(lambda c: 1 / 0, "count")
        off2 = cart.subscribe(lambda c: seen.append(c.count), "count")
        cart.count = 4
        off1()
        off2()
    finally:
        sk.set_error_hook(old)
    assert seen == [4]
    assert cart.count == 4
    assert errors and "ZeroDivisionError" in errors[0]


def test_subscriptions_stop_with_the_scope() -> None:
    with sk.session("s") as s:
        cart = Cart.get()
        seen: list[int] = []
        cart.subscribe(lambda c: seen.append(c.count))
        cart.count = 1
    s.dispose()
    assert seen == [1]


# --------------------------------------------------------------------------
# isolation, memory, threads


def test_ten_thousand_sessions_each_with_their_own_cart_are_isolated_and_freed() -> None:
    app = sk.new_app_scope()
    refs: list[weakref.ref[Cart]] = []
    with app:
        for i in range(10_000):
            with sk.session(f"s{i}"):
                cart = Cart.get()
                cart.count = i
                cart.items = [f"item-{i}"]
                if i % 10 == 0:  # some sessions are watched: signals and computeds exist
                    sk.effect(lambda c=cart: c.size)
                refs.append(weakref.ref(cart))
        del cart
        for i in (0, 1, 4_999, 9_999):
            with sk.session(f"s{i}"):
                assert Cart.get().count == i
                assert Cart.get().items == [f"item-{i}"]
                assert Cart.get().size == 1
        assert app.count("session") == 10_000
    app.dispose()
    gc.collect()
    alive = sum(1 for r in refs if r() is not None)
    assert alive == 0


def _live_nodes() -> set[int]:
    """The ids of the engine nodes alive now.

    Nodes cannot be weakly referenced (a compiled engine's cannot), so the
    collector's list of live objects is where a leaked one would show.
    """
    gc.collect()
    return {id(o) for o in gc.get_objects() if isinstance(o, Node)}


def test_disposed_session_frees_cart_with_signals_and_computeds() -> None:
    def watch() -> tuple[weakref.ref[Cart], set[int]]:
        cart = Cart.get()
        sk.effect(lambda: (cart.count, cart.size))
        label = sk.computed(lambda: cart.note)
        assert label.value == ""
        nodes = {id(n) for n in (cart._sk_nodes or {}).values()}
        assert len(nodes) == 4  # count, size, items (read by size), note
        return weakref.ref(cart), nodes

    before = _live_nodes()
    with sk.session("s") as s:
        ref, nodes = watch()
    assert nodes <= _live_nodes()  # the check below can see them
    s.dispose()
    after = _live_nodes()
    assert ref() is None
    # No node made for the session outlives it: the cart's four, the effect's,
    # the computed's, and any other.
    assert after <= before


def test_sixteen_threads_of_atomic_updates_lose_nothing() -> None:
    with sk.session("s") as s:
        cart = Cart.get()
        seen: list[int] = []
        off = cart.field("count").subscribe(seen.append)
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(1_000):
                cart.update("count", lambda n: n + 1)
        except BaseException as exc:
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=s.run, args=(work,), daemon=True) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(old)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert cart.count == 16_000
    assert cart.field("count").value == 16_000
    assert seen[-1] == 16_000
    assert seen == sorted(seen)  # each thread delivers its own writes in order
    off()


def test_concurrent_assignments_to_different_fields_keep_both() -> None:
    # pydantic's validate_assignment replaces __dict__: unguarded, two writers
    # to different fields would lose one of the writes.
    cart = Cart()
    barrier = threading.Barrier(2)

    def write(field: str, values: list[Any]) -> None:
        barrier.wait(timeout=10)
        for v in values:
            setattr(cart, field, v)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        a = threading.Thread(target=write, args=("count", list(range(1, 3001))))
        b = threading.Thread(target=write, args=("note", [str(i) for i in range(1, 3001)]))
        a.start(), b.start()
        a.join(30), b.join(30)
    finally:
        sys.setswitchinterval(old)
    assert (cart.count, cart.note) == (3000, "3000")


async def test_sessions_in_parallel_tasks_see_their_own_state() -> None:
    async def visit(i: int) -> None:
        with sk.session(f"t{i}"):
            cart = Cart.get()
            for _ in range(3):
                cart.update("count", lambda n: n + 1)
                await asyncio.sleep(0)
            assert cart.count == 3
            assert Cart.get() is cart

    await asyncio.gather(*(visit(i) for i in range(500)))


# --------------------------------------------------------------------------
# laziness of the import


def test_import_statekit_does_not_load_pydantic_until_state_is_used() -> None:
    code = (
        "import sys, statekit; assert 'pydantic' not in sys.modules; "
        "statekit.State; assert 'pydantic' in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


# --------------------------------------------------------------------------
# defaults, freezing rules, effects writing fields


def test_container_defaults_are_shared_frozen_values_and_stay_in_the_schema() -> None:
    class Defaults(sk.State):
        xs: list[int] = [1, 2]
        d: dict[str, int] = {"a": 1}
        s: frozenset[int] = frozenset({3})

    a, b = Defaults(), Defaults()
    assert a.xs is b.xs  # one frozen default, no deep copy per instance
    assert isinstance(a.xs, sk.FrozenList) and isinstance(a.d, sk.FrozenDict)
    assert a.s == {3} and isinstance(a.s, frozenset)
    assert a.model_dump() == {"xs": [1, 2], "d": {"a": 1}, "s": {3}}
    props = Defaults.model_json_schema()["properties"]
    assert props["xs"]["default"] == [1, 2]
    assert props["d"]["default"] == {"a": 1}
    a.xs = [*a.xs, 3]
    assert b.xs == [1, 2]


def test_fields_that_can_hold_containers_are_frozen_whatever_their_annotation() -> None:
    class Loose(sk.State):
        anything: Any = None
        pair: tuple[list[int], str] = ([], "")
        maybe: list[int] | None = None
        name: str = ""

    lo = Loose(anything={"k": [1]}, pair=([1], "x"), maybe=[2])
    assert isinstance(lo.anything, sk.FrozenDict)
    assert isinstance(lo.anything["k"], sk.FrozenList)
    assert isinstance(lo.pair[0], sk.FrozenList)
    assert isinstance(lo.maybe, sk.FrozenList)
    lo.anything = [1]
    assert isinstance(lo.anything, sk.FrozenList)
    assert set(Loose.__sk_freeze__) == {"anything", "pair", "maybe"}  # not name: a str


def test_an_effect_writing_a_field_does_not_depend_on_what_validation_read() -> None:
    class Pair(sk.State):
        low: int = 0
        high: int = 10

        @model_validator(mode="after")
        def _ordered(self) -> Pair:
            if self.low > self.high:
                raise ValueError("low > high")
            return self

    p = Pair()
    trigger = sk.atom(0)
    runs: list[int] = []

    def copy_trigger() -> None:
        runs.append(trigger.value)
        p.low = trigger.value  # the validator reads low and high

    stop = sk.effect(copy_trigger)
    p.high = 20  # read by the validator, not by the effect: no run
    trigger.value = 5
    assert runs == [0, 5]
    assert p.low == 5
    stop()


# --------------------------------------------------------------------------
# properties: random writes against a plain-dict model


def test_random_writes_match_a_shadow_model() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    values = {
        # ASCII only: pydantic parses ASCII digits, while str.isdigit() also
        # accepts digits such as "¹" that int() and pydantic refuse.
        "count": st.one_of(
            st.integers(-5, 5), st.text(alphabet="0123456789- a", max_size=2), st.none()
        ),
        "note": st.one_of(st.text(max_size=3), st.integers(0, 3)),
        "items": st.one_of(st.lists(st.text(max_size=2), max_size=3), st.integers(0, 3)),
    }
    op = st.one_of(
        st.tuples(st.just("assign"), st.sampled_from(sorted(values)), st.data()),
        st.tuples(st.just("set"), st.just(None), st.data()),
        st.tuples(st.just("restore"), st.just(None), st.data()),
    )

    def valid(field: str, value: Any) -> bool:
        if field == "count":
            return isinstance(value, int) or (
                isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value) is not None
            )
        if field == "note":
            return isinstance(value, str)
        return isinstance(value, list)

    def coerce(field: str, value: Any) -> Any:
        return int(value) if field == "count" else value

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(st.lists(op, max_size=12))
    def run(ops: list[Any]) -> None:
        cart = Cart()
        shadow = cart.model_dump()
        effect_runs = 0
        seen_sizes: list[int] = []

        def watch() -> None:
            nonlocal effect_runs
            effect_runs += 1
            seen_sizes.append(cart.size)

        stop = sk.effect(watch)
        expected_runs = 1
        for kind, field, data in ops:
            before_size = len(shadow["items"])
            if kind == "assign":
                value = data.draw(values[field])
                if valid(field, value):
                    setattr(cart, field, value)
                    shadow[field] = coerce(field, value)
                else:
                    with pytest.raises(sk.ValidationError):
                        setattr(cart, field, value)
            elif kind == "set":
                changes = {f: data.draw(values[f]) for f in sorted(values)}
                if all(valid(f, v) for f, v in changes.items()):
                    cart.set(**changes)
                    shadow.update({f: coerce(f, v) for f, v in changes.items()})
                else:
                    with pytest.raises(sk.ValidationError):
                        cart.set(**changes)
            else:
                snapshot = Cart(items=data.draw(st.lists(st.text(max_size=2), max_size=3)))
                cart.restore(snapshot.model_dump())
                shadow = snapshot.model_dump()
            assert cart.model_dump() == shadow
            if len(shadow["items"]) != before_size:
                expected_runs += 1
        stop()
        assert effect_runs == expected_runs  # exactly one run per change of size
        assert seen_sizes[-1] == len(shadow["items"])

    run()


# --------------------------------------------------------------------------
# memory census


def test_sessions_leave_no_statekit_objects_behind() -> None:
    def statekit_objects() -> int:
        gc.collect()
        return sum(
            1
            for o in gc.get_objects()
            # str(): some C extension metatypes expose __module__ as a descriptor
            if str(getattr(type(o), "__module__", "")).startswith("statekit")
            or isinstance(o, sk.State)
        )

    def round_trip(app: sk.Scope, n: int) -> None:
        with app:
            for i in range(n):
                with sk.session(f"s{i}"):
                    cart = Cart.get()
                    cart.subscribe(lambda c: None)
                    cart.field("count").subscribe(lambda v: None)
                    sk.effect(lambda c=cart: c.size)
                    cart.update("count", lambda n: n + 1)
                    cart.items = ["a"]

    warm = sk.new_app_scope()
    round_trip(warm, 10)
    warm.dispose()
    before = statekit_objects()
    app = sk.new_app_scope()
    round_trip(app, 2_000)
    assert app.count("session") == 2_000
    app.dispose()
    del app
    assert statekit_objects() - before <= 5


# --------------------------------------------------------------------------
# the example


def test_the_cart_example_runs() -> None:
    from pathlib import Path

    script = Path(__file__).parent.parent / "examples" / "models_cart.py"
    out = subprocess.run(
        [sys.executable, str(script)], check=True, capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    assert out == [
        "[ann] total 0.00",
        "[ann] total 3.00",
        "[ann] refused: Line.qty",
        "[ann] total 3.50",
        "[ann] total 3.15",
        "[bob] total 0.00",
        "[bob] total 3.00",
        "[bob] refused: Line.qty",
        "[bob] total 3.75",
        "[bob] total 3.38",
        "[ann-again] restored total 3.15, 2 lines",
    ]
