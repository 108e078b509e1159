"""JSON Patch (RFC 6902) and persistent updates over frozen documents.

A store's document is a tree of :class:`~statekit.FrozenDict`,
:class:`~statekit.FrozenList` and JSON scalars. Nothing here ever changes a
document in place: each update returns a new document that rebuilds only the
containers on the path to the change and shares everything else with the old
one (copy-on-write), so an update costs O(depth x width of the containers on
the path) and the old document stays a valid snapshot forever. That is also
what makes :func:`apply` atomic for free: if operation 3 fails, the caller
still holds the untouched input.

Three things the store builds on:

* :func:`apply` returns the new document *and* the operations as applied,
  normalized (canonical paths, ``-`` resolved to the concrete index, frozen
  values, no ``test`` ops): the change stream that ``on_patch`` listeners,
  the sync server and the Redis backend replay. It is recorded as the
  changes happen; nothing here ever diffs two documents.
* :func:`inverse` (and :func:`apply_with_inverse`, which computes it during
  the same pass) gives the operations that undo a change, for undo/redo.
* every inserted value is checked to be JSON (``None``, ``bool``, ``int``,
  finite ``float``, ``str``, lists, dicts with string keys) and frozen, so a
  document always round-trips through ``json``.

``make compile`` compiles this module with the engine (docs/engine.md,
"Compiled mode"). Compiled, annotations are checked when values are assigned:
a variable that may hold any JSON value (``null`` included) is ``Any``, even
where its first assignment is a dict.

Example:
    >>> from statekit import _patch
    >>> doc = _patch.freeze_json({"todo": []})
    >>> new, ops = _patch.apply(doc, [{"op": "add", "path": "/todo/-", "value": "milk"}])
    >>> new, ops, doc
    ({'todo': ['milk']}, [{'op': 'add', 'path': '/todo/0', 'value': 'milk'}], {'todo': []})
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from . import _paths
from ._frozen import FrozenDict, FrozenList
from .exceptions import PatchError, PatchTestFailed, PathError

__all__ = [
    "add_in",
    "replace_one",
    "apply",
    "apply_with_inverse",
    "freeze_json",
    "inverse",
    "json_equal",
    "remove_in",
    "set_in",
]

Op = dict[str, Any]

_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_WITH_VALUE = frozenset({"add", "replace", "test"})
_WITH_FROM = frozenset({"move", "copy"})


class _Missing:
    """Marks "no value here" (``None`` is a JSON value, so it cannot)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


# --------------------------------------------------------------------- values


