"""Binding ``State`` instances to a backend: each one is mirrored by a hidden store copy.

A scoped ``State`` instance (``Cart.get()``) made under an app scope that has
a backend attached keeps its field values in the backend, as the JSON of
``model_dump(mode="json")``. The plumbing is the stores': every ``State``
class gets one hidden :class:`~statekit.Store` (named ``"state:" + name``,
see :func:`store_name`) whose copy in the instance's scope is bound to the
backend like any store copy, so loading, committing with the version check,
re-running on a conflict and following other processes are all the
store link's (``_binding``). This module keeps the instance and that copy in
step both ways:

* a write (assignment, ``update``, ``set``, ``restore``) runs as one commit
  of the copy: the change validates the new values against the model built
  from the copy's current document, so when another process committed first
  it runs again on the fresh values (``update(fn)`` re-runs ``fn``), and a
  refused value commits nothing anywhere;
* every document the copy takes (its own commits, and those of other
  processes, heard through an ``on_patch`` listener outside every lock) is
  validated through the model and mirrored into the instance: the fields
  whose JSON changed get the new values and notify their readers,
  computeds, effects and subscribers like a local write. A stored document
  that does not fit the model is reported to the error hook and the
  defaults are used instead (the next write replaces it).
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _engine, _patch, _paths
from .._model_fields import label, mirror
from .._scope import Scope
from .._store import Store, _StoreState
from ..exceptions import InvalidDefinition, ValidationError
from ._base import dumps, scope_key

if TYPE_CHECKING:
    from .._model import State

__all__ = ["bind_state", "store_name"]

_MISSING = object()
_lock = threading.Lock()
_kinds: weakref.WeakKeyDictionary[type, _Kind] = weakref.WeakKeyDictionary()
_set = object.__setattr__


def store_name(cls: type[State]) -> str:
    """The name of ``cls``'s document in a backend: ``"state:"`` + ``name=`` or module.qualname.

    The name is what two processes must agree on: give ``name=`` when the
    class is defined in a script run as ``__main__`` (whose module name
    differs between the script and a process importing it), or to keep the
    stored data when the class moves.

    Example:
        >>> import statekit as sk
        >>> from statekit.backends import store_name
        >>> class Cart(sk.State, scope="session", name="cart"):
        ...     items: list[str] = []
        >>> store_name(Cart)
        'state:cart'
    """
    name = cls.__dict__.get("__sk_name__")
    return f"state:{name or cls.__module__ + '.' + cls.__qualname__}"


class _Kind:
    """What every bound instance of one class shares: the hidden store and its initial model."""

    __slots__ = ("cls", "fields", "initial", "store")

    def __init__(self, cls: type[State], first: State) -> None:
        self.cls = cls
        self.fields = tuple(cls.model_fields)
        try:
            document = _dump(first)
        except ValidationError as exc:
            raise InvalidDefinition(
                f"{label(cls)} cannot live in a backend: {exc}; "
                "a State bound to a backend is stored as JSON"
            ) from exc
        self.store = Store(document, name=store_name(cls), scope=cls.__sk_level__, history=0)
        # The model of the initial document (what a version-0 copy holds).
        self.initial = copy.copy(first)


def _kind(inst: State) -> _Kind:
    cls = type(inst)
    kind = _kinds.get(cls)
    if kind is None:
        with _lock:
            kind = _kinds.get(cls)
            if kind is None:
                kind = _kinds[cls] = _Kind(cls, inst)
    return kind


def _dump(model: State) -> dict[str, Any]:
    try:
        dumped: dict[str, Any] = _engine.untracked_call(lambda: model.model_dump(mode="json"))
    except Exception as exc:  # pydantic's PydanticSerializationError
        raise ValidationError(
            f"{label(type(model))}: a value cannot be stored as JSON ({exc}); "
            "the state is unchanged",
            model=label(type(model)),
        ) from exc
    return dumped


def _diff(doc: Any, new: dict[str, Any]) -> list[dict[str, Any]]:
    """The ops making the top level of ``doc`` equal to ``new`` (nothing for equal fields)."""
    ops: list[dict[str, Any]] = []
    for key, value in new.items():
        if key not in doc:
            ops.append({"op": "add", "path": _paths.format((key,)), "value": value})
        elif not _patch.json_equal(doc[key], value):
            ops.append({"op": "replace", "path": _paths.format((key,)), "value": value})
    ops.extend({"op": "remove", "path": _paths.format((key,))} for key in doc if key not in new)
    return ops


class StateLink:
    """One instance's tie to its hidden store copy (see the module docstring)."""

    __slots__ = ("copy", "doc", "exact", "inst", "kind", "model", "scope")

    def __init__(self, inst: State, scope: Scope, kind: _Kind, state: _StoreState) -> None:
        self.inst = inst
        self.scope = scope
        self.kind = kind
        self.copy = state
        self.doc: Any = None  # the document the instance mirrors
        self.exact = False  # whether that document fitted the model
        # The last (document, validated model, fitted) made: a document is
        # validated once, whether a write or the mirror needs it first.
        self.model: tuple[Any, Any, bool] = (None, None, False)

    # ------------------------------------------------------------ reading documents

    def model_of(self, doc: Any) -> tuple[State, bool]:
        """The model of ``doc`` (validated, never changed: copy it), and whether it fitted."""
        found = self.model
        if found[0] is doc:
            return found[1], found[2]
        kind = self.kind
        if doc is kind.store._initial:
            model, exact = kind.initial, True
        else:
            model, exact = self._validate(doc)
        self.model = (doc, model, exact)
        return model, exact

    def _validate(self, doc: Any) -> tuple[State, bool]:
        cls = self.kind.cls
        try:
            text = dumps(doc)
            model = _engine.untracked_call(lambda: cls.__pydantic_validator__.validate_json(text))
            return model, True
        except Exception as exc:
            where = scope_key(self.scope)
            _engine.report(
                ValidationError(
                    f"{label(cls)} in {where}: the document stored as {self.kind.store.name!r} "
                    f"does not fit the model ({exc}); the defaults are used until the next write",
                    model=label(cls),
                ),
                f"{label(cls)} loading from the backend",
            )
            return self.kind.initial, False

    # ------------------------------------------------------------ writing

    def write(self, produce: Callable[[State], Any]) -> Any:
        """Commit ``produce(model)`` (it validates its changes into ``model``); return its result.

        ``produce`` runs on a copy of the model of the copy's current
        document, under the copy's lock; again on the fresh document when
        another process committed first.
        """
        result: list[Any] = []
        kind = self.kind

        def change(doc: Any) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
            base, _exact = self.model_of(doc)
            model = copy.copy(base)
            out = produce(model)  # raises ValidationError: nothing is committed
            ops = _diff(doc, _dump(model))
            result[:] = [out]
            if not ops:
                return doc, [], []
            new, applied, inverse = _patch.apply_with_inverse(doc, ops)
            self.model = (new, model, True)
            return new, applied, inverse

        _engine.untracked_call(lambda: self.scope.runner(lambda: kind.store._commit(change)))
        self.sync()
        return result[0]

    # ------------------------------------------------------------ following

    def heard(self, ops: Any, version: int) -> None:
        """The copy's ``on_patch`` listener (outside its lock): mirror what it holds now."""
        self.sync()

    def sync(self) -> None:
        """Make the instance hold the copy's current document (validated), notifying."""
        while True:
            doc = self.copy.head[0]
            if doc is self.doc:
                return
            model, exact = self.model_of(doc)
            if self._take(doc, model, exact):
                return

    def _take(self, doc: Any, model: State, exact: bool) -> bool:
        values = model.__dict__
        with _engine.Batch(), _engine.lock:
            if self.copy.head[0] is not doc:
                return False  # a newer document came in meanwhile: take that one
            old = self.doc
            if old is None or not exact or not self.exact:
                changed = {name: values[name] for name in self.kind.fields}
            else:
                # Copy-on-write documents: an unchanged field is the same object.
                changed = {
                    name: values[name]
                    for name in self.kind.fields
                    if doc.get(name, _MISSING) is not old.get(name, _MISSING)
                }
            current = self.inst.__dict__
            for name, value in list(changed.items()):
                if current.get(name, _MISSING) is value:
                    del changed[name]
            self.doc, self.exact = doc, exact
            mirror(self.inst, changed)
        return True


def bind_state(inst: State, scope: Scope) -> None:
    """Tie ``inst`` (just made in ``scope``, whose app has a backend) to its stored document."""
    kind = _kind(inst)
    state: _StoreState = scope.node(kind.store)  # type: ignore[assignment]  # loads it
    link = StateLink(inst, scope, kind, state)
    # Nobody else can reach the new instance yet and it has no signals: it
    # takes the loaded values without the engine lock (this runs under the
    # scope tree's lock, which a computed creating an instance may wait on
    # while holding the engine's).
    doc = state.head[0]
    model, exact = link.model_of(doc)
    values = model.__dict__
    _set(inst, "__dict__", {**inst.__dict__, **{name: values[name] for name in kind.fields}})
    link.doc, link.exact = doc, exact
    scope.runner(lambda: kind.store.on_patch(link.heard))
    _set(inst, "_sk_link", link)
    type(inst).__sk_guard__ = True
    if state.head[0] is not doc:
        link.sync()  # a commit heard before the listener was in place
