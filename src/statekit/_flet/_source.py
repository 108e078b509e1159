"""What can be bound to a control: one shape for atoms, computeds, store paths and fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._async_computed import AsyncComputed
from .._atom import Atom
from .._computed import Computed
from .._store import Store, StoreAtom
from ..exceptions import InvalidDefinition

__all__ = ["Source", "as_source"]


class Source:
    """A readable (maybe writable) reactive value.

    ``read()`` is tracked (call it inside an effect to follow changes);
    ``write`` is ``None`` for read-only sources; ``key`` identifies the source
    (two ``Source`` objects for the same atom have the same key).
    """

    __slots__ = ("key", "label", "read", "update", "write")

    def __init__(
        self,
        read: Callable[[], Any],
        write: Callable[[Any], Any] | None,
        label: str,
        key: Any,
        update: Callable[[Callable[[Any], Any]], Any] | None = None,
    ) -> None:
        self.read = read
        self.write = write
        self.label = label
        self.key = key
        self.update = update

    def require_writable(self, what: str) -> Callable[[Any], Any]:
        """``write``, or a clear error naming the source and what needed it."""
        if self.write is None:
            raise InvalidDefinition(f"{what}: {self.label} is read-only (it cannot take a value)")
        return self.write

    def __repr__(self) -> str:
        return f"<Source {self.label}>"


def as_source(source: Any, what: str = "bind") -> Source:
    """Turn what a user passes to ``bind``/``use_atom`` into a :class:`Source`.

    Accepted: an atom, a computed (sync or async), a ``Store.atom(...)``
    handle, a ``(store, "path")`` pair, an ``(object, "field")`` pair (a
    ``State`` instance and one of its fields), a zero-argument function (a
    computed is made of it), or any object with ``value`` and ``subscribe``.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, Atom):
        atom = source
        return Source(lambda: atom.value, atom.set, f"atom {atom.name!r}", atom, atom.update)
    if isinstance(source, (Computed, AsyncComputed)):
        derived = source
        return Source(lambda: derived.value, None, f"computed {derived.name!r}", derived)
    if isinstance(source, StoreAtom):
        handle = source
        store = handle._store
        label = f"store {store.name!r} path {handle.path!r}"
        return Source(
            lambda: handle.value,
            handle.set,
            label,
            (store, handle.path),
            handle.update,
        )
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str):
        owner, path = source
        if isinstance(owner, Store):
            return _store_path(owner, path)
        return _field(owner, path, what)
    if callable(source) and not isinstance(source, type):
        derived = Computed(source, name=getattr(source, "__name__", None))
        return Source(lambda: derived.value, None, f"computed {derived.name!r}", source)
    if hasattr(source, "value") and hasattr(source, "subscribe"):
        duck = source
        setter = getattr(duck, "set", None)
        return Source(lambda: duck.value, setter, f"{type(duck).__name__} {duck!r}", duck)
    raise InvalidDefinition(
        f"{what}: cannot bind {source!r}; pass an atom, a computed, a store.atom(...) handle, "
        f"a (store, 'path') pair, a (state, 'field') pair or a function"
    )


def _store_path(store: Store, path: str) -> Source:
    from .. import _paths

    parts = _paths.parse(path)
    pointer = _paths.format(parts)

    def update(fn: Callable[[Any], Any]) -> Any:
        return store.update(parts, fn)

    return Source(
        lambda: store.get(parts),
        lambda value: store.set(parts, value),
        f"store {store.name!r} path {pointer!r}",
        (store, pointer),
        update,
    )


def _field(owner: Any, field: str, what: str) -> Source:
    if not hasattr(owner, field):
        raise InvalidDefinition(f"{what}: {type(owner).__name__} has no field {field!r}")
    label = f"{type(owner).__name__}.{field}"

    def write(value: Any) -> None:
        setattr(owner, field, value)

    def update(fn: Callable[[Any], Any]) -> Any:
        new = fn(getattr(owner, field))
        setattr(owner, field, new)
        return new

    return Source(lambda: getattr(owner, field), write, label, (id(owner), field), update)
