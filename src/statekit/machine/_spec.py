"""What a machine is made of: :class:`State`, :class:`Event` and :class:`Transition`.

``State`` and ``Event`` are *declarations* used in the class syntax; they do
nothing by themselves. ``Transition`` is the record every guard, hook and
listener receives, and what the history is made of.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, overload

if TYPE_CHECKING:
    from ._base import MachineBase

__all__ = ["EMPTY_PAYLOAD", "Event", "Hook", "State", "Transition", "TransitionSpec"]

EMPTY_PAYLOAD: Mapping[str, Any] = MappingProxyType({})

# A guard or hook: a callable taking the Transition (or nothing), or in the
# class syntax the name of a method taking it (or nothing).
Hook = Callable[..., Any] | str


class Transition(NamedTuple):
    """One move of a machine: what guards, hooks and listeners receive.

    ``event`` is the event's name, or ``None`` for a move made with
    ``transition(target)`` or ``back()``. ``payload`` holds the keyword
    arguments given to ``send``; entries in ``machine.history`` keep no
    payload (it may be large or secret).

    Example:
        >>> from statekit.machine import StateMachine
        >>> m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
        >>> _ = m.transition("b")
        >>> m.history[-1]
        Transition(source='a', target='b', event=None, payload={})
    """

    source: Any
    target: Any
    event: str | None
    payload: Mapping[str, Any] = EMPTY_PAYLOAD

    def __repr__(self) -> str:
        return (
            f"Transition(source={self.source!r}, target={self.target!r}, "
            f"event={self.event!r}, payload={dict(self.payload)!r})"
        )


def _as_tuple(hooks: Hook | Sequence[Hook] | None) -> tuple[Hook, ...]:
    if hooks is None:
        return ()
    if isinstance(hooks, str) or callable(hooks):
        return (hooks,)
    return tuple(hooks)


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    """One declared arrow ``source -> target`` with its guards and hooks."""

    source: State
    target: State
    guards: tuple[Hook, ...] = ()
    unless: tuple[Hook, ...] = ()
    before: tuple[Hook, ...] = ()
    on: tuple[Hook, ...] = ()
    after: tuple[Hook, ...] = ()


class State:
    """A state declared in a machine class.

    ``value`` is what ``machine.current_state`` returns while in this state
    (default: the attribute name); it may be any hashable, such as an enum
    member. ``initial=True`` marks the one state a machine starts in,
    ``final=True`` a state with no way out. ``on_enter``/``on_exit`` are
    hooks (callables or method names); methods named ``on_enter_<name>`` and
    ``on_exit_<name>`` are found too.

    Example:
        >>> from statekit.machine import State, StateMachine
        >>> class Door(StateMachine[str]):
        ...     closed = State(initial=True)
        ...     opened = State()
        ...     open = closed.to(opened)
        ...     close = opened.to(closed)
        >>> door = Door()
        >>> door.open()
        'opened'
        >>> door.current_state
        'opened'
    """

    __slots__ = ("final", "initial", "name", "on_enter", "on_exit", "value")

    def __init__(
        self,
        value: Any = None,
        *,
        initial: bool = False,
        final: bool = False,
        on_enter: Hook | Sequence[Hook] | None = None,
        on_exit: Hook | Sequence[Hook] | None = None,
    ) -> None:
        self.value = value
        self.initial = initial
        self.final = final
        self.on_enter = _as_tuple(on_enter)
        self.on_exit = _as_tuple(on_exit)
        self.name: str | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        if self.value is None:
            self.value = name

    def to(
        self,
        *targets: State,
        guard: Hook | Sequence[Hook] | None = None,
        unless: Hook | Sequence[Hook] | None = None,
        before: Hook | Sequence[Hook] | None = None,
        on: Hook | Sequence[Hook] | None = None,
        after: Hook | Sequence[Hook] | None = None,
    ) -> Event:
        """Declare transitions from this state to ``targets`` (tried in order).

        ``guard``: every one must return true; ``unless``: none may.
        ``before``, ``on`` and ``after`` are hooks of these transitions.

        Example:
            >>> from statekit.machine import State
            >>> a, b = State("a"), State("b")
            >>> len(a.to(b, guard=lambda t: True).transitions)
            1
        """
        if not targets:
            raise TypeError("State.to() needs at least one target state")
        specs = [
            TransitionSpec(
                self,
                target,
                _as_tuple(guard),
                _as_tuple(unless),
                _as_tuple(before),
                _as_tuple(on),
                _as_tuple(after),
            )
            for target in targets
        ]
        return Event(*specs)

    def __repr__(self) -> str:
        flags = "".join(f", {flag}=True" for flag in ("initial", "final") if getattr(self, flag))
        return f"State({self.value!r}{flags})"


class Event:
    """An event declared in a machine class: a named group of transitions.

    Made by :meth:`State.to` and combined with ``|``. On an instance the
    attribute is a function sending the event: ``door.open(**payload)`` is
    ``door.send("open", **payload)``.

    Example:
        >>> from statekit.machine import State, StateMachine
        >>> class Order(StateMachine[str]):
        ...     pending = State(initial=True)
        ...     paid = State()
        ...     cancelled = State(final=True)
        ...     pay = pending.to(paid)
        ...     cancel = pending.to(cancelled) | paid.to(cancelled)
        >>> order = Order()
        >>> order.pay()
        'paid'
        >>> order.cancel()
        'cancelled'
    """

    __slots__ = ("name", "transitions")

    def __init__(self, *transitions: TransitionSpec) -> None:
        self.transitions: list[TransitionSpec] = list(transitions)
        self.name: str | None = None

    def __or__(self, other: Event) -> Event:
        if not isinstance(other, Event):
            return NotImplemented
        return Event(*self.transitions, *other.transitions)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Event: ...
    @overload
    def __get__(self, obj: MachineBase[Any], objtype: type | None = None) -> Callable[..., Any]: ...
    def __get__(self, obj: MachineBase[Any] | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        bound = partial(obj.send, self.name or "")
        # Cache on the instance: this is a non-data descriptor, so the next
        # lookup finds the instance attribute and skips building a partial.
        with contextlib.suppress(TypeError):  # an instance without __dict__
            vars(obj)[self.name or ""] = bound
        return bound

    def __repr__(self) -> str:
        arrows = ", ".join(f"{t.source.value!r}->{t.target.value!r}" for t in self.transitions)
        return f"Event({self.name!r}: {arrows})"
