"""Immutable state values and an atomic reference to hold them.

:class:`ImmutableState` is a frozen record of named fields. ``update`` returns
a new state that shares almost all of its memory with the old one: the fields
live in an ``immutables.Map`` (a hash array mapped trie), so changing one field
of a state with 100,000 fields copies a handful of small nodes, not the whole
thing (O(log n), about a microsecond). Everything put in is frozen deeply on the
way in — dicts become ``immutables.Map``, lists and tuples become tuples, sets
become frozensets — so no one holding a state can change it under anyone else.

:class:`StateRef` is the one mutable thing: a box holding the current state,
changed only by an atomic :meth:`StateRef.swap` or :meth:`StateRef.compare_and_set`.
Subscribers hear about each change after it happened, outside the lock, one at
a time and in the order the changes were made.

Example:
    >>> from statekit.immutable import ImmutableState, StateRef
    >>> s = ImmutableState(user_id="u1", count=0)
    >>> t = s.update(count=1)
    >>> s.count, t.count
    (0, 1)
    >>> ref = StateRef(s)
    >>> ref.swap(lambda st: st.update(count=st.count + 1)).count
    1
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any, ClassVar, Generic, NamedTuple, NoReturn, Self, TypeVar, final

from immutables import Map

from .exceptions import ReadOnlyError

__all__ = ["MISSING", "Change", "ImmutableState", "StateRef"]

T = TypeVar("T")

_log = logging.getLogger("statekit")


@final
class _Missing:
    """The marker for "no value": a key absent on one side of a diff."""

    __slots__ = ()
    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        # Unpickles to the module attribute, so identity checks keep working.
        return "MISSING"


MISSING: Any = _Missing()
"""Stands for an absent field in a :class:`Change` (added or removed field)."""


class Change(NamedTuple):
    """How one field differs between two states: its ``old`` and ``new`` value.

    ``old`` is :data:`MISSING` for a field that was added, ``new`` for one
    that was removed.

    Example:
        >>> from statekit.immutable import ImmutableState
        >>> ImmutableState(a=1).diff(ImmutableState(a=2, b=3))
        {'a': Change(old=1, new=2), 'b': Change(old=MISSING, new=3)}
    """

    old: Any
    new: Any


# Types whose instances cannot change: freezing returns them as they are.
_ATOMIC: frozenset[type] = frozenset(
    {str, int, float, bool, bytes, complex, type(None), frozenset, range, Map}
)


def _freeze(value: Any) -> Any:
    """Return ``value`` with every container inside it made immutable.

    An ``immutables.Map`` is taken as it is (it is immutable, and walking it
    would turn an O(log n) update of a nested map back into O(n)).
    """
    kind = type(value)
    if kind in _ATOMIC or isinstance(value, ImmutableState):
        return value
    if kind is dict or (isinstance(value, Mapping) and kind is not Map):
        return Map({key: _freeze(item) for key, item in value.items()})
    if kind is list or kind is tuple:
        return tuple([_freeze(item) for item in value])
    if kind is set:
        return frozenset(value)
    if kind is bytearray:
        return bytes(value)
    # Anything else (a frozen dataclass, an enum, a datetime...) is kept as
    # it is: statekit cannot make an arbitrary object immutable.
    return value


def _thaw(value: Any) -> Any:
    """Return a plain, mutable, JSON-shaped deep copy of a frozen value."""
    if isinstance(value, Map):
        return {key: _thaw(item) for key, item in _sorted_items(value)}
    if isinstance(value, ImmutableState):
        return value.to_dict()
    if isinstance(value, tuple) and type(value) is tuple:
        return [_thaw(item) for item in value]
    if isinstance(value, frozenset):
        return set(value)
    return value


def _sorted_items(data: Map[Any, Any]) -> list[tuple[Any, Any]]:
    # A HAMT iterates in hash order, which changes from run to run for str
    # keys; sorting gives reprs and JSON that are stable and readable.
    items = list(data.items())
    with contextlib.suppress(TypeError):  # keys of mixed types: keep the trie's order
        items.sort(key=lambda kv: kv[0])
    return items


def _same(old: Any, new: Any) -> bool:
    # ``1 == True == 1.0`` but replacing one by another is a real change.
    return old is new or (type(old) is type(new) and old == new)


class ImmutableState:
    """A frozen record of named fields with cheap, structurally shared updates.

    Fields are read as attributes (``state.count``) or by key
    (``state["count"]``, needed for names that are also methods, such as
    ``items``). ``update`` returns a new state and leaves this one as it was;
    an update that changes nothing returns this very object. States compare
    and hash by content, pickle, and round-trip through JSON.

    A subclass may declare its fields with annotations; fields without a
    default are then required and unknown fields are refused::

        class Point(ImmutableState):
            x: int
            y: int = 0

    Example:
        >>> from statekit.immutable import ImmutableState
        >>> s = ImmutableState(user_id="user_123", status="active", count=0)
        >>> n = s.update(count=1, status="processing")
        >>> (s.count, n.count, n.status)
        (0, 1, 'processing')
        >>> n.update(count=1) is n
        True
        >>> ImmutableState(tags=["a"]).tags  # lists are frozen into tuples
        ('a',)
    """

    __slots__ = ("_data", "_hash")

    _data: Map[str, Any]
    _hash: int

    # Filled by ``__init_subclass__`` for subclasses that declare fields.
    __fields__: ClassVar[tuple[str, ...] | None] = None
    __defaults__: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = {
            name: ann
            for name, ann in inspect.get_annotations(cls).items()
            if not name.startswith("_") and "ClassVar" not in str(ann)
        }
        if not own and cls.__fields__ is None:
            return
        fields = list(cls.__fields__ or ())
        defaults = dict(cls.__defaults__)
        for name in own:
            if name not in fields:
                fields.append(name)
            if name in cls.__dict__:
                # A class attribute would shadow the field on every instance
                # (``__getattr__`` only runs when normal lookup fails).
                defaults[name] = _freeze(cls.__dict__[name])
                delattr(cls, name)
        cls.__fields__ = tuple(fields)
        cls.__defaults__ = defaults
        if "update" not in cls.__dict__:
            # The field check lives in the subclass, off the base's hot path.
            cls.update = _checked_update  # type: ignore[method-assign]

    def __init__(self, _fields: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
        given: dict[str, Any] = dict(_fields) if _fields is not None else {}
        given.update(fields)
        declared = type(self).__fields__
        if declared is not None:
            unknown = sorted(set(given) - set(declared))
            if unknown:
                raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(unknown)}")
            missing = [n for n in declared if n not in given and n not in self.__defaults__]
            if missing:
                raise TypeError(f"{type(self).__name__} is missing field(s) {', '.join(missing)}")
            given = {**self.__defaults__, **given}
        for key in given:
            if not isinstance(key, str):
                raise TypeError(f"field names must be str, got {key!r}")
        _set_data(self, Map({_field_name(key): _freeze(value) for key, value in given.items()}))

    @classmethod
    def _wrap(cls, data: Map[str, Any]) -> Self:
        state = _new(cls)
        _set_data(state, data)
        return state

    # -- reading -----------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, i.e. for field names. The slot
        # is read through its descriptor: on a half-built instance that
        # raises AttributeError instead of recursing back into here.
        try:
            return _get_data(self)[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r} "
                f"(fields: {', '.join(sorted(self._data)) or 'none'})"
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of field ``key``, or ``default`` when it is absent.

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> ImmutableState(a=1).get("b", 0)
            0
        """
        return self._data.get(key, default)

    def keys(self) -> KeysView[str]:
        """The field names, sorted.

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> list(ImmutableState(b=1, a=2).keys())
            ['a', 'b']
        """
        return KeysView(self)

    def values(self) -> ValuesView[Any]:
        """The field values, in the order of :meth:`keys`.

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> list(ImmutableState(b=1, a=2).values())
            [2, 1]
        """
        return ValuesView(self)

    def items(self) -> ItemsView[str, Any]:
        """``(name, value)`` pairs, in the order of :meth:`keys`.

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> dict(ImmutableState(a=1).items())
            {'a': 1}
        """
        return ItemsView(self)

    @property
    def fields(self) -> Map[str, Any]:
        """The fields as an ``immutables.Map`` (shared, not copied).

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> ImmutableState(a=1).fields["a"]
            1
        """
        return self._data

    # -- changing (by making new states) ------------------------------------

    def update(self, **changes: Any) -> Self:
        """Return a state with ``changes`` applied; this one is left as it was.

        New field names are added (unless the class declares its fields).
        Values are frozen deeply. When nothing changes, ``self`` is returned,
        so ``new is old`` tells whether anything happened.

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> s = ImmutableState(status="pending")
            >>> s.update(status="failed", error="boom").error
            'boom'
        """
        # Hot path, measured on CPython 3.11 (benchmarks/utilities.py): the
        # commonest call changes one field, so that one is popped off the
        # fresh kwargs dict (cheaper than looping over it); a plain
        # ``self._data`` beats calling the slot's descriptor, even with
        # __getattr__ on the class; and ``int``/``str`` are tested by
        # identity before the frozenset lookup; ``data[key]`` in a ``try``
        # (free in 3.11 unless it raises) skips the argument tuple that the
        # METH_VARARGS ``Map.get`` builds on every call.
        if not changes:
            return self
        data = self._data
        key, value = changes.popitem()
        kind = type(value)
        if kind is not int and kind is not str and kind not in _ATOMIC:
            value = _freeze(value)
            kind = type(value)
        try:
            old = data[key]
        except KeyError:
            old = MISSING
            key = _field_name(key)
        if old is value or (type(old) is kind and old == value):
            if not changes:
                return self
            new = _set_fields(data, data, changes)
            if new is data:
                return self
        else:
            new = data.set(key, value)
            if changes:
                new = _set_fields(data, new, changes)
        state = _new(type(self))
        _set_data(state, new)
        return state

    def remove(self, *keys: str) -> Self:
        """Return a state without the fields ``keys`` (absent ones are ignored).

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> ImmutableState(a=1, b=2).remove("b")
            ImmutableState(a=1)
        """
        data = self._data
        new = data
        for key in keys:
            if key in new:
                new = new.delete(key)
        if new is data:
            return self
        declared = type(self).__fields__
        if declared is not None:
            raise TypeError(f"{type(self).__name__} declares its fields; they cannot be removed")
        return self._wrap(new)

    def diff(self, other: ImmutableState) -> dict[str, Change]:
        """Return the fields that differ from ``other``: ``{name: Change(old, new)}``.

        ``old`` is the value here and ``new`` the value in ``other``;
        ``self.apply(self.diff(other)) == other``.

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> a = ImmutableState(x=1, y=2)
            >>> a.diff(a.update(y=3))
            {'y': Change(old=2, new=3)}
        """
        mine, theirs = self._data, other._data
        out: dict[str, Change] = {}
        if mine is theirs:
            return out
        for key, value in mine.items():
            new = theirs.get(key, MISSING)
            if not _same(value, new):
                out[key] = Change(value, new)
        for key, value in theirs.items():
            if key not in mine:
                out[key] = Change(MISSING, value)
        return dict(sorted(out.items()))

    def apply(self, diff: Mapping[str, Change | tuple[Any, Any]]) -> Self:
        """Return a state with a :meth:`diff` applied (``MISSING`` removes a field).

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> a, b = ImmutableState(x=1), ImmutableState(y=2)
            >>> a.apply(a.diff(b)) == b
            True
        """
        data = self._data
        changed = False
        with data.mutate() as m:
            for key, (_, new) in diff.items():
                old = data.get(key, MISSING)
                if new is MISSING:
                    if old is not MISSING:
                        changed = True
                        del m[key]
                    continue
                new = _freeze(new)
                if not _same(old, new):
                    changed = True
                    m[_field_name(key)] = new
            result = m.finish()
        return self._wrap(result) if changed else self

    # -- comparing, hashing, copying ----------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImmutableState) or type(other) is not type(self):
            return NotImplemented
        return self._data is other._data or self._data == other._data

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            # Racing threads compute the same number; the cache is benign.
            value = hash((type(self).__qualname__, self._data))
            _set_hash(self, value)
            return value

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise ReadOnlyError(
            f"{type(self).__name__} is immutable: use .update({name}=...) to make a new state"
        )

    def __delattr__(self, name: str) -> NoReturn:
        raise ReadOnlyError(f"{type(self).__name__} is immutable: use .remove({name!r})")

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # immutables.Map pickles itself; rebuilding skips freezing again.
        return (_rebuild, (type(self), self._data))

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in _sorted_items(self._data))
        return f"{type(self).__name__}({body})"

    # -- plain data ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, mutable deep copy: maps become dicts, tuples lists.

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> ImmutableState(cfg={"tags": ["a"]}).to_dict()
            {'cfg': {'tags': ['a']}}
        """
        return {key: _thaw(value) for key, value in _sorted_items(self._data)}

    def to_json(self, **kwargs: Any) -> str:
        """Return the state as a JSON object (keyword arguments go to ``json.dumps``).

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> ImmutableState(b=1, a=[2]).to_json()
            '{"a": [2], "b": 1}'
        """
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build a state from a mapping (the inverse of :meth:`to_dict`).

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> ImmutableState.from_dict({"a": 1}).a
            1
        """
        return cls(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Build a state from a JSON object (the inverse of :meth:`to_json`).

        Example:
            >>> from statekit.immutable import ImmutableState
            >>> s = ImmutableState(a=[1, {"b": 2}])
            >>> ImmutableState.from_json(s.to_json()) == s
            True
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(
                f"{cls.__name__}.from_json needs a JSON object, got {type(data).__name__}"
            )
        return cls(data)


_new = object.__new__
# Writing the slots through their descriptors skips our refusing __setattr__.
_get_data = vars(ImmutableState)["_data"].__get__
_set_data = vars(ImmutableState)["_data"].__set__
_set_hash = vars(ImmutableState)["_hash"].__set__


def _field_name(key: str) -> str:
    """``key`` interned, as CPython interns attribute names.

    Keys built at run time (``f"k{i}"``, ``json.loads``) are equal to the
    literal names later updates and reads pass, but not the same object, so
    each HAMT probe would fall back to comparing characters; an interned key
    is matched by identity (callgrind: 7,841 → 7,611 instructions, -3 %, per
    one-field update of a 10-field state).
    """
    return sys.intern(key) if type(key) is str else key


def _set_fields(data: Map[str, Any], new: Map[str, Any], changes: dict[str, Any]) -> Map[str, Any]:
    """The fields of an update after its first: ``new`` with ``changes`` frozen and set."""
    for key, value in changes.items():
        value = _freeze(value)
        try:
            old = data[key]
        except KeyError:
            old = MISSING
            key = _field_name(key)
        if not (old is value or (type(old) is type(value) and old == value)):
            new = new.set(key, value)
    return new


def _checked_update(self: ImmutableState, **changes: Any) -> Any:
    declared = type(self).__fields__ or ()
    unknown = sorted(set(changes) - set(declared))
    if unknown:
        raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(unknown)}")
    return ImmutableState.update(self, **changes)


