"""flet-asp's API on statekit: ``import statekit.compat.flet_asp as fa``.

Code written for flet-asp (the "Flet Atomic State Pattern") runs with only its
import changed, on Flet 1.x (flet-asp itself does not import there)::

    import statekit.compat.flet_asp as fa

    def main(page):
        fa.get_state_manager(page)
        page.state.atom("count", 0)
        ...
        page.state.bind("count", count_text)

Each manager is a statekit :class:`~statekit.Store` (one key per atom) with
statekit computeds for selectors and :mod:`statekit.flet` bindings, so it
does not have flet-asp's defects:

* an unknown key is an error (``KeyError`` naming it), never created
  silently; ``reset(key)`` goes back to the atom's default;
* selectors re-track their dependencies on every run (``a if flag else b``
  follows ``flag``); a list mutated in place and ``set`` again updates them;
* no update is ever dropped (no non-blocking locks); async selector results
  land in order and a stale one never wins; their errors go to statekit's
  error hook (``sk.set_error_hook``) and to ``error(key)``;
* one raising listener never stops the others;
* ``unlisten``, ``unbind`` and ``delete`` really release what they name;
  bindings hold controls weakly and stop when the page's session closes;
* ``atom("double", lambda: ...)`` is a computed value, as the README implies.

A page's manager (``get_state_manager(page)``) keeps its values in the
page's statekit session scope: every session has its own, and they are freed
when the session closes. ``StateManager()`` made outside a page is app-wide
(shared by all sessions, as flet-asp's "global state" section describes).

``get`` returns a mutable copy (statekit's own values are frozen), so
flet-asp's idiom ``items = get("cart"); items.append(x); set("cart", items)``
works and notifies.
"""

from __future__ import annotations

import inspect
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import flet as ft

import statekit.flet as skf

from .. import _engine
from .._action import action
from .._atom import atom as _atom
from .._computed import Computed, computed
from .._effect import effect
from .._flet._source import Source
from .._frozen import thaw
from .._scope import SESSION, _current
from .._store import Store
from ..exceptions import InvalidDefinition

__all__ = [
    "Action",
    "Atom",
    "Selector",
    "StateManager",
    "get_state_manager",
]

Getter = Callable[[str], Any]
_names = itertools.count(1)
_MISSING: Any = object()


class _Settings(type):
    """Metaclass of :class:`Atom`: checks flet-asp's documented class settings."""

    def __setattr__(cls, name: str, value: Any) -> None:
        if name == "MAX_PARALLEL_BINDS" and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise InvalidDefinition(f"Atom.MAX_PARALLEL_BINDS must be an int >= 1, got {value!r}")
        if name == "ENABLE_FREE_THREADING" and not isinstance(value, bool):
            raise InvalidDefinition(f"Atom.ENABLE_FREE_THREADING must be a bool, got {value!r}")
        super().__setattr__(name, value)


class Atom(metaclass=_Settings):
    """A handle on one atom of a :class:`StateManager` (what ``state.atom(key)`` returns).

    flet-asp's performance settings are accepted: ``Atom.MAX_PARALLEL_BINDS``
    (int >= 1) and ``Atom.ENABLE_FREE_THREADING`` (bool). statekit needs
    neither: bound controls are updated on their session's event loop and
    rapid changes are coalesced, with or without the GIL.

    Example:
        >>> import statekit.compat.flet_asp as fa
        >>> state = fa.StateManager()
        >>> count = state.atom("count", 0)
        >>> count.value = 2
        >>> count.key, count.value, state.get("count")
        ('count', 2, 2)
        >>> fa.Atom.MAX_PARALLEL_BINDS = 8
    """

    MAX_PARALLEL_BINDS: int = 1
    ENABLE_FREE_THREADING: bool = False
    MAX_RETRY_ATTEMPTS: int = 3
    RETRY_BASE_DELAY: float = 0.005

    __slots__ = ("_manager", "key")

    def __init__(self, manager: StateManager, key: str) -> None:
        self._manager = manager
        self.key = key

    @property
    def value(self) -> Any:
        """The current value (a mutable copy)."""
        return self._manager.get(self.key)

    @value.setter
    def value(self, new: Any) -> None:
        self._manager.set(self.key, new)

    def listen(self, callback: Callable[[Any], Any], immediate: bool = False) -> Callable[[], None]:
        """Like :meth:`StateManager.listen` for this key."""
        return self._manager.listen(self.key, callback, immediate)

    def unlisten(self, callback: Callable[[Any], Any]) -> None:
        """Like :meth:`StateManager.unlisten` for this key."""
        self._manager.unlisten(self.key, callback)

    def bind(self, control: Any, prop: str = "value", update: bool = True) -> skf.Binding:
        """Like :meth:`StateManager.bind` for this key."""
        return self._manager.bind(self.key, control, prop, update)

    def unbind(self, control: Any) -> int:
        """Like :meth:`StateManager.unbind` for this key."""
        return self._manager.unbind(self.key, control)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} of {self._manager.name!r}>"


