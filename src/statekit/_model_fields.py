"""The reactive plumbing of ``State`` models: field and computed-method slots.

A ``State`` instance keeps its field values where pydantic keeps them (the
instance ``__dict__``), so validation, ``model_dump`` and copying work as in
any pydantic model. Reactivity is added on the side:

- each field name on the class is a data descriptor (:class:`FieldSlot`);
  reading it inside a computed or an effect creates, on first such read, one
  engine signal for that field of that instance and tracks it. Reads outside
  any computed or effect create nothing, so an instance nobody watches costs
  no more memory than a plain pydantic model;
- every write (assignment, ``update``, ``set``, ``restore``) validates, stores
  and notifies under the engine lock, so the ``__dict__`` value and the signal
  value never disagree and concurrent writers never lose an update;
- each ``@sk.computed`` method becomes a :class:`ComputedMethod`: one cached
  engine computed per instance, made on first read.

This module imports pydantic only through ``_model`` (never on ``import
statekit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from . import _engine
from ._engine import ComputedNode, SignalNode
from ._frozen import freeze
from ._scope import Scope
from ._subscribe import subscribe_node
from .exceptions import DisposedError, ReadOnlyError, StatekitError, ValidationError

if TYPE_CHECKING:
    from ._model import State

__all__ = [
    "ComputedMethod",
    "FieldRef",
    "FieldSlot",
    "assign_field",
    "assign_many",
    "computed_node",
    "field_signal",
    "label",
    "mirror",
    "validation_error",
    "write_field",
]

_lock = _engine.lock
_read_signal = _engine.read_signal
_read_computed = _engine.read_computed
_active_node = _engine.active_node
_set = object.__setattr__
_MAX_INPUT = 60  # characters of a refused input shown in an error message


# ---------------------------------------------------------------- nodes


def label(cls: type) -> str:
    """A class's name for messages: its qualified name without ``<locals>`` parts."""
    return cls.__qualname__.rsplit("<locals>.", 1)[-1]


def field_signal(inst: State, name: str) -> SignalNode:
    """The signal of field ``name`` of ``inst``, created on first use."""
    nodes = inst._sk_nodes
    if nodes is not None:
        node = nodes.get(name)
        if node is not None:
            return cast(SignalNode, node)
    with _lock:  # writes hold the lock too: the value copied here is current
        nodes = inst._sk_nodes
        if nodes is None:
            nodes = {}
            _set(inst, "_sk_nodes", nodes)
        node = nodes.get(name)
        if node is None:
            name_ = f"{label(type(inst))}.{name}"
            node = SignalNode(inst.__dict__[name], name_, inst._sk_scope, None)
            nodes[name] = node
        return cast(SignalNode, node)


def computed_node(inst: State, method: ComputedMethod) -> ComputedNode:
    """The per-instance computed of ``method``, created on first use."""
    with _lock:
        nodes = inst._sk_nodes
        if nodes is None:
            nodes = {}
            _set(inst, "_sk_nodes", nodes)
        node = nodes.get(method.name)
        if node is None:
            fn = method.fn
            scope = inst._sk_scope
            name_ = f"{label(type(inst))}.{method.name}"
            runner = scope.runner if scope is not None else None
            node = ComputedNode(lambda: fn(inst), name_, scope, method.equals, runner)
            nodes[method.name] = node
        return cast(ComputedNode, node)


def dispose_nodes(inst: State) -> None:
    """Take every node of ``inst`` out of the graph (its scope is disposed)."""
    with _lock:
        nodes = inst._sk_nodes
        _set(inst, "_sk_nodes", None)
    for node in (nodes or {}).values():
        _engine.dispose_node(node)


# ---------------------------------------------------------------- descriptors


