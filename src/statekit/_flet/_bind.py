"""``bind`` and ``bind_two_way``: a reactive value shown in (and edited by) a control.

A binding is an effect that reads its source and sets one property of one
control. It is owned by a scope (the Flet session's, when there is one), so it
stops when the session closes; it holds the control weakly, so a binding never
keeps a control alive, and it is removed after the control is collected. The
listener itself is held strongly by the scope (Flet's own observables hold
listeners weakly, which silently drops a lambda listener).

Updates land in the control's session: directly when the change is made by
code of that session (an event handler, ``main``), else queued on the
session's event loop (another thread, another session's handler). Rapid
changes from elsewhere are coalesced: the control shows the latest value.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import threading
import types
import typing
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import flet as ft
from flet.controls.base_control import BaseControl

from .. import _engine
from .._effect import Effect, effect
from .._scope import Scope, _current
from ..exceptions import InvalidDefinition, StatekitError
from ._session import FletSession, attach, current_session
from ._source import Source, as_source

__all__ = ["Binding", "bind", "bind_two_way", "bindings", "unbind"]

C = TypeVar("C")
_MISSING: Any = object()
_lock = threading.RLock()
# target (a control or an ft.Ref) -> its live bindings; weak on the target.
_registry: weakref.WeakKeyDictionary[Any, list[Binding]] = weakref.WeakKeyDictionary()
# Bindings whose control was collected; unbound outside the garbage collector.
_dead: collections.deque[Binding] = collections.deque()


class Binding:
    """A live link from a reactive source to one property of one control.

    Made by :func:`bind` and :func:`bind_two_way`; call it (or
    :meth:`unbind`) to stop it.

    Example:
        >>> import flet as ft, statekit as sk
        >>> from statekit.flet import bind
        >>> count = sk.atom(1)
        >>> label = ft.Text()
        >>> b = bind(count, label)
        >>> label.value
        '1'
        >>> count.value = 2
        >>> label.value
        '2'
        >>> b.unbind()
        >>> count.value = 3
        >>> label.value
        '2'
    """

    __slots__ = (
        "__weakref__",
        "_effect",
        "_event",
        "_first",
        "_format",
        "_hooked",
        "_parse",
        "_ref",
        "_scheduled",
        "_seen",
        "_target",
        "_unsent",
        "_update",
        "_value",
        "_writing",
        "active",
        "prop",
        "session",
        "source",
    )

    def __init__(
        self,
        source: Source,
        target: Any,
        prop: str,
        session: FletSession | None,
        *,
        format: Callable[[Any], Any] | None,
        update: bool = True,
    ) -> None:
        self.source = source
        self._update = update
        self.prop = prop
        self.session = session
        self.active = True
        self._format = format
        self._parse: Callable[[Any], Any] | None = None
        self._value: Any = _MISSING
        self._first = True
        self._scheduled = False
        self._seen = False  # a Ref target has pointed to a control at least once
        self._unsent = False
        self._writing = False
        self._effect: Effect | None = None
        # Two-way bindings: the event field (``on_change``) and, once hooked,
        # (the handler chained onto, ours, the control it is on).
        self._event: str | None = None
        self._hooked: tuple[Any, Any, weakref.ref[Any]] | None = None
        if isinstance(target, ft.Ref):
            self._ref: ft.Ref[Any] | None = target  # a Ref holds its control weakly itself
            self._target: weakref.ref[Any] | None = None
        else:
            self._ref = None
            self._target = weakref.ref(target, self._collected)

    # ------------------------------------------------------------ state

    @property
    def control(self) -> Any:
        """The bound control, or ``None`` (collected, or a ``Ref`` not set yet)."""
        if self._ref is not None:
            return self._ref.current
        assert self._target is not None
        return self._target()

    def __call__(self) -> None:
        self.unbind()

    def __repr__(self) -> str:
        state = "active" if self.active else "unbound"
        return f"<Binding {self.source.label} -> {type(self.control).__name__}.{self.prop} {state}>"

    # ------------------------------------------------------------ running

    def _start(self, scope: Scope) -> None:
        # The effect belongs to ``scope`` (the session's): closing the
        # session stops it. Its reads resolve in that scope.
        self._effect = scope.run(lambda: effect(self._watch, name=f"bind {self.source.label}"))

    def _watch(self) -> None:
        """The effect: read the source (tracked), then show the value."""
        self._value = self.source.read()
        session = self.session
        if session is None or session.here():
            _engine.untracked_call(self._apply)
        else:
            if self._first:
                # Set the property now; the client is told on the session's loop.
                _engine.untracked_call(lambda: self._apply(push=False))
            if not self._scheduled:
                self._scheduled = True
                session.call(self._flush)
        self._first = False

    def _flush(self) -> None:
        self._scheduled = False
        self._apply()

    def _apply(self, push: bool = True) -> None:
        if not self.active or self._writing:
            return
        control = self.control
        if control is None:
            if self._ref is not None and not self._seen:
                if self.session is not None:  # a Ref not set yet: retry after the next event
                    self.session.defer(self, self._flush)
            else:
                self.unbind()  # the control was collected (a Ref's too)
            return
        self._seen = True
        if self._event is not None and (self._hooked is None or self._hooked[2]() is not control):
            self._hook(control)  # first control, or a Ref now points to another one
        value = self._value
        if value is _MISSING:
            return
        formatted = (
            self._format(value) if self._format is not None else _coerce(control, self.prop, value)
        )
        if getattr(control, self.prop, _MISSING) != formatted:
            setattr(control, self.prop, formatted)
            self._unsent = True
        if not self._unsent:
            return
        page = _page_of(control)
        if page is None:
            self._unsent = False  # sent with the control when it is added to a page
        elif push and self._update:
            self._unsent = False
            page.update(control)  # what control.update() does, without finding the page twice

    # ------------------------------------------------------------ two-way

    def _hook(self, control: Any) -> None:
        """Chain our change handler onto ``control``'s event (two-way bindings)."""
        assert self._event is not None
        if self._hooked is not None:
            self._unhook()
        prev = getattr(control, self._event, None)
        ours = _change_handler(weakref.ref(self), prev)
        setattr(control, self._event, ours)
        self._hooked = (prev, ours, weakref.ref(control))

    def _unhook(self) -> None:
        """Put the chained-onto handler back (if ours is still the control's)."""
        assert self._event is not None and self._hooked is not None
        prev, ours, ref = self._hooked
        self._hooked = None
        control = ref()
        if control is not None and getattr(control, self._event, None) is ours:
            setattr(control, self._event, prev)

    def _take(self, control: Any) -> None:
        """The control changed (the user typed): write its value into the source."""
        if not self.active:
            return
        raw = getattr(control, self.prop)
        try:
            value = self._parse(raw) if self._parse is not None else raw
        except Exception as exc:
            _engine.report(
                exc, f"parse of {type(control).__name__}.{self.prop} for {self.source.label}"
            )
            return
        write = self.source.require_writable("bind_two_way")
        self._writing = True  # the source's change must not be echoed back into the control
        try:
            scope = self.session.scope if self.session is not None else None
            if scope is not None and not scope.disposed and _current.get() is not scope:
                scope.run(write, value)
            else:
                write(value)
        except Exception as exc:
            _engine.report(exc, f"two-way write into {self.source.label}")
        finally:
            self._writing = False

    # ------------------------------------------------------------ stopping

    def unbind(self) -> None:
        """Stop the binding for good: no more updates, the change handler restored."""
        if not self.active:
            return
        self.active = False
        if self._effect is not None:
            self._effect.stop()
            self._effect = None
        if self._hooked is not None:
            self._unhook()
        if self.session is not None:
            self.session.forget(self)
        key = self._ref if self._ref is not None else (self._target() if self._target else None)
        with _lock:
            if key is not None:
                found = _registry.get(key)
                if found is not None and self in found:
                    found.remove(self)
                    if not found:
                        del _registry[key]

    def _collected(self, _ref: Any) -> None:
        # Called by the garbage collector: do nothing heavy here (it may run
        # in the middle of any code); unbind from the loop or the next bind.
        if not self.active:
            return
        _dead.append(self)
        session = self.session
        if session is not None:
            with contextlib.suppress(RuntimeError):
                session.loop.call_soon_threadsafe(_reap)


