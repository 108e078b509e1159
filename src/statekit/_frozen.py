"""Read-only containers: what statekit hands out instead of mutable values.

A value stored in an atom (and later a store) is frozen on the way in: lists
become :class:`FrozenList`, dicts :class:`FrozenDict`, sets ``frozenset``.
They are real ``list``/``dict`` subclasses, so ``isinstance``, ``json.dumps``,
iteration and comparison all work, but any in-place mutation raises
:class:`~statekit.ReadOnlyError`. That is how a write can never bypass
notification: the only way to change state is to hand statekit a new value.
Freezing costs O(size) once per write; reads are free.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn, SupportsIndex, TypeVar

from .exceptions import ReadOnlyError

__all__ = ["FrozenDict", "FrozenList", "freeze", "thaw"]

_K = TypeVar("_K")
_V = TypeVar("_V")
_T = TypeVar("_T")

# Values that are immutable already: the fast path for the common case.
_SCALARS: frozenset[type] = frozenset(
    {int, float, str, bool, bytes, type(None), complex, frozenset, range}
)


def _refuse(kind: str, method: str) -> NoReturn:
    raise ReadOnlyError(
        f"this {kind} is a frozen view of statekit state: {method}() would change it "
        "without notifying anyone; build a new value (for example with .update(fn)) "
        "and set it instead"
    )


class FrozenList(list[_T]):
    """A ``list`` that refuses in-place changes.

    Example:
        >>> import statekit as sk
        >>> xs = sk.FrozenList([1, 2])
        >>> xs + [3]
        [1, 2, 3]
        >>> xs.append(3)
        Traceback (most recent call last):
        ...
        statekit.exceptions.ReadOnlyError: this list is a frozen view of statekit state: ...
    """

    __slots__ = ()

    def append(self, value: _T, /) -> NoReturn:
        _refuse("list", "append")

    def extend(self, values: Iterable[_T], /) -> NoReturn:
        _refuse("list", "extend")

    def insert(self, index: SupportsIndex, value: _T, /) -> NoReturn:
        _refuse("list", "insert")

    def pop(self, index: SupportsIndex = -1, /) -> NoReturn:
        _refuse("list", "pop")

    def remove(self, value: _T, /) -> NoReturn:
        _refuse("list", "remove")

    def clear(self) -> NoReturn:
        _refuse("list", "clear")

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("list", "sort")

    def reverse(self) -> NoReturn:
        _refuse("list", "reverse")

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        _refuse("list", "__setitem__")

    def __delitem__(self, index: Any) -> NoReturn:
        _refuse("list", "__delitem__")

    def __iadd__(self, values: Iterable[_T]) -> NoReturn:  # type: ignore[misc,override]
        _refuse("list", "+=")

    def __imul__(self, count: SupportsIndex) -> NoReturn:
        _refuse("list", "*=")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through the constructor: list's default reduce calls extend().
        return (FrozenList, (list(self),))

    def __copy__(self) -> FrozenList[_T]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList[_T]:
        return self

    def __repr__(self) -> str:
        return list.__repr__(self)


class FrozenDict(dict[_K, _V]):
    """A ``dict`` that refuses in-place changes.

    Example:
        >>> import statekit as sk
        >>> d = sk.FrozenDict({"a": 1})
        >>> d | {"b": 2}
        {'a': 1, 'b': 2}
        >>> d["a"] = 2
        Traceback (most recent call last):
        ...
        statekit.exceptions.ReadOnlyError: this dict is a frozen view of statekit state: ...
    """

    __slots__ = ()

    def __setitem__(self, key: _K, value: _V) -> NoReturn:
        _refuse("dict", "__setitem__")

    def __delitem__(self, key: _K) -> NoReturn:
        _refuse("dict", "__delitem__")

    def pop(self, *args: Any) -> NoReturn:
        _refuse("dict", "pop")

    def popitem(self) -> NoReturn:
        _refuse("dict", "popitem")

    def clear(self) -> NoReturn:
        _refuse("dict", "clear")

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("dict", "update")

    def setdefault(self, *args: Any) -> NoReturn:
        _refuse("dict", "setdefault")

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("dict", "|=")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict[_K, _V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[_K, _V]:
        return self

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __repr__(self) -> str:
        return dict.__repr__(self)


def freeze(value: Any) -> Any:
    """Return ``value`` with every list, dict and set inside it frozen.

    Already-frozen containers are returned as they are (no copy), so freezing
    a value built from parts of a frozen one only copies the new parts. Dict
    and list subclasses (``OrderedDict``, ``defaultdict``, ``Counter``...)
    become plain frozen dicts and lists, ``bytearray`` becomes ``bytes``.

    Example:
        >>> import statekit as sk
        >>> v = sk.freeze({"todo": [{"done": False}]})
        >>> type(v).__name__, type(v["todo"]).__name__
        ('FrozenDict', 'FrozenList')
    """
    kind = type(value)
    if kind in _SCALARS or kind is FrozenList or kind is FrozenDict:
        return value
    if kind is list:
        for item in value:  # all scalars (the common case): one copy, no call per item
            if type(item) not in _SCALARS:
                return FrozenList([freeze(item) for item in value])
        return FrozenList(value)
    if kind is dict:
        for item in value.values():
            if type(item) not in _SCALARS:
                return FrozenDict({key: freeze(item) for key, item in value.items()})
        return FrozenDict(value)
    if kind is tuple:
        return tuple(freeze(item) for item in value)
    if kind is set:
        return frozenset(value)
    # Subclasses: checked after the exact types, which are the common case.
    if isinstance(value, dict):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList([freeze(item) for item in value])
    if isinstance(value, tuple):
        if hasattr(value, "_make"):  # a namedtuple keeps its type
            return value._make(freeze(item) for item in value)
        return tuple(freeze(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def thaw(value: Any) -> Any:
    """Return a plain, mutable deep copy of a frozen value.

    Example:
        >>> import statekit as sk
        >>> plain = sk.thaw(sk.freeze({"xs": [1]}))
        >>> plain["xs"].append(2); plain
        {'xs': [1, 2]}
    """
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    if isinstance(value, tuple):
        return tuple(thaw(item) for item in value)
    if isinstance(value, frozenset):
        return set(value)
    return value