class FieldSlot:
    """The class attribute standing for one field: tracked reads, validated writes.

    Reading it on the class raises ``AttributeError``, as pydantic does for
    fields; that also keeps pydantic from mistaking it for a default value
    when a subclass re-declares the field.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, inst: State | None, owner: type | None = None) -> Any:
        if inst is None:
            raise AttributeError(self.name)
        if _active_node() is not None:
            _read_signal(field_signal(inst, self.name))  # track it
        # The value itself always comes from __dict__: during a write, model
        # validators read the new value there before the signal has it.
        return inst.__dict__[self.name]

    def __set__(self, inst: State, value: Any) -> None:
        assign_field(inst, self.name, value)

    def __delete__(self, inst: State) -> None:
        raise ReadOnlyError(
            f"{label(type(inst))}.{self.name} is a field and cannot be deleted; "
            "assign a new value instead"
        )

    def __repr__(self) -> str:
        return f"<field {self.name!r}>"


class ComputedMethod:
    """A ``@sk.computed`` method: cached per instance, recomputed when what it read changes."""

    def __init__(self, fn: Callable[[Any], Any], name: str, equals: Any) -> None:
        self.fn = fn
        self.name = name
        self.equals = equals
        self.__doc__ = getattr(fn, "__doc__", None)

    def __get__(self, inst: State | None, owner: type | None = None) -> Any:
        if inst is None:
            return self
        nodes = inst._sk_nodes
        node = nodes.get(self.name) if nodes is not None else None
        if node is None:
            node = computed_node(inst, self)
        return _read_computed(node)

    def __set__(self, inst: State, value: Any) -> None:
        raise ReadOnlyError(
            f"{label(type(inst))}.{self.name} is computed from other fields; "
            "assign those fields instead"
        )

    def __repr__(self) -> str:
        return f"<computed method {self.name!r}>"


# ---------------------------------------------------------------- writing


def _guarded(inst: State, name: str) -> Any:
    """The slow branch of :func:`_check_writable`: refuse, or return the backend link.

    A class is "guarded" when it is frozen or one of its instances is bound
    to a backend (``statekit.backends._state``); unguarded classes never get
    here, so the no-backend path costs nothing more.
    """
    _refuse(inst, name)
    link = getattr(inst, "_sk_link", None)  # the slot is unset on unbound instances
    if link is not None:
        active = _active_node()
        if isinstance(active, ComputedNode):
            raise StatekitError(
                f"computed {active.name!r} tried to write {label(type(inst))}.{name}: "
                "computed values must not have side effects (use an effect or an action)"
            )
    return link


def _refuse(inst: State, name: str) -> None:
    scope = inst._sk_scope
    if scope is not None and scope.disposed:
        raise DisposedError(
            f"{label(type(inst))} of {scope!r} is disposed; {name!r} cannot be written"
        )
    if inst.model_config.get("frozen"):
        raise ValidationError(
            f"{label(type(inst))} is frozen (model_config frozen=True): {name!r} cannot be "
            "assigned; the state is unchanged",
            model=label(type(inst)),
            field=name,
        )


def _check_writable(inst: State, name: str) -> Any:
    """Refuse a write from a computed or to a disposed instance; tell if tracking is on.

    Returns ``False`` (untracked), ``True`` (inside an effect), or, for an
    instance bound to a backend, its link: the write goes through that.
    """
    scope = inst._sk_scope
    if (scope is not None and scope.disposed) or type(inst).__sk_guard__:
        link = _guarded(inst, name)
        if link is not None:
            return link
    active = _active_node()
    if active is None:
        return False
    if isinstance(active, ComputedNode):
        raise StatekitError(
            f"computed {active.name!r} tried to write {label(type(inst))}.{name}: "
            "computed values must not have side effects (use an effect or an action)"
        )
    return True


def _validate_one(inst: State, name: str, value: Any) -> Any:
    """Validate and store ``value`` in field ``name`` (lock held); return what is stored.

    On failure everything is put back as it was: pydantic replaces
    ``__dict__`` before a model ``after`` validator runs, so a refusal there
    would otherwise leave the refused value in place.
    """
    old_dict = inst.__dict__
    fields_set = inst.__pydantic_fields_set__
    was_set = name in fields_set
    try:
        inst.__pydantic_validator__.validate_assignment(inst, name, value)
    except Exception as exc:
        _set(inst, "__dict__", old_dict)
        if not was_set:
            fields_set.discard(name)
        raise validation_error(
            type(inst), exc, field=name, action=f"{name} = {_show(value)}"
        ) from exc
    new_dict = inst.__dict__
    new = new_dict[name]
    stored = freeze(new)
    old = old_dict[name]
    if stored is not old:
        try:
            same = bool(old == stored)
        except Exception:
            same = False
        if same:
            stored = old  # an equal value: keep the old object, nothing to notify
    if stored is not new:
        new_dict[name] = stored
    return stored


def assign_field(inst: State, name: str, value: Any) -> None:
    """``inst.<name> = value``: validate, store, notify (the hot path of assignment)."""
    tracking = _check_writable(inst, name)
    if tracking:
        if tracking is not True:  # bound to a backend
            tracking.write(lambda model: _validate_one(model, name, value))
            return
        _engine.untracked_call(lambda: _write(inst, name, lambda _old: value))
        return
    nodes = inst._sk_nodes
    if nodes is None or name not in nodes:
        with _lock:
            nodes = inst._sk_nodes
            if nodes is None or name not in nodes:  # nobody tracks it: nothing to notify
                _validate_one(inst, name, value)
                return
    _engine.modify_signal(nodes[name], lambda _old: _validate_one(inst, name, value))


def write_field(inst: State, name: str, compute: Callable[[Any], Any]) -> Any:
    """Set field ``name`` to ``compute(old)``, validated; notify; return the stored value.

    ``compute`` runs under the engine lock, which makes this the atomic
    read-modify-write path (``State.update``).
    """
    tracking = _check_writable(inst, name)
    if tracking:
        if tracking is not True:  # bound to a backend: ``compute`` re-runs on a conflict
            return tracking.write(
                lambda model: _validate_one(model, name, compute(model.__dict__[name]))
            )
        # Inside an effect: what validators and ``compute`` read is not a
        # dependency of that effect.
        return _engine.untracked_call(lambda: _write(inst, name, compute))
    return _write(inst, name, compute)


def _write(inst: State, name: str, compute: Callable[[Any], Any]) -> Any:
    nodes = inst._sk_nodes
    node = nodes.get(name) if nodes is not None else None
    if node is None:
        with _lock:
            nodes = inst._sk_nodes
            node = nodes.get(name) if nodes is not None else None
            if node is None:  # nobody tracks this field: no signal to notify
                return _validate_one(inst, name, compute(inst.__dict__[name]))
    return _engine.modify_signal(
        node,
        lambda old: _validate_one(inst, name, compute(old)),
    )


def assign_many(inst: State, changes: dict[str, Any], replace: State | None) -> None:
    """Write several fields as one change: all validated or none; one notification.

    ``replace`` (from ``restore``) is a fully validated instance whose
    fields and ``model_fields_set`` take the place of the current ones;
    otherwise each of ``changes`` is validated in turn against the model,
    and the first refusal puts every field back.
    """
    tracking: Any = False
    for name in changes:
        tracking = _check_writable(inst, name)
    if tracking is not True and tracking:  # bound to a backend
        tracking.write(lambda model: _assign_many(model, changes, replace))
        return
    if tracking:
        _engine.untracked_call(lambda: _assign_many(inst, changes, replace))
    else:
        _assign_many(inst, changes, replace)


def _assign_many(inst: State, changes: dict[str, Any], replace: State | None) -> None:
    with _engine.Batch(), _lock:
        old_dict = inst.__dict__
        fields_set = set(inst.__pydantic_fields_set__)
        if replace is not None:
            _set(inst, "__dict__", dict(replace.__dict__))
            _set(inst, "__pydantic_fields_set__", set(replace.__pydantic_fields_set__))
        else:
            try:
                for name, value in changes.items():
                    _validate_one(inst, name, value)
            except ValidationError:
                _set(inst, "__dict__", old_dict)
                _set(inst, "__pydantic_fields_set__", fields_set)
                raise
        nodes = inst._sk_nodes
        if nodes:
            new_dict = inst.__dict__
            for name, node in list(nodes.items()):
                if isinstance(node, SignalNode):
                    _engine.write_signal(node, new_dict[name])


def mirror(inst: State, values: dict[str, Any]) -> None:
    """Put already validated ``values`` in ``inst`` and notify (engine lock held, batched).

    How an instance bound to a backend takes a commit: the values come from
    the backend's document, validated through the model.
    """
    if not values:
        return
    new_dict = dict(inst.__dict__)
    new_dict.update(values)
    _set(inst, "__dict__", new_dict)
    nodes = inst._sk_nodes
    if nodes:
        for name, value in values.items():
            node = nodes.get(name)
            if isinstance(node, SignalNode):
                _engine.write_signal(node, value)


# ---------------------------------------------------------------- errors


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT else text[: _MAX_INPUT - 3] + "..."


def validation_error(
    cls: type, exc: Exception, *, field: str | None, action: str
) -> ValidationError:
    """A statekit ValidationError naming the model, the field and what was wrong."""
    model = label(cls)
    details: list[Any] = []
    lines: list[str] = []
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            details = list(errors(include_url=False))
        except TypeError:
            details = list(errors())
    for error in details:
        loc = ".".join(str(part) for part in error.get("loc", ())) or (field or "")
        where = f"{model}.{loc}" if loc else model
        line = f"{where}: {error.get('msg', 'invalid')}"
        if error.get("type") not in {"missing", "extra_forbidden"} or loc == "":
            line += f" (got {_show(error.get('input'))})"
        lines.append(line)
    if not lines:
        lines.append(f"{model}{'.' + field if field else ''}: {exc}")
    outcome = "nothing was created" if action == "creation" else "the state is unchanged"
    message = f"{model}: {action} refused; {outcome}\n  " + "\n  ".join(lines)
    return ValidationError(message, model=model, field=field, errors=details)


# ---------------------------------------------------------------- handles


class FieldRef:
    """One field (or computed method) of one ``State`` instance, as a handle.

    This is the seam for UI bindings and other code that wants a single
    reactive value rather than the whole model: it reads, writes and
    subscribes like an :class:`~statekit.Atom`. Get one with
    ``instance.field(name)``.

    Example:
        >>> import statekit as sk
        >>> class Counter(sk.State):
        ...     count: int = 0
        >>> ref = Counter().field("count")
        >>> seen = []
        >>> off = ref.subscribe(seen.append)
        >>> ref.set(2); ref.update(lambda n: n + 1)
        3
        >>> off(); seen, ref.value
        ([2, 3], 3)
    """

    __slots__ = ("_computed", "instance", "name")

    def __init__(self, instance: State, name: str, computed: ComputedMethod | None) -> None:
        self.instance = instance
        self.name = name
        self._computed = computed

    def _node(self) -> Any:
        if self._computed is not None:
            return computed_node(self.instance, self._computed)
        return field_signal(self.instance, self.name)

    @property
    def value(self) -> Any:
        """The current value (tracked inside computeds and effects)."""
        return getattr(self.instance, self.name)

    @value.setter
    def value(self, new: Any) -> None:
        self.set(new)

    def get(self) -> Any:
        """The current value (tracked), like ``.value``."""
        return getattr(self.instance, self.name)

    def peek(self) -> Any:
        """The current value, without tracking it."""
        return _engine.untracked_call(lambda: getattr(self.instance, self.name))

    def set(self, new: Any) -> None:
        """Validate and assign ``new`` (like ``instance.<name> = new``)."""
        setattr(self.instance, self.name, new)

    def update(self, fn: Callable[[Any], Any]) -> Any:
        """Atomically set the field to ``fn(old)``; return the stored value."""
        if self._computed is not None:
            self.set(None)  # raises the read-only error
        return write_field(self.instance, self.name, fn)

    def subscribe(self, callback: Callable[[Any], Any]) -> Callable[[], None]:
        """Call ``callback(value)`` after each change; return a function that stops it."""
        node = self._node()
        read = _read_computed if self._computed is not None else _read_signal
        return subscribe_node(node, read, callback)

    def __repr__(self) -> str:
        return f"<FieldRef {label(type(self.instance))}.{self.name}>"


def owner_scope(inst: State) -> Scope | None:
    """The scope ``inst`` lives in (``None`` for an instance made directly)."""
    return inst._sk_scope