def _reap() -> None:
    while _dead:
        try:
            binding = _dead.popleft()
        except IndexError:
            return
        binding.unbind()


def _change_handler(ref: weakref.ref[Binding], prev: Any) -> Any:
    """An event handler that writes into the source, then calls ``prev``."""

    def take(e: Any) -> None:
        binding = ref()
        if binding is not None:
            binding._take(e.control)

    if prev is None:

        def on_change(e: Any) -> None:
            take(e)

        return on_change
    wants_event = _param_count(prev) != 0
    if inspect.iscoroutinefunction(prev):

        async def on_change_async(e: Any) -> None:
            take(e)
            await (prev(e) if wants_event else prev())

        return on_change_async

    def on_change_chained(e: Any) -> Any:
        take(e)
        return prev(e) if wants_event else prev()

    return on_change_chained


def _param_count(fn: Any) -> int:
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return 1


def _page_of(control: Any) -> Any:
    """The live page ``control`` is on (so an update reaches the client), else ``None``."""
    try:
        page = control.page
        index = page.session.index
    except (RuntimeError, AttributeError):
        return None
    if index.get(control._i) is not control or hasattr(control, "_frozen"):
        return None
    return page


_str_props: dict[tuple[type, str], bool] = {}


def _coerce(control: Any, prop: str, value: Any) -> Any:
    """Turn a value into text for a ``str`` property (a ``Text``'s value shows ``5`` as ``"5"``)."""
    if value is None or isinstance(value, str):
        return value
    key = (type(control), prop)
    wants = _str_props.get(key)
    if wants is None:
        fields = getattr(type(control), "__dataclass_fields__", {})
        hint = fields[prop].type if prop in fields else None
        wants = _is_str_type(hint)
        _str_props[key] = wants
    return str(value) if wants else value


