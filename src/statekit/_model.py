"""``State``: typed pydantic models with reactive fields, one instance per scope.

Loaded on first use of ``statekit.State`` (``import statekit`` does not import
pydantic). See ``docs/models.md`` for the guide.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import itertools
import types
import typing
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Self, cast

import pydantic
from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticUndefined

from . import _engine
from ._async_computed import AsyncComputed
from ._computed import Computed
from ._definition import Definition
from ._frozen import freeze, thaw
from ._model_fields import (
    ComputedMethod,
    FieldRef,
    FieldSlot,
    assign_field,
    assign_many,
    dispose_nodes,
    label,
    validation_error,
    write_field,
)
from ._scope import Scope, _current, level_index
from ._subscribe import start_effect, stop_effect
from .exceptions import InvalidDefinition, ValidationError

__all__ = ["State"]

_set = object.__setattr__
_order = itertools.count()
# Every concrete State class that can make its own instance, in definition
# order; weak, so classes made in tests and thrown away do not linger.
_registry: weakref.WeakValueDictionary[int, type[State]] = weakref.WeakValueDictionary()

# Names of State's own API: a field with one of these names would hide it.
_RESERVED = frozenset(
    {"get", "exists", "initialize", "update", "set", "restore", "subscribe", "field"}
)


_NO_DATA: dict[str, Any] = {}  # what a scoped instance is validated from (never mutated)


class _StateDefinition(Definition):
    """The definition behind ``Cart.get()``: one instance per scope of its level."""

    __slots__ = ("cls", "plain")

    def __init__(self, cls: type[State], scope: str) -> None:
        super().__init__(label(cls), scope, "state")
        self.cls = cls
        # Whether creating an instance runs only pydantic's own default
        # handling (see _plain): then nothing the creation does can be
        # tracked, and the instance is made by the validator directly.
        self.plain = _plain(cls)

    def _make_node(self, scope: Scope) -> Any:
        cls = self.cls
        try:
            if self.plain:
                # What ``cls()`` does (State.__init__ -> BaseModel.__init__ ->
                # validate_python), without the two frames and the untracked
                # wrapper: no user code runs, so there is nothing to track.
                try:
                    inst = cls.__pydantic_validator__.validate_python(_NO_DATA)
                except pydantic.ValidationError as exc:
                    raise validation_error(cls, exc, field=None, action="creation") from exc
            else:
                # Untracked: a validator reading a field must not make the
                # computed that called ``get()`` depend on this new instance.
                inst = _engine.untracked_call(cls)
        except ValidationError as exc:
            raise InvalidDefinition(
                f"{label(cls)}.get() cannot create the instance of {scope!r}: {exc}; "
                "give every field a default (or restore() it after creation)"
            ) from exc
        _set(inst, "_sk_scope", scope)
        if scope.chain[0].backend is not None:  # type: ignore[union-attr]
            # The app scope has a backend: the fields live there.
            from .backends._state import bind_state

            bind_state(inst, scope)
        return inst

    def _release(self, scope: Scope, node: Any) -> None:
        dispose_nodes(node)
        self._forget(scope)


def _plain(cls: type[State]) -> bool:
    """Whether ``cls()`` runs no code but pydantic's and statekit's own.

    True when the class keeps State's ``__init__`` and ``model_post_init``,
    declares no validators, and every field has an immutable default (or
    the shared frozen default statekit made for a list/dict/set) that
    pydantic does not validate. Such a creation reads no reactive value,
    so ``get()`` need not run it untracked, nor through ``__init__``.
    """
    if cls.__init__ is not State.__init__ or cls.model_post_init is not State.model_post_init:
        return False
    decorators = cls.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
    ):
        return False
    if cls.model_config.get("validate_default"):
        return False
    for info in cls.model_fields.values():
        if info.validate_default:
            return False
        factory = info.default_factory
        if factory is not None:
            if not getattr(factory, "__sk_frozen_default__", False):
                return False
        elif type(info.default) not in _PLAIN_DEFAULTS:
            return False  # required, or a default pydantic copies (or a subclass's)
    return True


def _annotation_types(annotation: Any) -> Iterable[Any]:
    """Everything ``annotation`` is made of: origins and arguments, recursively."""
    todo = [annotation]
    while todo:
        item = todo.pop()
        yield item
        origin = typing.get_origin(item)
        if origin is not None:
            yield origin
        todo.extend(typing.get_args(item))


# Types whose values cannot change in place: fields made only of these need
# no freezing (the common case of ints, strings, optionals and literals).
_IMMUTABLE: tuple[type, ...] = (
    int,
    float,
    str,
    bytes,
    bool,
    complex,
    type(None),
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    enum.Enum,
    types.UnionType,
)
# Default values pydantic hands out as they are (exact types: a subclass
# could copy itself in __deepcopy__).
_PLAIN_DEFAULTS = frozenset({int, float, str, bytes, bool, type(None)})


def _needs_freezing(annotation: Any) -> bool:
    for item in _annotation_types(annotation):
        if isinstance(item, type):
            if not issubclass(item, _IMMUTABLE):
                return True
        elif isinstance(item, (str, typing.ForwardRef, typing.TypeVar)):
            return True  # not resolved yet, or generic: be safe
    return False


def _check_fields(cls: type[State]) -> None:
    """Refuse field names and nested models that would break the guarantees."""
    for name, info in cls.model_fields.items():
        if name in _RESERVED:
            raise InvalidDefinition(
                f"{label(cls)}.{name}: {name!r} is a method of sk.State; rename the field"
            )
        for kind in _annotation_types(info.annotation):
            if kind is set:
                raise InvalidDefinition(
                    f"{label(cls)}.{name}: a set could be changed in place without notifying "
                    "anyone; declare it frozenset[...] (pydantic accepts sets for it)"
                )
            if (
                isinstance(kind, type)
                and issubclass(kind, BaseModel)
                and not issubclass(kind, State)
                and not kind.model_config.get("frozen")
            ):
                raise InvalidDefinition(
                    f"{label(cls)}.{name}: {label(kind)} is a mutable pydantic "
                    "model, so its fields could change without notifying anyone; make it an "
                    "sk.State (tracked) or give it model_config = ConfigDict(frozen=True)"
                )


def _method_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _install(cls: type[State]) -> None:
    """Turn fields and ``@sk.computed`` methods into reactive descriptors."""
    for name, value in list(vars(cls).items()):
        if isinstance(value, AsyncComputed):
            raise InvalidDefinition(
                f"{label(cls)}.{name}: async computed methods are not supported on a "
                "State; use an sk.action that assigns a field, or a module-level async computed"
            )
        if isinstance(value, Computed) and _method_arity(value._fn) >= 1:
            method = ComputedMethod(cast(Any, value._fn), name, value._equals)
            setattr(cls, name, method)
    for name in cls.model_fields:
        setattr(cls, name, FieldSlot(name))
    cls.__sk_fields__ = frozenset(cls.model_fields)
    cls.__sk_frozen__ = bool(cls.model_config.get("frozen"))
    cls.__sk_guard__ = cls.__sk_frozen__
    cls.__sk_freeze__ = tuple(
        name for name, info in cls.model_fields.items() if _needs_freezing(info.annotation)
    )


def _freeze_fields(inst: State) -> None:
    data = inst.__dict__
    for name in type(inst).__sk_freeze__:
        value = data[name]
        frozen = freeze(value)
        if frozen is not value:
            data[name] = frozen


def _share_frozen_defaults(cls: type[State]) -> None:
    """Give list/dict/set defaults as one shared frozen value.

    pydantic deep-copies a mutable default for every instance; a frozen one
    can be shared, which makes creating an instance several microseconds
    cheaper. The default stays visible in the JSON schema.
    """
    changed = False
    for info in cls.model_fields.values():
        default = info.default
        if type(default) not in (list, dict, set) or callable(info.json_schema_extra):
            continue
        frozen = freeze(default)
        extra = dict(info.json_schema_extra or {})
        extra.setdefault("default", thaw(frozen))
        info.json_schema_extra = extra
        info.default = PydanticUndefined

        def shared(frozen: Any = frozen) -> Any:
            return frozen

        shared.__sk_frozen_default__ = True  # type: ignore[attr-defined]
        info.default_factory = shared
        changed = True
    if changed:
        cls.model_rebuild(force=True, raise_errors=False)


def _wrap_post_init(cls: type[State]) -> None:
    """A subclass's own ``model_post_init`` still gets State's set-up first."""
    own = cls.__dict__.get("model_post_init")
    if own is None or getattr(own, "__sk_wrapped__", False):
        return

    def model_post_init(self: State, context: Any, /) -> None:
        State._sk_setup(self)
        own(self, context)

    model_post_init.__sk_wrapped__ = True  # type: ignore[attr-defined]
    cls.model_post_init = model_post_init  # type: ignore[method-assign]


class State(BaseModel):
    """A pydantic v2 model whose fields are reactive, with one instance per scope.

    Declare the level with ``scope=`` (``"app"`` by default, inherited by
    subclasses); ``Cart.get()`` returns the one instance of the current
    scope chain at that level, made on first use and disposed with the scope.
    ``Cart(...)`` still builds a plain instance that belongs to no scope.

    - Reading a field inside a computed or an effect tracks that field.
    - Assignment validates (``validate_assignment``) and notifies; a refused
      value raises :class:`~statekit.ValidationError` and changes nothing.
    - Lists, dicts and sets are stored frozen (:class:`~statekit.FrozenList`,
      :class:`~statekit.FrozenDict`, ``frozenset``): assign a new value.
    - ``@sk.computed`` methods are cached per instance and recomputed only
      when a field they read changes.
    - ``update(field, fn)`` is the atomic read-modify-write; ``set(**values)``
      writes several fields as one validated change; ``restore(data)`` is the
      inverse of ``model_dump()``.
    - With a backend attached to the app scope (``statekit.backends``), a
      scoped instance's fields live in the backend as JSON, shared by every
      process: the document is named ``"state:" + name`` where ``name=`` is
      the class keyword, by default ``module.qualname`` (see docs/backends.md).

    Example:
        >>> import statekit as sk
        >>> class Cart(sk.State, scope="session"):
        ...     items: list[str] = []
        ...     @sk.computed
        ...     def size(self) -> int:
        ...         return len(self.items)
        >>> with sk.session("s1"):
        ...     cart = Cart.get()
        ...     stop = sk.effect(lambda: print("size", cart.size))
        ...     cart.items = [*cart.items, "apple"]
        ...     Cart.get() is cart
        size 0
        size 1
        True
        >>> stop()
    """

    # ``_sk_link`` is set only on instances bound to a backend (never copied).
    __slots__ = ("__weakref__", "_sk_link", "_sk_nodes", "_sk_scope")

    model_config = ConfigDict(
        validate_assignment=True,
        extra="forbid",
        ignored_types=(Computed, AsyncComputed, ComputedMethod, FieldSlot),
    )

    __sk_definition__: ClassVar[_StateDefinition | None] = None
    __sk_fields__: ClassVar[frozenset[str]] = frozenset()
    __sk_freeze__: ClassVar[tuple[str, ...]] = ()
    __sk_frozen__: ClassVar[bool] = False
    # Frozen, or an instance is bound to a backend: writes take the slow branch.
    __sk_guard__: ClassVar[bool] = False
    __sk_name__: ClassVar[str | None] = None
    __sk_level__: ClassVar[str] = "app"
    __sk_abstract__: ClassVar[bool] = True

    if typing.TYPE_CHECKING:
        _sk_nodes: dict[str, Any] | None
        _sk_scope: Scope | None

    # ------------------------------------------------------------ class set-up

    def __init_subclass__(
        cls,
        scope: str | None = None,
        abstract: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ):
        super().__init_subclass__(**kwargs)
        if scope is not None:
            level_index(scope)  # a clear error for a typo
            cls.__sk_level__ = scope
        cls.__sk_abstract__ = abstract
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidDefinition(f"{label(cls)}: name= is a non-empty string, not {name!r}")
        # Not inherited: a subclass is another document in a backend.
        cls.__sk_name__ = name

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__()
        _check_fields(cls)
        _install(cls)
        _share_frozen_defaults(cls)
        _wrap_post_init(cls)
        cls.__sk_definition__ = _StateDefinition(cls, cls.__sk_level__)
        required = [n for n, f in cls.model_fields.items() if f.is_required()]
        if not cls.__sk_abstract__ and not required:
            _registry[next(_order)] = cls

    def model_post_init(self, context: Any, /) -> None:
        """Set up the reactive side of a new instance (pydantic calls this)."""
        # _sk_setup(), inline: pydantic calls this for every instance made.
        _set(self, "_sk_nodes", None)
        _set(self, "_sk_scope", None)
        if type(self).__sk_freeze__:
            _freeze_fields(self)

    def _sk_setup(self) -> None:
        _set(self, "_sk_nodes", None)
        _set(self, "_sk_scope", None)
        if type(self).__sk_freeze__:  # most classes have nothing to freeze: no call
            _freeze_fields(self)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self).__sk_fields__:
            assign_field(self, name, value)
            return
        attr = inspect.getattr_static(type(self), name, None)
        if isinstance(attr, ComputedMethod):
            attr.__set__(self, value)  # raises the read-only error
        if (
            not name.startswith("_")
            and not hasattr(attr, "__set__")  # a property with a setter, say
            and self.model_config.get("extra") != "allow"
        ):
            known = ", ".join(sorted(type(self).__sk_fields__)) or "none"
            raise ValidationError(
                f"{label(type(self))} has no field {name!r} (fields: {known}); "
                "the state is unchanged",
                model=label(type(self)),
                field=name,
            )
        super().__setattr__(name, value)

    # pydantic copies and unpickles without calling model_post_init
    def __copy__(self) -> Self:
        copied = super().__copy__()
        _set(copied, "_sk_nodes", None)
        _set(copied, "_sk_scope", None)
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        copied = super().__deepcopy__(memo)
        _set(copied, "_sk_nodes", None)
        _set(copied, "_sk_scope", None)
        return copied

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        _set(self, "_sk_nodes", None)
        _set(self, "_sk_scope", None)

    # ------------------------------------------------------------ scoped instances

    @classmethod
    def _sk_definition(cls) -> _StateDefinition:
        definition = cls.__dict__.get("__sk_definition__")
        if definition is None:
            raise InvalidDefinition(
                "sk.State itself has no instance; subclass it: class Cart(sk.State, ...)"
            )
        return cast(_StateDefinition, definition)

    @classmethod
    def get(cls) -> Self:
        """The one instance of this class in the current scope chain, made on first use.

        Raises :class:`~statekit.ScopeError` when no scope of the class's
        level is active, like any other definition.

        Example:
            >>> import statekit as sk
            >>> class Prefs(sk.State, scope="user"):
            ...     lang: str = "en"
            >>> with sk.user("alice"):
            ...     Prefs.get().lang = "fr"
            >>> with sk.user("alice"):
            ...     Prefs.get().lang
            'fr'
        """
        definition = cls.__sk_definition__
        if definition is None or definition.cls is not cls:
            definition = cls._sk_definition()  # raises for sk.State itself
        # Definition._node(), inline: one frame less on every get().
        owner = _current.get().chain[definition._depth]
        cache = definition._cache
        if cache[0] is owner:
            return cache[1]  # type: ignore[no-any-return]  # (typing.cast is a call)
        if owner is None:
            return definition._lookup(owner)  # type: ignore[no-any-return]  # raises
        # Definition._lookup's found-a-scope case, inline (a new session's
        # first get() comes here): the node, then the cache pair.
        node = owner.node(definition)
        definition._cache = (owner, node)
        return node  # type: ignore[return-value]

    @classmethod
    def exists(cls) -> bool:
        """Whether the current scope chain already holds this class's instance.

        Never creates one; ``False`` when no scope of the class's level is active.

        Example:
            >>> import statekit as sk
            >>> class Flags(sk.State, scope="session"):
            ...     beta: bool = False
            >>> with sk.session("s"):
            ...     before = Flags.exists()
            ...     _ = Flags.get()
            ...     before, Flags.exists()
            (False, True)
        """
        owner = _current.get().chain[level_index(cls.__sk_level__)]
        return owner is not None and owner.has(cls._sk_definition())

    @classmethod
    def use(cls, *fields: str) -> Self:
        """In an ``@ft.component``: this session's instance, re-rendering on change.

        FtState's ``use_state()``; see :func:`statekit.flet.use_model` (needs Flet).

        Example:
            >>> import statekit as sk
            >>> class Cart(sk.State, scope="session"):
            ...     items: list[str] = []
            >>> # @ft.component
            >>> # def Badge():
            >>> #     return ft.Text(f"{len(Cart.use().items)} items")
        """
        from .flet import use_model

        return cast(Self, use_model(cls, *fields))

    @classmethod
    def initialize(cls, *classes: type[State]) -> dict[str, State]:
        """Create the instances of every registered State class of the current scope now.

        The FtState contract: call it once where a session starts. Registered
        classes are the subclasses of the class it is called on (all of them
        for ``sk.State.initialize()``) that can make themselves (every field
        has a default) and were not declared ``abstract=True``; pass
        ``classes`` to choose. A class whose level has no active scope is
        skipped (listing it explicitly raises :class:`~statekit.ScopeError`).
        Returns ``{class name: instance}`` (a class whose name is taken by an
        earlier one is keyed by its dotted path).

        Example:
            >>> import statekit as sk
            >>> class AppBase(sk.State, abstract=True): ...
            >>> class Auth(AppBase, scope="session"):
            ...     user_id: str | None = None
            >>> class Theme(AppBase):
            ...     dark: bool = False
            >>> with sk.session("s"):
            ...     sorted(AppBase.initialize())
            ['Auth', 'Theme']
        """
        chain = _current.get().chain
        if classes:
            targets = list(classes)
        else:
            targets = [
                kind
                for kind in list(_registry.values())
                if issubclass(kind, cls) and chain[level_index(kind.__sk_level__)] is not None
            ]
        made: dict[str, State] = {}
        for kind in targets:
            key = kind.__name__
            if key in made:
                key = f"{kind.__module__}.{kind.__qualname__}"
            made[key] = kind.get()
        return made

    # ------------------------------------------------------------ writing

    def update(self, field: str, fn: Callable[[Any], Any]) -> Any:
        """Atomically set ``field`` to ``fn(old)`` (validated) and return the new value.

        ``fn`` runs under the engine lock, so concurrent updates never lose a
        write (``cart.count += 1`` is a read then a write and can). It should
        be quick and must not wait on other threads.

        Example:
            >>> import statekit as sk
            >>> class Counter(sk.State):
            ...     count: int = 0
            >>> c = Counter()
            >>> c.update("count", lambda n: n + 1)
            1
        """
        self._sk_field_kind(field, write=True)
        return write_field(self, field, fn)

    def set(self, **values: Any) -> None:
        """Assign several fields as one change: all validated, or none; one notification.

        Example:
            >>> import statekit as sk
            >>> class Point(sk.State):
            ...     x: int = 0
            ...     y: int = 0
            >>> p = Point()
            >>> p.set(x=1, y=2)
            >>> try:
            ...     p.set(x=5, y="nope")
            ... except sk.ValidationError:
            ...     pass
            >>> p.x, p.y
            (1, 2)
        """
        for name in values:
            self._sk_field_kind(name, write=True)
        assign_many(self, values, None)

    def restore(self, data: Mapping[str, Any] | BaseModel) -> None:
        """Replace every field by those of ``data`` (what ``model_dump()`` returned).

        ``data`` is validated as a whole first (missing fields take their
        defaults); if it is refused nothing changes. Watchers of the fields
        that changed run once.

        Example:
            >>> import statekit as sk
            >>> class Cart(sk.State):
            ...     items: list[str] = []
            >>> a, b = Cart(items=["x"]), Cart()
            >>> b.restore(a.model_dump())
            >>> b.items
            ['x']
        """
        cls = type(self)
        source = data.model_dump() if isinstance(data, BaseModel) else data
        try:
            fresh = _engine.untracked_call(
                lambda: cls.__pydantic_validator__.validate_python(source)
            )
        except pydantic.ValidationError as exc:
            raise validation_error(cls, exc, field=None, action="restore") from exc
        assign_many(self, dict(fresh.__dict__), fresh)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """pydantic's ``model_validate``, raising :class:`~statekit.ValidationError`.

        Example:
            >>> import statekit as sk
            >>> class Cart(sk.State):
            ...     items: list[str] = []
            >>> Cart.model_validate({"items": ["x"]}).items
            ['x']
        """
        try:
            return super().model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise validation_error(cls, exc, field=None, action="creation") from exc

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Self:
        """pydantic's ``model_validate_json``, raising :class:`~statekit.ValidationError`.

        Example:
            >>> import statekit as sk
            >>> class Cart(sk.State):
            ...     items: list[str] = []
            >>> Cart.model_validate_json('{"items": ["x"]}').items
            ['x']
        """
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise validation_error(cls, exc, field=None, action="creation") from exc

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise validation_error(type(self), exc, field=None, action="creation") from exc

    # Not a "custom" __init__ for pydantic: nested State values are then
    # validated by pydantic itself, so their errors keep their location.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    # ------------------------------------------------------------ reading

    def _sk_field_kind(self, name: str, write: bool = False) -> ComputedMethod | None:
        cls = type(self)
        if name in cls.__sk_fields__:
            return None
        attr = inspect.getattr_static(cls, name, None)
        if isinstance(attr, ComputedMethod) and not write:
            return attr
        known = ", ".join(sorted(cls.__sk_fields__)) or "none"
        what = "field" if write else "field or computed method"
        raise ValidationError(
            f"{label(cls)} has no {what} {name!r} (fields: {known})",
            model=label(cls),
            field=name,
        )

    def field(self, name: str) -> FieldRef:
        """A handle on one field or computed method: ``value``, ``set``, ``subscribe``...

        The seam for UI bindings: it behaves like an :class:`~statekit.Atom`
        for that one value.

        Example:
            >>> import statekit as sk
            >>> class Counter(sk.State):
            ...     count: int = 0
            >>> c = Counter()
            >>> c.field("count").set(4); c.count
            4
        """
        return FieldRef(self, name, self._sk_field_kind(name))

    def subscribe(
        self, callback: Callable[[Self], Any], *fields: str, deep: bool = True
    ) -> Callable[[], None]:
        """Call ``callback(instance)`` after each change; return a function that stops it.

        Without ``fields`` any field counts, and with ``deep`` (the default)
        so do the fields of nested State models, in lists and dicts too. The
        callback is not called now, runs once per batch and outside the
        engine lock; its errors go to the error hook. It stops when the
        instance's scope is disposed.

        Example:
            >>> import statekit as sk
            >>> class Cart(sk.State):
            ...     items: list[str] = []
            ...     note: str = ""
            >>> cart = Cart()
            >>> seen = []
            >>> off = cart.subscribe(lambda c: seen.append(list(c.items)), "items")
            >>> cart.note = "ignored"
            >>> cart.items = ["a"]
            >>> off(); seen
            [['a']]
        """
        names = list(fields) if fields else list(type(self).__sk_fields__)
        for name in names:
            self._sk_field_kind(name)
        last: list[Any] | None = None

        def listen() -> None:
            nonlocal last
            seen = [getattr(self, name) for name in names]
            if deep:
                seen.extend(_touch(seen))
            if last is None or _same(last, seen):
                last = seen  # the first run, or a batch that ended where it began
                return
            last = seen
            _engine.untracked_call(lambda: callback(self))

        scope = self._sk_scope or _current.get()
        watcher = start_effect(listen, f"subscriber of {label(type(self))}", scope)
        return lambda: stop_effect(watcher)


def _touch(values: list[Any]) -> list[Any]:
    """Read (and so track) every field of every State found inside ``values``.

    Returns the values read, in a stable order, for change detection.
    """
    found: list[Any] = []
    todo = list(reversed(values))
    while todo:
        item = todo.pop()
        if isinstance(item, State):
            inner = [getattr(item, name) for name in sorted(type(item).__sk_fields__)]
            found.extend(inner)
            todo.extend(reversed(inner))
        elif isinstance(item, (list, tuple)):
            todo.extend(reversed(item))
        elif isinstance(item, dict):
            todo.extend(reversed(list(item.values())))
    return found


def _same(old: list[Any], new: list[Any]) -> bool:
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        if a is b:
            continue
        try:
            if not bool(a == b):
                return False
        except Exception:
            return False
    return True