class Selector(Atom):
    """A handle on a derived value of a :class:`StateManager` (read-only).

    Example:
        >>> import statekit.compat.flet_asp as fa
        >>> state = fa.StateManager()
        >>> _ = state.atom("n", 2)
        >>> double = state.add_selector("double", lambda get: get("n") * 2)
        >>> double.value
        4
    """

    __slots__ = ()

    @property
    def value(self) -> Any:
        """The current value (a mutable copy)."""
        return self._manager.get(self.key)

    @value.setter
    def value(self, new: Any) -> None:
        self._manager.set(self.key, new)  # raises: a selector cannot be set


class _AtomTable(dict[str, Atom]):
    """``manager._atoms``: flet-asp tests call ``_atoms.clear()`` to start over."""

    __slots__ = ("_manager",)

    def __init__(self, manager: StateManager) -> None:
        super().__init__()
        self._manager = manager

    def clear(self) -> None:
        for key in list(self):
            self._manager._drop_atom(key)
        super().clear()


class _SelectorEntry:
    __slots__ = ("derived", "epoch", "is_async")

    def __init__(self, derived: Any, epoch: Any, is_async: bool) -> None:
        self.derived = derived
        self.epoch = epoch
        self.is_async = is_async


class StateManager:
    """Atoms, selectors, listeners and bindings by key (flet-asp's ``StateManager``).

    Made by :func:`get_state_manager` for a page (values per session), or
    directly for state shared by every session.

    Example:
        >>> import statekit.compat.flet_asp as fa
        >>> state = fa.StateManager()
        >>> _ = state.atom("first", "Ada"), state.atom("last", "Lovelace")
        >>> @state.selector("full")
        ... def full(get):
        ...     return f"{get('first')} {get('last')}"
        >>> seen = []
        >>> _ = state.listen("full", seen.append, immediate=True)
        >>> state.set("last", "Byron")
        >>> seen
        ['Ada Lovelace', 'Ada Byron']
        >>> state.get("nope")
        Traceback (most recent call last):
        ...
        KeyError: "state 'state#...' has no atom or selector 'nope'"
    """

    def __init__(self, page: ft.Page | None = None, *, name: str | None = None) -> None:
        self.name = name or f"state#{next(_names)}"
        self._lock = threading.RLock()
        self._page_ref: weakref.ref[ft.Page] | None = None
        self._session: skf.FletSession | None = None
        scope = "session" if page is not None else "app"
        self._store = Store({}, name=self.name, scope=scope)
        self._atoms = _AtomTable(self)
        self._defaults: dict[str, Any] = {}
        self._selectors: dict[str, _SelectorEntry] = {}
        self._listeners: dict[tuple[str, Any], Callable[[], None]] = {}
        self._bindings: dict[str, list[skf.Binding]] = {}
        if page is not None:
            self.page = page

    # ------------------------------------------------------------ page

    @property
    def page(self) -> ft.Page | None:
        """The page this manager belongs to (``None`` for a global one)."""
        return self._page_ref() if self._page_ref is not None else None

    @page.setter
    def page(self, page: ft.Page | None) -> None:
        # flet-asp's "global state": ``global_state.page = page`` in main.
        # The page's session becomes a statekit session; a global manager's
        # values stay app-wide, a page manager's live in that session.
        if page is None:
            self._page_ref = None
            return
        self._page_ref = weakref.ref(page)
        session = skf.attach(page)
        if self._store.scope == "session":
            self._session = session

    def _run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` where this manager's values live (its page's session)."""
        session = self._session
        if session is None or _current.get().chain[SESSION] is session.scope:
            return fn()
        return session.run(fn)

    # ------------------------------------------------------------ keys

    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str) or not key:
            raise InvalidDefinition(
                f"state {self.name!r}: a key must be a non-empty str, got {key!r}"
            )
        return key

    def _missing(self, key: str) -> KeyError:
        return KeyError(f"state {self.name!r} has no atom or selector {key!r}")

    def has(self, key: str) -> bool:
        """Whether ``key`` is an atom or a selector of this manager."""
        return key in self._atoms or key in self._selectors

    def keys(self) -> list[str]:
        """Every atom and selector key."""
        with self._lock:
            return [*self._atoms, *self._selectors]

    # ------------------------------------------------------------ atoms

    def atom(self, key: str, default: Any = None) -> Atom:
        """The atom ``key``, made with ``default`` on first use (an existing one is kept).

        A zero-argument callable ``default`` makes a computed value (flet-asp's
        README: ``atom("double", lambda: get("count") * 2)``), a one-argument
        one a selector (``lambda get: ...``).
        """
        self._check_key(key)
        with self._lock:
            if key in self._selectors:
                return Selector(self, key)
            found = self._atoms.get(key)
            if found is not None:
                return found
            if callable(default) and not isinstance(default, type):
                params = _param_count(default)
                if params == 0:
                    return self.add_selector(key, lambda _get: default())
                if params == 1:
                    return self.add_selector(key, default)
            handle = Atom(self, key)
            self._defaults[key] = default
            if not self._run(lambda: self._store.has((key,))):
                self._run(lambda: self._store.add((key,), default))
            self._atoms[key] = handle
            return handle

    def _drop_atom(self, key: str) -> None:
        self._release(key)
        self._defaults.pop(key, None)
        if self._run(lambda: self._store.has((key,))):
            self._run(lambda: self._store.delete((key,)))

    def get(self, key: str) -> Any:
        """The value of an atom or selector: a mutable copy; ``KeyError`` for an unknown key."""
        entry = self._selectors.get(key)
        if entry is not None:
            return thaw(self._run(lambda: entry.derived.value))
        if key not in self._atoms:
            raise self._missing(key)
        return thaw(self._run(lambda: self._store.get((key,))))

    def set(self, key: str, value: Any) -> None:
        """Replace an atom's value (listeners, selectors and bindings follow).

        Setting the same list object after changing it in place is a change.
        """
        self._writable(key, "set")
        self._run(lambda: self._store.set((key,), value))

    def update(self, key: str, fn: Callable[[Any], Any]) -> Any:
        """Atomically replace an atom's value by ``fn(old)`` (old is a copy); return the new one."""
        self._writable(key, "update")
        return thaw(self._run(lambda: self._store.update((key,), lambda old: fn(thaw(old)))))

    def _writable(self, key: str, what: str) -> None:
        if key in self._selectors:
            raise InvalidDefinition(
                f"state {self.name!r}: {key!r} is a selector; it cannot be {what}"
            )
        if key not in self._atoms:
            raise self._missing(key)

    def reset(self, key: str, value: Any = _MISSING) -> None:
        """Put an atom back to its default (or to ``value``, which becomes the new default)."""
        self._writable(key, "reset")
        if value is not _MISSING:
            self._defaults[key] = value
        self.set(key, self._defaults.get(key))

    def delete(self, key: str) -> None:
        """Remove an atom or selector with its listeners and bindings."""
        with self._lock:
            if key in self._atoms:
                self._drop_atom(key)
                dict.pop(self._atoms, key, None)
            elif key in self._selectors:
                self._release(key)
                del self._selectors[key]
            else:
                raise self._missing(key)

    def clear(self) -> None:
        """Remove every atom and selector with their listeners and bindings."""
        with self._lock:
            self._atoms.clear()
            for key in list(self._selectors):
                self._release(key)
            self._selectors.clear()

    # ------------------------------------------------------------ selectors

    def add_selector(self, key: str, select_fn: Callable[[Getter], Any]) -> Selector:
        """Register a derived value computed by ``select_fn(get)`` (sync or async).

        Dependencies are whatever ``get`` reads on each run. An async
        selector's value is its latest settled result (``None`` at first);
        only reads before its first ``await`` are dependencies.
        """
        self._check_key(key)
        with self._lock:
            if key in self._atoms:
                raise InvalidDefinition(f"state {self.name!r}: {key!r} is already an atom")
            if key not in self._selectors:
                self._selectors[key] = self._make_selector(key, select_fn)
            return Selector(self, key)

    def _make_selector(self, key: str, select_fn: Callable[[Getter], Any]) -> _SelectorEntry:
        # A hidden epoch atom lets invalidate(key) force a recomputation.
        epoch = _atom(0, name=f"{self.name}.{key}.epoch", scope=self._store.scope)
        name = f"{self.name}.{key}"
        manager = self
        if inspect.iscoroutinefunction(select_fn):

            async def run_async() -> Any:
                _ = epoch.value
                try:
                    return await select_fn(manager.get)
                except Exception as exc:
                    _engine.report(exc, f"async selector {key!r} of state {manager.name!r}")
                    raise

            return _SelectorEntry(
                computed(run_async, name=name, scope=self._store.scope), epoch, True
            )

        def run() -> Any:
            _ = epoch.value
            return select_fn(manager.get)

        return _SelectorEntry(Computed(run, name=name, scope=self._store.scope), epoch, False)

    def selector(self, key: str) -> Callable[[Callable[[Getter], Any]], Callable[[Getter], Any]]:
        """Decorator form of :meth:`add_selector` (returns the function unchanged)."""

        def register(fn: Callable[[Getter], Any]) -> Callable[[Getter], Any]:
            self.add_selector(key, fn)
            return fn

        return register

    def invalidate(self, key: str) -> None:
        """Recompute a selector now, even if nothing it read changed."""
        entry = self._selectors.get(key)
        if entry is None:
            raise self._missing(key)
        self._run(lambda: entry.epoch.update(lambda n: n + 1))

    def error(self, key: str) -> BaseException | None:
        """The exception of an async selector's last run (``None`` if it succeeded)."""
        entry = self._selectors.get(key)
        if entry is None or not entry.is_async:
            return None
        return self._run(lambda: entry.derived.error)  # type: ignore[no-any-return]

    def loading(self, key: str) -> bool:
        """Whether an async selector is running."""
        entry = self._selectors.get(key)
        return bool(
            entry is not None and entry.is_async and self._run(lambda: entry.derived.loading)
        )

    async def wait(self, key: str) -> Any:
        """Wait for an async selector to settle and return its value (a copy)."""
        entry = self._selectors.get(key)
        if entry is None:
            raise self._missing(key)
        if not entry.is_async:
            return self.get(key)
        session = self._session
        if session is not None and _current.get().chain[SESSION] is not session.scope:
            with session.scope:
                return thaw(await entry.derived.wait())
        return thaw(await entry.derived.wait())

    # ------------------------------------------------------------ listening

    def _source(self, key: str) -> Source:
        entry = self._selectors.get(key)
        if entry is not None:
            derived = entry.derived
            return Source(
                lambda: derived.value, None, f"selector {key!r} of {self.name!r}", derived
            )
        if key not in self._atoms:
            raise self._missing(key)
        store, parts = self._store, (key,)
        return Source(
            lambda: store.get(parts),
            lambda value: store.set(parts, value),
            f"atom {key!r} of {self.name!r}",
            (store, key),
        )

    def listen(
        self, key: str, callback: Callable[[Any], Any], immediate: bool = False
    ) -> Callable[[], None]:
        """Call ``callback(value)`` after each change of ``key`` (and now, if ``immediate``).

        Not called now by default: the README's examples register listeners
        before the controls they touch exist (flet-asp 0.3.1 calls them at
        once, and those examples crash).

        The same callback twice is registered once. Listeners of a page's
        manager run in that page's session (on its event loop). Returns a
        function that stops the listener (as :meth:`unlisten` does).
        """
        source = self._source(key)
        with self._lock:
            found = self._listeners.get((key, callback))
            if found is not None:
                return found
        session = self._session

        def deliver(value: Any) -> None:
            if session is None:
                callback(thaw(value))
            else:
                session.call(lambda: callback(thaw(value)))

        first = True

        def watch() -> None:
            nonlocal first
            value = source.read()
            if first:
                first = False
                return
            _engine.untracked_call(lambda: deliver(value))

        running = self._run(lambda: effect(watch, name=f"listener of {key!r} ({self.name})"))

        def off() -> None:
            running.stop()
            with self._lock:
                if self._listeners.get((key, callback)) is off:
                    del self._listeners[(key, callback)]

        with self._lock:
            self._listeners[(key, callback)] = off
        if immediate:
            callback(self.get(key))
        return off

    def listen_multiple(self, keys_callbacks: dict[str, Callable[[Any], Any]]) -> None:
        """:meth:`listen` for each ``key: callback`` pair."""
        for key, callback in keys_callbacks.items():
            self.listen(key, callback)

    def unlisten(self, key: str, callback: Callable[[Any], Any]) -> None:
        """Stop a listener registered with :meth:`listen`."""
        with self._lock:
            off = self._listeners.get((key, callback))
        if off is not None:
            off()

    # ------------------------------------------------------------ binding

    def bind(self, key: str, control: Any, prop: str = "value", update: bool = True) -> skf.Binding:
        """Show ``key`` in ``control.<prop>`` (a control or a ``Ref``); see ``skf.bind``."""
        source = self._source(key)
        binding: skf.Binding = self._run(lambda: skf.bind(source, control, prop, update=update))
        self._keep(key, binding)
        return binding

    bind_dynamic = bind

    def bind_two_way(
        self,
        key: str,
        control: Any,
        prop: str = "value",
        update: bool = True,
        on_input_change: Callable[..., Any] | None = None,
    ) -> skf.Binding:
        """Keep ``control.<prop>`` and atom ``key`` in sync both ways.

        The control's own ``on_change`` still runs (after the atom is
        written), then ``on_input_change`` if given.
        """
        self._writable(key, "bound two-way")
        source = self._source(key)
        target = control.current if isinstance(control, ft.Ref) else control
        if on_input_change is not None and target is not None:
            target.on_change = _chain(getattr(target, "on_change", None), on_input_change)
        binding: skf.Binding = self._run(
            lambda: skf.bind_two_way(source, control, prop, update=update)
        )
        self._keep(key, binding)
        return binding

    def _keep(self, key: str, binding: skf.Binding) -> None:
        with self._lock:
            kept = [b for b in self._bindings.get(key, []) if b.active]
            kept.append(binding)
            self._bindings[key] = kept

    def unbind(self, key: str, target: Any) -> int:
        """Stop the bindings of ``key`` to ``target`` (a control or a ``Ref``); return how many."""
        with self._lock:
            found = self._bindings.get(key, [])
        targets = {id(target)}
        if isinstance(target, ft.Ref) and target.current is not None:
            targets.add(id(target.current))
        ref = getattr(target, "ref", None)
        if isinstance(ref, ft.Ref):
            targets.add(id(ref))
        stopped = 0
        for binding in found:
            bound = {id(binding.control), id(binding._ref)} - {id(None)}
            if binding.active and bound & targets:
                binding.unbind()
                stopped += 1
        with self._lock:
            self._bindings[key] = [b for b in self._bindings.get(key, []) if b.active]
        return stopped

    def _release(self, key: str) -> None:
        """Stop every listener and binding of ``key``."""
        with self._lock:
            offs = [off for (k, _), off in self._listeners.items() if k == key]
            bindings = self._bindings.pop(key, [])
        for off in offs:
            off()
        for binding in bindings:
            binding.unbind()

    # ------------------------------------------------------------ actions

    def action(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: ``func(get, set, *args)`` becomes a callable bound to this manager."""
        if inspect.iscoroutinefunction(func):

            async def handler_async(get: Getter, set_value: Any, args: Any) -> Any:
                return await func(get, set_value, *args[0], **args[1])

            handler_async.__name__ = func.__name__
            runner = Action(handler_async)

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                return await runner.run_async(self, (args, kwargs))

            return run_async

        def handler(get: Getter, set_value: Any, args: Any) -> Any:
            return func(get, set_value, *args[0], **args[1])

        handler.__name__ = func.__name__
        runner = Action(handler)

        def run(*args: Any, **kwargs: Any) -> Any:
            return runner.run(self, (args, kwargs))

        return run

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        counts = f"atoms={len(self._atoms)} selectors={len(self._selectors)}"
        return f"<StateManager {self.name!r} {counts}>"


def _chain(first: Any, then: Callable[..., Any]) -> Callable[..., Any]:
    def handler(e: Any) -> Any:
        if first is not None:
            first(e) if _param_count(first) else first()
        return then(e) if _param_count(then) else then()

    return handler


def _param_count(fn: Any) -> int:
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return 1


class Action:
    """A workflow that reads and writes a manager's state: ``Action(handler).run(state, args)``.

    ``handler(get, set_value, args)``, sync or async; :meth:`run_async`
    awaits it. It is a statekit action (:func:`statekit.action`), so its
    status is reactive: ``pending``, ``result`` and ``error`` (bind them, or
    read them in a selector), and ``cancel()`` stops a running async one.
    An Action made during a Flet session keeps its status per session.

    Example:
        >>> import statekit.compat.flet_asp as fa
        >>> state = fa.StateManager()
        >>> _ = state.atom("n", 1)
        >>> bump = fa.Action(lambda get, set_value, by: set_value("n", get("n") + by))
        >>> bump.run(state, 2)
        >>> state.get("n"), bump.pending, bump.error
        (3, False, None)
    """

    def __init__(self, handler: Callable[[Getter, Callable[[str, Any], None], Any], Any]) -> None:
        self.handler = handler
        label = getattr(handler, "__name__", "action")
        scope = "session" if skf.current_session() is not None else "app"
        if inspect.iscoroutinefunction(handler):

            async def run_async(state: StateManager, args: Any) -> Any:
                return await handler(state.get, state.set, args)

            self._action: Any = action(run_async, name=f"flet-asp {label}", scope=scope)
        else:

            def run(state: StateManager, args: Any) -> Any:
                return handler(state.get, state.set, args)

            self._action = action(run, name=f"flet-asp {label}", scope=scope)

    def run(self, state: StateManager, args: Any = None) -> Any:
        """Run the handler with ``state``'s ``get`` and ``set`` (an async one: returns the call)."""
        return state._run(lambda: self._action(state, args))

    async def run_async(self, state: StateManager, args: Any = None) -> Any:
        """Run (and await) the handler with ``state``'s ``get`` and ``set``."""
        result = self.run(state, args)
        if inspect.isawaitable(result):
            return await result
        return result

    @property
    def pending(self) -> bool:
        """Whether a run is in progress (tracked)."""
        return bool(self._action.pending)

    @property
    def result(self) -> Any:
        """The result of the newest successful run (tracked)."""
        return self._action.result

    @property
    def error(self) -> Exception | None:
        """The exception of the newest finished run, ``None`` if it succeeded (tracked)."""
        error: Exception | None = self._action.error
        return error

    def cancel(self) -> int:
        """Cancel running async runs; return how many."""
        return int(self._action.cancel())


def get_state_manager(page: ft.Page) -> StateManager:
    """The page's :class:`StateManager` (made on first call), also at ``page.state``.

    Its values live in the page's statekit session scope: per session, freed
    when the session closes.

    Example:
        >>> import statekit.compat.flet_asp as fa
        >>> # def main(page):
        >>> #     fa.get_state_manager(page)
        >>> #     page.state.atom("count", 0)
    """
    found = getattr(page, "_state_manager", None)
    if isinstance(found, StateManager):
        return found
    session = skf.attach(page)
    manager = StateManager(page, name=f"page state of session {session.id}")
    page._state_manager = manager  # type: ignore[attr-defined]
    page.state = manager  # type: ignore[attr-defined]
    return manager