# A virtual subclass: ``isinstance(state, Mapping)`` holds, ``dict(state)`` and
# ``**state`` work, without the ABC's long MRO on every attribute lookup.
Mapping.register(ImmutableState)


def _rebuild(cls: type[ImmutableState], data: Map[str, Any]) -> ImmutableState:
    # Unpickled strings are not interned; unpickling is O(n) anyway.
    return cls._wrap(Map({_field_name(key): value for key, value in data.items()}))


class StateRef(Generic[T]):
    """A thread-safe box holding one value, changed only atomically.

    ``swap(fn)`` replaces the value by ``fn(value)`` under a lock, so
    read-modify-write updates from many threads never lose one another.
    ``compare_and_set(expected, new)`` replaces it only if it still *is*
    ``expected``. Subscribers are called as ``fn(old, new)`` after the change,
    outside the lock, one at a time and in the order of the changes; an
    exception in one goes to statekit's error hook and never stops the others.

    Example:
        >>> from statekit.immutable import ImmutableState, StateRef
        >>> ref = StateRef(ImmutableState(count=0))
        >>> off = ref.subscribe(lambda old, new: print(old.count, "->", new.count))
        >>> _ = ref.swap(lambda s: s.update(count=s.count + 1))
        0 -> 1
        >>> ref.compare_and_set(ref.value, ref.value.update(count=5))
        1 -> 5
        True
        >>> off()
    """

    __slots__ = ("__weakref__", "_delivering", "_lock", "_pending", "_subscribers", "_value")

    def __init__(self, value: T) -> None:
        self._value = value
        self._lock = threading.Lock()
        self._subscribers: tuple[Callable[[T, T], Any], ...] = ()
        self._pending: deque[tuple[T, T]] = deque()
        self._delivering = False

    @property
    def value(self) -> T:
        """The current value (reading needs no lock: the reference is swapped whole)."""
        return self._value

    def get(self) -> T:
        """Return the current value.

        Example:
            >>> from statekit.immutable import StateRef
            >>> StateRef(3).get()
            3
        """
        return self._value

    def set(self, value: T) -> T:
        """Replace the value unconditionally and return it.

        Example:
            >>> from statekit.immutable import StateRef
            >>> StateRef(1).set(2)
            2
        """
        return self.swap(lambda _old: value)

    def swap(self, fn: Callable[[T], T]) -> T:
        """Atomically replace the value by ``fn(value)`` and return the new value.

        ``fn`` runs under the lock, exactly once per call, so it should be
        quick and must not touch this reference again. Returning the same
        object changes nothing and notifies no one.

        Example:
            >>> from statekit.immutable import StateRef
            >>> ref = StateRef(1)
            >>> ref.swap(lambda n: n + 1)
            2
        """
        with self._lock:
            old = self._value
            new = fn(old)
            if new is old:
                return new
            self._value = new
            if not self._subscribers:
                return new
            self._pending.append((old, new))
            if self._delivering:
                # Another call is delivering: it will deliver ours too, in order.
                return new
            self._delivering = True
        self._deliver()
        return new

    def compare_and_set(self, expected: T, new: T) -> bool:
        """Set ``new`` only if the value still is ``expected`` (identity); say if it did.

        Example:
            >>> from statekit.immutable import StateRef
            >>> ref = StateRef("a")
            >>> ref.compare_and_set("b", "c"), ref.value
            (False, 'a')
        """
        with self._lock:
            old = self._value
            if old is not expected:
                return False
            if new is old:
                return True
            self._value = new
            if not self._subscribers:
                return True
            self._pending.append((old, new))
            if self._delivering:
                return True
            self._delivering = True
        self._deliver()
        return True

    def subscribe(self, fn: Callable[[T, T], Any]) -> Callable[[], None]:
        """Call ``fn(old, new)`` after each change; return a function that unsubscribes.

        Example:
            >>> from statekit.immutable import StateRef
            >>> ref = StateRef(0)
            >>> off = ref.subscribe(print)
            >>> _ = ref.set(1)
            0 1
            >>> off(); _ = ref.set(2)
        """
        with self._lock:
            self._subscribers = (*self._subscribers, fn)

        def unsubscribe() -> None:
            with self._lock:
                subs = list(self._subscribers)
                if fn in subs:
                    subs.remove(fn)
                self._subscribers = tuple(subs)

        return unsubscribe

    def _deliver(self) -> None:
        # One thread at a time drains the queue, so subscribers see every
        # change once, in commit order, and never concurrently.
        while True:
            with self._lock:
                if not self._pending:
                    self._delivering = False
                    return
                old, new = self._pending.popleft()
                subscribers = self._subscribers
            for fn in subscribers:
                try:
                    fn(old, new)
                except Exception as exc:
                    _report(exc, f"subscriber {fn!r} of StateRef")

    def __repr__(self) -> str:
        return f"StateRef({self._value!r})"


def _report(exc: BaseException, where: str) -> None:
    try:
        from ._engine import report
    except ImportError:  # pragma: no cover - the engine is part of statekit
        _log.error("statekit: %s raised", where, exc_info=exc)
    else:
        report(exc, where)