def _is_str_type(hint: Any) -> bool:
    if hint is str or hint == "str":
        return True
    if isinstance(hint, str):
        return hint.replace(" ", "") in {"Optional[str]", "str|None", "None|str"}
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args == [str]
    return False


def _session_for(control: Any) -> FletSession | None:
    """The session a binding of ``control`` belongs to: its page's, else the running code's."""
    target = control.current if isinstance(control, ft.Ref) else control
    if target is not None:
        try:
            page = target.page
        except RuntimeError:
            page = None
        if page is not None:
            try:
                return attach(page)
            except RuntimeError:
                pass
    return current_session()


def bind(
    source: Any,
    control: C,
    prop: str = "value",
    *,
    format: Callable[[Any], Any] | None = None,
    update: bool = True,
) -> Binding:
    """Show ``source`` in ``control.<prop>``, now and after every change.

    ``source`` is an atom, a computed (sync or async), a ``store.atom(key)``
    handle, a ``(store, "path")`` pair, a ``(state, "field")`` pair or a
    zero-argument function (made into a computed). ``control`` is a Flet
    control or an ``ft.Ref`` (resolved at each update). The property is set
    now; if the control is on a page it is updated (``control.update()``),
    otherwise the value goes to the client when the control is added.
    ``format`` turns the value into what the property takes; by default a
    value shown in a ``str`` property (``Text.value``) goes through ``str``.
    ``update=False`` only sets the property (you call ``update()`` yourself).

    Example:
        >>> import flet as ft, statekit as sk
        >>> from statekit.flet import bind
        >>> todos = sk.Store({"todo": ["milk"]})
        >>> count = ft.Text()
        >>> _ = bind(lambda: f"{len(todos.get('todo'))} to do", count)
        >>> todos.add("todo/-", "eggs")
        >>> count.value
        '2 to do'
    """
    _reap()
    if isinstance(control, BaseControl) and hasattr(control, "_frozen"):
        raise InvalidDefinition(
            f"bind: {type(control).__name__} was rendered by an @ft.component; "
            "use statekit.flet.use_atom(...) inside the component instead"
        )
    if not isinstance(control, (BaseControl, ft.Ref)):
        raise InvalidDefinition(f"bind: {control!r} is not a Flet control or ft.Ref")
    target = control.current if isinstance(control, ft.Ref) else control
    if target is not None and not hasattr(target, prop):
        raise InvalidDefinition(f"bind: {type(target).__name__} has no property {prop!r}")
    src = as_source(source, "bind")
    session = _session_for(control)
    scope = session.scope if session is not None and not session.closed else _current.get()
    # Read once, untracked, in the binding's scope: a missing store path or a
    # session value read outside any session raises here, at the call site.
    scope.run(_engine.untracked_call, src.read)
    binding = Binding(src, control, prop, session, format=format, update=update)
    with _lock:
        _registry.setdefault(control, []).append(binding)
    try:
        if session is not None and not session.closed:
            session.own(binding)
        binding._start(scope)
    except BaseException:
        binding.unbind()
        raise
    return binding