class _NotJson(Exception):
    """Internal: a value is not JSON; ``parts`` locate it inside the value."""

    def __init__(self, parts: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.parts = parts
        self.reason = reason


class _Frame:
    """One container being frozen by :func:`_freeze`'s explicit stack."""

    __slots__ = ("key", "keys", "out", "pos", "same", "source", "values")

    def __init__(self, source: Any, key: str) -> None:
        self.source = source
        self.key = key  # this container's key in its parent, for error paths
        if isinstance(source, dict):
            keys: list[Any] = list(source)  # str once checked, just below
            for k in keys:
                if not isinstance(k, str):
                    raise _NotJson((), f"object key of type {type(k).__name__} is not a string")
            self.keys: list[str] | None = keys
            self.values: list[Any] = list(source.values())
        else:
            self.keys = None
            self.values = list(source)
        self.out: list[Any] = []
        self.pos = 0
        # An already-frozen container whose children all came back unchanged
        # is reused as is: re-inserting part of a document copies nothing.
        self.same = type(source) is FrozenDict or type(source) is FrozenList


def _freeze(value: Any) -> Any:
    """Check that ``value`` is JSON and return it frozen (raises _NotJson).

    Iterative (an explicit stack, not recursion) because the depth of a value
    is chosen by whoever sends it.
    """
    if not _is_container(value):
        return value
    stack = [_Frame(value, "")]
    on_stack = {id(value)}  # a container inside itself would never end
    result: Any = None
    while stack:
        frame = stack[-1]
        values, out, pos = frame.values, frame.out, frame.pos
        if pos == 0 and _PLAIN.issuperset(map(type, values)):
            # All strings, ints, bools and nulls (checked in C): nothing to visit.
            out.extend(values)
            pos = len(values)
        child: Any = None
        # The tight loop takes the common case (scalars) without a call.
        while pos < len(values):
            child = values[pos]
            pos += 1
            kind = type(child)
            if kind in _PLAIN or (kind is float and math.isfinite(child)):
                out.append(child)
                continue
            break
        else:
            child = _DONE
        frame.pos = pos
        if child is not _DONE:
            key = frame.keys[pos - 1] if frame.keys is not None else str(pos - 1)
            try:
                if not _is_container(child):
                    out.append(child)  # a str/int/float subclass
                    continue
                if id(child) in on_stack:
                    raise _NotJson((), "the value contains itself")
                child_frame = _Frame(child, key)
            except _NotJson as exc:
                raise _NotJson(_where(stack, key), exc.reason) from None
            stack.append(child_frame)
            on_stack.add(id(child))
            continue
        stack.pop()
        on_stack.discard(id(frame.source))
        if frame.same:
            built = frame.source
        elif frame.keys is not None:
            built = FrozenDict(zip(frame.keys, out, strict=True))
        else:
            built = FrozenList(out)
        if stack:
            parent = stack[-1]
            if built is not parent.values[parent.pos - 1]:
                parent.same = False
            parent.out.append(built)
        else:
            result = built
    return result


_PLAIN = frozenset({str, int, bool, type(None)})
_DONE: Any = object()


def _where(stack: list[_Frame], key: str) -> tuple[str, ...]:
    # stack[0] is the value itself, whose key is meaningless.
    return (*(frame.key for frame in stack[1:]), key)


def _is_container(value: Any) -> bool:
    """True for a list or dict, False for a JSON scalar; raises otherwise."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return False
    if kind is float:
        if not math.isfinite(value):
            raise _NotJson((), f"{value!r} is not a JSON number")
        return False
    if isinstance(value, (dict, list)):
        return True
    # Subclasses (str enums, numpy floats…) serialize as their base type.
    if isinstance(value, (str, int)):
        return False
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJson((), f"{float(value)!r} is not a JSON number")
        return False
    hint = " (use a list)" if isinstance(value, (tuple, set, frozenset)) else ""
    raise _NotJson((), f"{type(value).__name__} is not a JSON type{hint}")


def freeze_json(value: Any, path: str | Sequence[str | int] = "") -> Any:
    """Return ``value`` frozen, after checking that it is JSON.

    Plain lists and dicts (and their subclasses) become frozen copies;
    frozen containers that are already JSON are reused without copying.
    ``path`` only serves the error message: where ``value`` is going.

    Example:
        >>> from statekit._patch import freeze_json
        >>> type(freeze_json({"a": [1, 2.5, None]})["a"]).__name__
        'FrozenList'
        >>> freeze_json({"a": {"b": {1, 2}}}, "/x")
        Traceback (most recent call last):
        ...
        statekit.exceptions.PatchError: value at '/x/a/b' is not JSON: set is not a JSON type...
    """
    try:
        return _freeze(value)
    except _NotJson as exc:
        where = _paths.format(_paths.parse(path) + exc.parts)
        raise PatchError(f"value at {where!r} is not JSON: {exc.reason}") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality, as RFC 6902 ``test`` defines it.

    Unlike ``==``, booleans are not numbers (``True`` differs from ``1``);
    like JSON, ``1`` equals ``1.0`` and objects ignore key order.

    Example:
        >>> from statekit._patch import json_equal
        >>> json_equal({"a": [1, True]}, {"a": [1.0, True]}), json_equal(True, 1)
        (True, False)
    """
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if x is y:
            continue
        kind = _json_type(x)
        if kind != _json_type(y):
            return False
        if kind == "object":
            if x.keys() != y.keys():
                return False
            pending.extend((x[key], y[key]) for key in x)
        elif kind == "array":
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


# ------------------------------------------------------- copy-on-write updates
#
# ``owned`` maps id() to the containers created during the current apply()
# call. Nobody else can hold a reference to them yet, so a later operation of
# the same patch may change them in place instead of copying them again: ten
# appends to one list copy it once, not ten times. The dict keeps them alive,
# so an id can never be reused by another object while it is in the map.
# Whenever a container becomes reachable from two places (copy), or is put in
# an inverse op while still in the document (move), the map is cleared.

_Owned = dict[int, Any]


def _locate(doc: Any, parts: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """The containers from ``doc`` down to the parent of ``parts``, and the
    concrete key (str or int) of each next one inside it."""
    chain = [doc]
    keys: list[Any] = []
    node = doc
    for i in range(len(parts) - 1):
        part = parts[i]
        node = _paths.step(node, part, parts)
        keys.append(int(part) if isinstance(chain[-1], list) else part)
        chain.append(node)
    return chain, keys


def _rebuild(chain: list[Any], keys: list[Any], parent: Any, owned: _Owned) -> Any:
    """Put the new ``parent`` (replacing ``chain[-1]``) back into the document."""
    child = parent
    for depth in range(len(chain) - 2, -1, -1):
        if child is chain[depth + 1]:
            return chain[0]  # changed in place (or not at all): nothing above moves
        child = _with_child(chain[depth], keys[depth], child, owned)
    return child


def _with_child(container: Any, key: Any, child: Any, owned: _Owned) -> Any:
    if id(container) in owned:
        if isinstance(container, dict):
            dict.__setitem__(container, key, child)
        else:
            list.__setitem__(container, key, child)
        return container
    new = _copy(container, owned)
    if isinstance(new, dict):
        dict.__setitem__(new, key, child)
    else:
        list.__setitem__(new, key, child)
    return new


def _copy(container: Any, owned: _Owned) -> Any:
    new: Any = FrozenDict(container) if isinstance(container, dict) else FrozenList(container)
    owned[id(new)] = new
    return new


def _writable(container: Any, owned: _Owned) -> Any:
    return container if id(container) in owned else _copy(container, owned)


def _no_container(parts: Sequence[str], node: Any) -> PathError:
    return PathError(_paths.format(parts), parts[-1], f"cannot index into {_paths.type_name(node)}")


def missing_key(parts: Sequence[str]) -> PathError:
    """The PathError of a ``replace`` whose key is not in its object."""
    return PathError(_paths.format(parts), parts[-1], f"no key {parts[-1]!r} in object")


def _add(
    doc: Any, parts: tuple[str, ...], value: Any, owned: _Owned
) -> tuple[Any, tuple[str, ...], Any]:
    """RFC 6902 add. Returns (new doc, concrete parts, value it replaced or _MISSING)."""
    if not parts:
        return value, parts, doc
    chain, keys = _locate(doc, parts)
    parent, last = chain[-1], parts[-1]
    if isinstance(parent, dict):
        old = parent.get(last, _MISSING)
        if old is not _MISSING and _unchanged(old, value):
            return doc, parts, old
        new = _writable(parent, owned)
        dict.__setitem__(new, last, value)
        return _rebuild(chain, keys, new, owned), parts, old
    if isinstance(parent, list):
        at = _paths.index(parts, last, len(parent), end_ok=True)
        new = _writable(parent, owned)
        list.insert(new, at, value)
        concrete = parts if last != "-" else (*parts[:-1], str(at))
        return _rebuild(chain, keys, new, owned), concrete, _MISSING
    raise _no_container(parts, parent)


def _remove(doc: Any, parts: tuple[str, ...], owned: _Owned) -> tuple[Any, Any]:
    """RFC 6902 remove. Returns (new doc, removed value)."""
    if not parts:
        raise _Refused("cannot remove the whole document (replace it instead)")
    chain, keys = _locate(doc, parts)
    parent, last = chain[-1], parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise missing_key(parts)
        old = parent[last]
        new = _writable(parent, owned)
        dict.__delitem__(new, last)
    elif isinstance(parent, list):
        at = _paths.index(parts, last, len(parent), end_ok=False)
        old = parent[at]
        new = _writable(parent, owned)
        list.__delitem__(new, at)
    else:
        raise _no_container(parts, parent)
    return _rebuild(chain, keys, new, owned), old


def _replace(
    doc: Any, parts: tuple[str, ...], value: Any, owned: _Owned, *, add_key: bool = False
) -> tuple[Any, Any]:
    """RFC 6902 replace (``add_key``: a missing object key is added, as
    :func:`set_in` does). Returns (new doc, replaced value or _MISSING)."""
    if not parts:
        return value, doc
    chain, keys = _locate(doc, parts)
    parent, last = chain[-1], parts[-1]
    if isinstance(parent, dict):
        old = parent.get(last, _MISSING)
        if old is _MISSING and not add_key:
            raise missing_key(parts)
        if _unchanged(old, value):
            return doc, old
        new = _writable(parent, owned)
        dict.__setitem__(new, last, value)
    elif isinstance(parent, list):
        at = _paths.index(parts, last, len(parent), end_ok=False)
        old = parent[at]
        if _unchanged(old, value):
            return doc, old
        new = _writable(parent, owned)
        list.__setitem__(new, at, value)
    else:
        raise _no_container(parts, parent)
    return _rebuild(chain, keys, new, owned), old


def _unchanged(old: Any, new: Any) -> bool:
    """Whether replacing ``old`` by ``new`` changes nothing (so nothing is copied).

    Containers only by identity (comparing them would cost their size);
    scalars by value and exact type, so ``True`` never stands for ``1``.
    """
    return old is new or (type(old) is type(new) and type(new) in _SCALAR and old == new)


_SCALAR = frozenset({str, int, float, bool})


class _Refused(Exception):
    """Internal: an operation that is well-formed but cannot be applied."""


def _value_error(parts: tuple[str, ...], exc: _NotJson) -> PatchError:
    where = _paths.format(parts + exc.parts)
    return PatchError(f"value at {where!r} is not JSON: {exc.reason}")


def set_in(doc: Any, parts: Sequence[str], value: Any) -> Any:
    """Return a new document with ``value`` at ``parts``.

    The path must exist, except that a new key may be added to an existing
    object; no intermediate container is ever created, and ``-`` is refused
    (use :func:`add_in` to insert into an array). ``value`` is checked to be
    JSON and frozen; ``doc`` is not changed.

    Example:
        >>> from statekit._patch import freeze_json, set_in
        >>> doc = freeze_json({"user": {"name": "ann"}, "tags": ["a"]})
        >>> set_in(doc, ("user", "email"), "a@b.c")
        {'user': {'name': 'ann', 'email': 'a@b.c'}, 'tags': ['a']}
        >>> set_in(doc, ("tags", "0"), "b")["tags"], doc["tags"]
        (['b'], ['a'])
        >>> set_in(doc, ("profile", "age"), 3)
        Traceback (most recent call last):
        ...
        statekit.exceptions.PathError: path '/profile/age': part 'profile': no key 'profile'...
    """
    parts = tuple(parts)
    try:
        frozen = _freeze(value)
    except _NotJson as exc:
        raise _value_error(parts, exc) from None
    return _replace(doc, parts, frozen, {}, add_key=True)[0]


def replace_one(doc: Any, parts: tuple[str, ...], value: Any) -> tuple[Any, list[Op], list[Op]]:
    """One RFC 6902 ``replace`` of an already frozen JSON value, without the patch machinery.

    Returns ``(new_doc, applied_ops, undo_ops)`` like :func:`apply_with_inverse`,
    or ``doc`` and no ops if nothing changes. ``parts`` must exist (PathError
    otherwise).

    Example:
        >>> from statekit._patch import freeze_json, replace_one
        >>> new, ops, undo = replace_one(freeze_json({"a": {"b": 1}}), ("a", "b"), 2)
        >>> new, ops
        ({'a': {'b': 2}}, [{'op': 'replace', 'path': '/a/b', 'value': 2}])
        >>> undo
        [{'op': 'replace', 'path': '/a/b', 'value': 1}]
    """
    new, _, record = replace_lazy(doc, parts, value)
    if record is None:
        return doc, [], []
    ops, undo = expand_replace(record)
    return new, ops, undo


Replace = tuple[tuple[str, ...], Any, Any]  # (parts, new value, old value)


def replace_lazy(doc: Any, parts: tuple[str, ...], value: Any) -> tuple[Any, None, Replace | None]:
    """:func:`replace_one` that records ``(parts, value, old)`` instead of building ops.

    The store's ``set`` and ``update``: most writes never need their ops as
    dicts (no patch listener, no undo), so :func:`expand_replace` builds them
    only when asked. Returns ``(new_doc, None, record)``, or ``(doc, None,
    None)`` if nothing changes.

    Example:
        >>> from statekit._patch import expand_replace, freeze_json, replace_lazy
        >>> new, _, record = replace_lazy(freeze_json({"a": 1}), ("a",), 2)
        >>> new, record, expand_replace(record)[1]
        ({'a': 2}, (('a',), 2, 1), [{'op': 'replace', 'path': '/a', 'value': 1}])
    """
    new: Any  # a document: the whole-document replace (parts ()) may make it null
    if len(parts) == 1 and type(doc) is FrozenDict:
        # A top-level key, the common case, inlined: one lookup, one copy.
        key = parts[0]
        old = dict.get(doc, key, _MISSING)
        if old is _MISSING:
            raise missing_key(parts)
        if old is value or (type(old) is type(value) and type(value) in _SCALAR and old == value):
            return doc, None, None
        new = _dict_new(FrozenDict)
        _dict_update(new, doc)  # a plain dict copy (FrozenDict(doc) takes a slower path)
        dict.__setitem__(new, key, value)
    else:
        new, old = _replace(doc, parts, value, {})
        if new is doc:
            return doc, None, None
    return new, None, (parts, value, old)


def expand_replace(record: Replace) -> tuple[list[Op], list[Op]]:
    """The ops and undo ops of a :func:`replace_lazy` record."""
    parts, value, old = record
    path = _paths.format(parts)
    return (
        [FrozenDict(op="replace", path=path, value=value)],
        [FrozenDict(op="replace", path=path, value=old)],
    )


_dict_new = dict.__new__
_dict_update = dict.update


def add_in(doc: Any, parts: Sequence[str], value: Any) -> Any:
    """Return a new document after an RFC 6902 ``add`` of ``value`` at ``parts``.

    In an object this sets the key (new or not); in an array it inserts
    before the index, or appends for ``-``.

    Example:
        >>> from statekit._patch import add_in, freeze_json
        >>> doc = freeze_json({"xs": [1, 3]})
        >>> add_in(doc, ("xs", "1"), 2), add_in(doc, ("xs", "-"), 4)
        ({'xs': [1, 2, 3]}, {'xs': [1, 3, 4]})
    """
    parts = tuple(parts)
    try:
        frozen = _freeze(value)
    except _NotJson as exc:
        raise _value_error(parts, exc) from None
    return _add(doc, parts, frozen, {})[0]


def remove_in(doc: Any, parts: Sequence[str]) -> Any:
    """Return a new document without the value at ``parts`` (which must exist).

    Example:
        >>> from statekit._patch import freeze_json, remove_in
        >>> remove_in(freeze_json({"a": 1, "xs": [1, 2]}), ("xs", "0"))
        {'a': 1, 'xs': [2]}
    """
    try:
        return _remove(doc, tuple(parts), {})[0]
    except _Refused as exc:
        raise PatchError(f"path '': {exc}") from None


# ---------------------------------------------------------------- JSON Patch


def apply(doc: Any, ops: Iterable[Mapping[str, Any]]) -> tuple[Any, list[Op]]:
    """Apply a JSON Patch atomically; return ``(new_doc, applied_ops)``.

    ``doc`` is never changed: on any failure the exception propagates
    (:class:`~statekit.PatchError` for a malformed operation or a non-JSON
    value, :class:`~statekit.PathError` for a path that does not resolve,
    :class:`~statekit.PatchTestFailed` for a failed ``test``), naming the
    operation's index and path, and nothing was applied.

    ``applied_ops`` are the changes as made, as frozen dicts: canonical
    paths, ``-`` replaced by the concrete index, frozen values, no ``test``
    ops and no ``move`` onto itself. Applying them to ``doc`` gives
    ``new_doc`` again.

    Example:
        >>> from statekit._patch import apply, freeze_json
        >>> doc = freeze_json({"foo": ["all", "grass", "cows", "eat"]})
        >>> new, ops = apply(doc, [
        ...     {"op": "test", "path": "/foo/0", "value": "all"},
        ...     {"op": "move", "from": "/foo/1", "path": "foo/-"},
        ... ])
        >>> new["foo"], ops
        (['all', 'cows', 'eat', 'grass'], [{'op': 'move', 'from': '/foo/1', 'path': '/foo/3'}])
        >>> apply(doc, [{"op": "remove", "path": "/bar"}])
        Traceback (most recent call last):
        ...
        statekit.exceptions.PathError: path '/bar': part 'bar': no key 'bar' in object (op 0:...)
    """
    new, applied, _ = _run(doc, ops, want_inverse=False)
    return new, applied


def apply_with_inverse(
    doc: Any, ops: Iterable[Mapping[str, Any]]
) -> tuple[Any, list[Op], list[Op]]:
    """Like :func:`apply`, plus the ops that undo the whole patch, in order.

    Applying the third result to ``new_doc`` gives back (a document equal
    to) ``doc``. One pass: cheaper than calling :func:`inverse` per op.

    Example:
        >>> from statekit._patch import apply, apply_with_inverse, freeze_json
        >>> doc = freeze_json({"a": 1, "xs": [1]})
        >>> new, ops, undo = apply_with_inverse(doc, [
        ...     {"op": "replace", "path": "/a", "value": 2},
        ...     {"op": "add", "path": "/xs/-", "value": 2},
        ... ])
        >>> undo
        [{'op': 'remove', 'path': '/xs/1'}, {'op': 'replace', 'path': '/a', 'value': 1}]
        >>> apply(new, undo)[0] == doc
        True
    """
    return _run(doc, ops, want_inverse=True)


def inverse(doc_before: Any, op: Mapping[str, Any]) -> list[Op]:
    """Return the ops that undo ``op``, given the document it was applied to.

    Example:
        >>> from statekit._patch import freeze_json, inverse
        >>> doc = freeze_json({"a": {"b": 1}, "xs": ["x", "y"]})
        >>> inverse(doc, {"op": "remove", "path": "/a/b"})
        [{'op': 'add', 'path': '/a/b', 'value': 1}]
        >>> inverse(doc, {"op": "add", "path": "/xs/-", "value": "z"})
        [{'op': 'remove', 'path': '/xs/2'}]
        >>> for undo in inverse(doc, {"op": "move", "from": "/xs/0", "path": "/a/b"}):
        ...     print(undo)
        {'op': 'replace', 'path': '/a/b', 'value': 1}
        {'op': 'add', 'path': '/xs/0', 'value': 'x'}
    """
    return _run(doc_before, [op], want_inverse=True)[2]


def _run(
    doc: Any, ops: Iterable[Mapping[str, Any]], *, want_inverse: bool
) -> tuple[Any, list[Op], list[Op]]:
    if type(ops) is not list and (
        isinstance(ops, (str, bytes, bytearray, Mapping)) or not isinstance(ops, Iterable)
    ):
        raise PatchError(f"a JSON Patch is a list of operations, not {type(ops).__name__}")
    owned: _Owned = {}
    applied: list[Op] = []
    undo: list[list[Op]] = []
    for number, op in enumerate(ops):
        checked = _check(number, op)
        name, parts = checked.name, checked.parts
        try:
            doc = _one(doc, checked, owned, applied, undo if want_inverse else None)
        except PathError as exc:
            raise PathError(exc.path, exc.part, f"{exc.reason} (op {number}: {name})") from None
        except _Refused as exc:
            raise PatchError(f"op {number} ({name}) at {_paths.format(parts)!r}: {exc}") from None
        except PatchTestFailed as exc:
            raise PatchTestFailed(
                f"op {number} (test) at {_paths.format(parts)!r}: {exc}"
            ) from None
    return doc, applied, [inv for group in reversed(undo) for inv in group]


class _Checked(NamedTuple):
    """A validated operation: name, parsed path and from, frozen value."""

    name: str
    parts: tuple[str, ...]
    source: tuple[str, ...] | None
    value: Any


def _check(number: int, op: Any) -> _Checked:
    """Validate one operation object; return (op, parts, from parts, value)."""
    # type() first: the ABC check of isinstance(op, Mapping) is slow.
    if type(op) is not dict and type(op) is not FrozenDict and not isinstance(op, Mapping):
        raise PatchError(f"op {number}: an operation is an object, not {type(op).__name__}")
    if "op" not in op:
        raise PatchError(f"op {number}: missing member 'op'")
    name = op["op"]
    if not isinstance(name, str) or name not in _OPS:
        shown = _short(name) if isinstance(name, str) else f"of type {type(name).__name__}"
        raise PatchError(
            f"op {number}: unknown op {shown} (expected add, remove, replace, move, copy or test)"
        )
    parts = _pointer(number, name, op, "path")
    source = _pointer(number, name, op, "from") if name in _WITH_FROM else None
    value: Any = _MISSING
    if name in _WITH_VALUE:
        if "value" not in op:
            raise PatchError(
                f"op {number} ({name}) at {_paths.format(parts)!r}: missing member 'value'"
            )
        try:
            value = _freeze(op["value"])
        except _NotJson as exc:
            raise PatchError(f"op {number} ({name}): {_value_error(parts, exc)}") from None
    if (
        name == "move"
        and source is not None
        and len(source) < len(parts)
        and parts[: len(source)] == source
    ):
        raise PatchError(
            f"op {number} (move): cannot move {_paths.format(source)!r} into its own child "
            f"{_paths.format(parts)!r}"
        )
    return _Checked(name, parts, source, value)


def _pointer(number: int, name: str, op: Mapping[str, Any], member: str) -> tuple[str, ...]:
    if member not in op:
        raise PatchError(f"op {number} ({name}): missing member {member!r}")
    pointer = op[member]
    if not isinstance(pointer, str):
        raise PatchError(
            f"op {number} ({name}): {member!r} must be a JSON Pointer string, "
            f"not {type(pointer).__name__}"
        )
    try:
        return _paths.parse(pointer)
    except PathError as exc:
        raise PathError(exc.path, exc.part, f"{exc.reason} (op {number}: {name})") from None


def _short(text: str, limit: int = 40) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _op(
    name: str, parts: tuple[str, ...], value: Any = _MISSING, source: tuple[str, ...] | None = None
) -> Op:
    record: dict[str, Any] = {"op": name}
    if source is not None:
        record["from"] = _paths.format(source)
    record["path"] = _paths.format(parts)
    if value is not _MISSING:
        record["value"] = value
    # Frozen: the same op objects go to every on_patch listener.
    return FrozenDict(record)


def _one(
    doc: Any, checked: _Checked, owned: _Owned, applied: list[Op], undo: list[list[Op]] | None
) -> Any:
    """Apply one validated operation; record it (and its inverse if asked)."""
    name, parts, source, value = checked
    if name == "add":
        doc, at, old = _add(doc, parts, value, owned)
        applied.append(_op("add", at, value))
        if undo is not None:
            undo.append([_op("remove", at) if old is _MISSING else _op("replace", at, old)])
    elif name == "remove":
        doc, old = _remove(doc, parts, owned)
        applied.append(_op("remove", parts))
        if undo is not None:
            undo.append([_op("add", parts, old)])
    elif name == "replace":
        doc, old = _replace(doc, parts, value, owned)
        applied.append(_op("replace", parts, value))
        if undo is not None:
            undo.append([_op("replace", parts, old)])
    elif name == "test":
        actual = _paths.get(doc, parts)
        if not json_equal(actual, value):
            found, expected = _json_type(actual), _json_type(value)
            detail = f" (found {found}, expected {expected})" if found != expected else ""
            # The actual value is not shown: it may be private.
            raise PatchTestFailed(f"the value is not equal to the expected value{detail}")
    else:
        assert source is not None
        moved = _paths.get(doc, source)
        if name == "move":
            if source == parts:
                return doc  # remove then add at the same place: nothing changes
            doc, _ = _remove(doc, source, owned)
        else:
            # The copied value is now reachable from two places; nothing in
            # it may be changed in place any more.
            owned.clear()
        doc, at, old = _add(doc, parts, moved, owned)
        applied.append(_op(name, at, source=source))
        if undo is not None:
            undo.append(_undo_move(name, source, at, moved=moved, old=old, owned=owned))
    return doc


def _undo_move(
    name: str, source: tuple[str, ...], at: tuple[str, ...], *, moved: Any, old: Any, owned: _Owned
) -> list[Op]:
    if name == "copy":
        return [_op("remove", at) if old is _MISSING else _op("replace", at, old)]
    if old is _MISSING and not (len(at) < len(source) and source[: len(at)] == at):
        return [_op("move", source, source=at)]
    # The value at ``at`` is named in the inverse while it is still in the
    # document: later ops of this patch must not change it in place.
    owned.clear()
    if old is _MISSING:
        # Moving back would move a container into its own child: spell it out.
        return [_op("remove", at), _op("add", source, moved)]
    # The move overwrote a key: put the old value back, then the moved one.
    return [_op("replace", at, old), _op("add", source, moved)]