def bind_two_way(
    source: Any,
    control: C,
    prop: str = "value",
    *,
    event: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    format: Callable[[Any], Any] | None = None,
    update: bool = True,
) -> Binding:
    """Like :func:`bind`, and write the control's value back into ``source``.

    The change handler is chained onto the control's existing ``on_change``
    (or ``on_<event>``): the source is written first, then the old handler
    runs and sees the new state. The write is not echoed back into the
    control. ``parse`` turns the control's value into the source's (a
    ``ValueError`` goes to the error hook and leaves the state as it was).

    Example:
        >>> import flet as ft, statekit as sk
        >>> from statekit.flet import bind_two_way
        >>> email = sk.atom("")
        >>> field = ft.TextField()
        >>> b = bind_two_way(email, field)
        >>> field.value = "a@b.c"          # what the client does when the user types
        >>> b._take(field)                 # what the change event then does
        >>> email.value
        'a@b.c'
    """
    src = as_source(source, "bind_two_way")
    src.require_writable("bind_two_way")
    target = control.current if isinstance(control, ft.Ref) else control
    name = event or _default_event(target)
    binding = bind(src, control, prop, format=format, update=update)
    binding._parse = parse
    binding._event = f"on_{name}"
    if target is not None:
        binding._hook(target)
    return binding


def _default_event(control: Any) -> str:
    if control is None or hasattr(control, "on_change"):
        return "change"
    if hasattr(control, "on_select"):
        return "select"
    raise InvalidDefinition(
        f"bind_two_way: {type(control).__name__} has no on_change; pass event='...'"
    )


def bindings(control: Any) -> list[Binding]:
    """The live bindings of ``control`` (or of an ``ft.Ref``)."""
    with _lock:
        return list(_registry.get(control, ()))


def unbind(target: Any, prop: str | None = None) -> int:
    """Stop bindings: a :class:`Binding`, or every binding of a control (of ``prop`` only).

    Returns how many bindings stopped.

    Example:
        >>> import flet as ft, statekit as sk
        >>> from statekit.flet import bind, unbind
        >>> n = sk.atom(0)
        >>> t = ft.Text()
        >>> _ = bind(n, t); _ = bind(lambda: n.value > 0, t, "visible")
        >>> unbind(t, "visible")
        1
        >>> unbind(t)
        1
    """
    if isinstance(target, Binding):
        was = target.active
        target.unbind()
        return int(was)
    if target is None:
        raise StatekitError("unbind: nothing to unbind (got None)")
    found = [b for b in bindings(target) if prop is None or b.prop == prop]
    for binding in found:
        binding.unbind()
    return len(found)
