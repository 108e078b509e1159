"""Turning a machine description into a checked, compiled :class:`Definition`.

Both ways of describing a machine end here: the seed's constructor
(``initial_state=``, ``transitions={state: [targets]}``, optional ``events=``)
and the class syntax (:class:`~statekit.machine.State` attributes joined by
events). Every mistake that can be found without running the machine raises
:class:`~statekit.InvalidDefinition` now — when the class is defined or the
constructor called — not at the first unlucky event in production.

The result is a set of lookup tables keyed by state, and for every arrow an
:class:`Edge` holding its guards and hooks as plain ``fn(machine, transition)``
callables in the order they run, so the running machine does no resolving.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from ..exceptions import InvalidDefinition
from ._spec import Event, Hook, State, Transition

__all__ = ["Call", "Definition", "Edge", "from_arguments", "from_class"]

Call = Callable[[Any, Transition], Any]
"""A guard or hook adapted to one calling convention: ``fn(machine, transition)``."""


class Edge:
    """One compiled arrow ``source -> target`` (for ``event``, or ``None``)."""

    __slots__ = (
        "after",
        "before",
        "enters",
        "event",
        "exits",
        "guard_names",
        "guards",
        "on",
        "simple",
        "source",
        "target",
    )

    def __init__(
        self,
        source: Any,
        target: Any,
        event: str | None,
        *,
        guards: tuple[Call, ...],
        guard_names: tuple[str, ...],
        before: tuple[Call, ...],
        on: tuple[Call, ...],
        after: tuple[Call, ...],
    ) -> None:
        self.source = source
        self.target = target
        self.event = event
        self.guards = guards
        self.guard_names = guard_names
        self.before = before
        self.on = on
        self.after = after
        self.exits: tuple[Call, ...] = ()
        self.enters: tuple[Call, ...] = ()
        self.simple = False


class Definition:
    """A checked machine description, shared by every instance of a class."""

    __slots__ = (
        "by_event",
        "by_id",
        "by_target",
        "edges",
        "enter",
        "events",
        "exit",
        "fast_events",
        "fast_targets",
        "finals",
        "ids",
        "initial",
        "name",
        "states",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.states: tuple[Any, ...] = ()
        self.initial: Any = None
        self.finals: frozenset[Any] = frozenset()
        self.ids: dict[Any, str] = {}
        self.by_id: dict[str, Any] = {}
        self.by_event: dict[Any, dict[str, tuple[Edge, ...]]] = {}
        self.by_target: dict[Any, dict[Any, tuple[Edge, ...]]] = {}
        self.enter: dict[Any, tuple[Call, ...]] = {}
        self.exit: dict[Any, tuple[Call, ...]] = {}
        self.edges: tuple[Edge, ...] = ()
        self.events: tuple[str, ...] = ()
        # For arrows that need no call (``Edge.simple``) and win their key:
        # state -> event -> target, and state -> target -> event.
        self.fast_events: dict[Any, dict[str, Any]] = {}
        self.fast_targets: dict[Any, dict[Any, str | None]] = {}


def state_id(state: Any) -> str:
    """The JSON name of a state: a str as is, an enum member by its name."""
    if isinstance(state, Enum):
        return state.name
    if isinstance(state, str):
        return state
    return repr(state)


# -- adapting user callables ------------------------------------------------


def _positional(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` accepts (2 when it takes ``*args``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: assume one
        return 1
    count = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _adapt(fn: Callable[..., Any], *, method: bool) -> Call:
    # Decided once here so that running hooks costs one call, not a signature check.
    wanted = _positional(fn) - (1 if method else 0)
    if method:
        if wanted >= 1:
            return fn
        return lambda machine, _t: fn(machine)
    if wanted >= 1:
        return lambda _machine, t: fn(t)
    return lambda _machine, _t: fn()


def _label(hook: Hook) -> str:
    if isinstance(hook, str):
        return hook
    return getattr(hook, "__qualname__", None) or getattr(hook, "__name__", None) or repr(hook)


class _Builder:
    """Collects states and arrows, then checks and compiles them."""

    def __init__(self, name: str, cls: type | None, allow_async: bool) -> None:
        self.name = name
        self.cls = cls
        self.allow_async = allow_async
        self.states: list[Any] = []
        self.state_names: dict[Any, str] = {}  # class syntax: state -> attribute name
        self.initial: list[Any] = []
        self.finals: set[Any] = set()
        self.declared_final: set[Any] = set()
        self.enter: dict[Any, list[Call]] = {}
        self.exit: dict[Any, list[Call]] = {}
        self.edges: list[Edge] = []
        self.events: list[str] = []

    def fail(self, message: str) -> InvalidDefinition:
        return InvalidDefinition(f"state machine {self.name!r}: {message}")

    def resolve(self, hook: Hook, what: str) -> tuple[Call, str]:
        """Turn a hook (callable or method name) into ``fn(machine, transition)``."""
        label = _label(hook)
        if isinstance(hook, str):
            if self.cls is None:
                raise self.fail(
                    f"{what} {hook!r} is a method name, but a machine built from "
                    "arguments has no methods; pass a callable"
                )
            try:
                raw = inspect.getattr_static(self.cls, hook)
            except AttributeError:
                raise self.fail(f"{what} {hook!r} names no method of the class") from None
            if isinstance(raw, staticmethod):
                fn, method = raw.__func__, False
            elif isinstance(raw, classmethod):
                fn, method = getattr(self.cls, hook), False
            elif inspect.isfunction(raw):
                fn, method = raw, True
            elif callable(raw):
                fn, method = raw, False
            else:
                raise self.fail(f"{what} {hook!r} is not callable")
        elif callable(hook):
            fn = hook
            # A function written in the class body and passed directly is
            # still a method: it expects the machine as ``self``.
            method = self.cls is not None and any(
                vars(k).get(getattr(hook, "__name__", "")) is hook for k in self.cls.__mro__
            )
        else:
            raise self.fail(f"{what} {hook!r} is neither callable nor a method name")
        if not self.allow_async and (
            inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        ):
            raise self.fail(
                f"{what} {label!r} is async; use AsyncStateMachine for async guards and hooks"
            )
        return _adapt(fn, method=method), label

    def hooks(self, hooks: Iterable[Hook], what: str) -> list[Call]:
        return [self.resolve(h, what)[0] for h in hooks]

    def add_state(self, state: Any, *, initial: bool = False, final: bool = False) -> None:
        try:
            hash(state)
        except TypeError:
            raise self.fail(f"state {state!r} is not hashable") from None
        if state in self.enter:
            raise self.fail(f"state {state!r} is declared twice")
        self.states.append(state)
        self.enter[state] = []
        self.exit[state] = []
        if initial:
            self.initial.append(state)
        if final:
            self.declared_final.add(state)

    def add_edge(
        self,
        source: Any,
        target: Any,
        event: str | None,
        *,
        guards: Sequence[Hook] = (),
        unless: Sequence[Hook] = (),
        before: Sequence[Hook] = (),
        on: Sequence[Hook] = (),
        after: Sequence[Hook] = (),
    ) -> None:
        what = f"guard of {event or 'transition'} {state_id(source)}->{state_id(target)}"
        calls: list[Call] = []
        names: list[str] = []
        for g in guards:
            fn, label = self.resolve(g, what)
            calls.append(fn)
            names.append(label)
        for g in unless:
            fn, label = self.resolve(g, what)
            calls.append(_negate_async(fn) if self.allow_async else _negate(fn))
            names.append(f"not {label}")
        self.edges.append(
            Edge(
                source,
                target,
                event,
                guards=tuple(calls),
                guard_names=tuple(names),
                before=tuple(self.hooks(before, "before hook")),
                on=tuple(self.hooks(on, "on hook")),
                after=tuple(self.hooks(after, "after hook")),
            )
        )

    def finish(self, *, strict_finals: bool) -> Definition:
        if not self.states:
            raise self.fail("it has no states")
        if not self.initial:
            raise self.fail("no initial state (mark one with State(initial=True))")
        if len(self.initial) > 1:
            names = ", ".join(repr(s) for s in self.initial)
            raise self.fail(f"more than one initial state: {names}")
        known = set(self.states)
        outgoing: dict[Any, list[Edge]] = {s: [] for s in self.states}
        for edge in self.edges:
            for end in (edge.source, edge.target):
                if end not in known:
                    raise self.fail(
                        f"transition {state_id(edge.source)!r} -> {state_id(edge.target)!r} "
                        f"uses {end!r}, which is not one of its states"
                    )
            outgoing[edge.source].append(edge)
        for state in self.states:
            if state in self.declared_final and outgoing[state]:
                raise self.fail(f"final state {state_id(state)!r} has outgoing transitions")
            if strict_finals and not outgoing[state] and state not in self.declared_final:
                raise self.fail(
                    f"state {state_id(state)!r} has no way out; mark it State(final=True) "
                    "or give it a transition"
                )
        self._check_ambiguity()
        self._check_reachable(outgoing)

        d = Definition(self.name)
        d.states = tuple(self.states)
        d.initial = self.initial[0]
        d.finals = frozenset(s for s in self.states if not outgoing[s])
        for state in self.states:
            sid = state_id(state)
            if sid in d.by_id:
                raise self.fail(f"states {d.by_id[sid]!r} and {state!r} have the same name {sid!r}")
            d.ids[state] = sid
            d.by_id[sid] = state
            d.enter[state] = tuple(self.enter[state])
            d.exit[state] = tuple(self.exit[state])
        by_event: dict[Any, dict[str, list[Edge]]] = {s: {} for s in self.states}
        by_target: dict[Any, dict[Any, list[Edge]]] = {s: {} for s in self.states}
        for edge in self.edges:
            edge.exits = d.exit[edge.source]
            edge.enters = d.enter[edge.target]
            if edge.event is not None:
                by_event[edge.source].setdefault(edge.event, []).append(edge)
            by_target[edge.source].setdefault(edge.target, []).append(edge)
        for edge in self.edges:
            # The fast path: nothing to call, so a move is a lookup and an
            # assignment. An unguarded arrow is always the first one tried
            # that passes (later ones for the same key could never win).
            edge.simple = not (
                edge.guards or edge.before or edge.on or edge.after or edge.exits or edge.enters
            )
        d.by_event = {s: {e: tuple(v) for e, v in row.items()} for s, row in by_event.items()}
        d.by_target = {s: {t: tuple(v) for t, v in row.items()} for s, row in by_target.items()}
        d.fast_events = {
            s: {e: v[0].target for e, v in row.items() if v[0].simple}
            for s, row in d.by_event.items()
        }
        d.fast_targets = {
            s: {t: v[0].event for t, v in row.items() if v[0].simple}
            for s, row in d.by_target.items()
        }
        d.edges = tuple(self.edges)
        d.events = tuple(dict.fromkeys(self.events))
        return d

    def _check_ambiguity(self) -> None:
        seen: dict[tuple[Any, str], list[Edge]] = {}
        for edge in self.edges:
            if edge.event is not None:
                seen.setdefault((edge.source, edge.event), []).append(edge)
        for (source, event), edges in seen.items():
            for i, edge in enumerate(edges[:-1]):
                if not edge.guards:
                    later = ", ".join(repr(state_id(e.target)) for e in edges[i + 1 :])
                    raise self.fail(
                        f"event {event!r} from {state_id(source)!r} is ambiguous: the "
                        f"unguarded transition to {state_id(edge.target)!r} always wins, "
                        f"so the one(s) to {later} can never run; add a guard"
                    )

    def _check_reachable(self, outgoing: Mapping[Any, list[Edge]]) -> None:
        start = self.initial[0]
        reached = {start}
        todo = deque([start])
        while todo:
            for edge in outgoing[todo.popleft()]:
                if edge.target not in reached:
                    reached.add(edge.target)
                    todo.append(edge.target)
        unreachable = [state_id(s) for s in self.states if s not in reached]
        if unreachable:
            raise self.fail(
                f"state(s) {', '.join(map(repr, unreachable))} cannot be reached "
                f"from the initial state {state_id(start)!r}"
            )


def _negate(fn: Call) -> Call:
    return lambda machine, t: not fn(machine, t)


def _negate_async(fn: Call) -> Call:
    async def guard(machine: Any, t: Transition) -> bool:
        result = fn(machine, t)
        if inspect.isawaitable(result):
            result = await result
        return not result

    return guard


# -- the two ways in --------------------------------------------------------


def from_class(cls: type, base_names: frozenset[str], *, allow_async: bool) -> Definition | None:
    """Compile the class syntax; ``None`` when the class declares no state."""
    states: dict[str, State] = {}
    events: dict[str, Event] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, State):
                states[attr] = value
            elif isinstance(value, Event):
                events[attr] = value
    if not states:
        if events:
            raise InvalidDefinition(f"state machine {cls.__name__!r}: events but no states")
        return None
    b = _Builder(cls.__name__, cls, allow_async)
    by_object = {id(s): s for s in states.values()}
    for attr, st in states.items():
        b.add_state(st.value, initial=st.initial, final=st.final)
        b.state_names[st.value] = attr
    for attr, ev in events.items():
        if attr in base_names:
            raise b.fail(f"event {attr!r} would hide the machine's own {attr!r} attribute")
        if not ev.transitions:
            raise b.fail(f"event {attr!r} has no transitions")
        b.events.append(attr)
        for spec in ev.transitions:
            for end in (spec.source, spec.target):
                if id(end) not in by_object:
                    raise b.fail(f"event {attr!r} uses {end!r}, which is not a state of this class")
            b.add_edge(
                spec.source.value,
                spec.target.value,
                attr,
                guards=spec.guards,
                unless=spec.unless,
                before=(*spec.before, *_named(cls, f"before_{attr}")),
                on=(*spec.on, *_named(cls, f"on_{attr}")),
                after=(*spec.after, *_named(cls, f"after_{attr}")),
            )
    for attr, st in states.items():
        b.enter[st.value] = b.hooks((*st.on_enter, *_named(cls, f"on_enter_{attr}")), "on_enter")
        b.exit[st.value] = b.hooks((*st.on_exit, *_named(cls, f"on_exit_{attr}")), "on_exit")
    # A method named after a state that does not exist is a typo that would
    # otherwise silently never run.
    for klass in cls.__mro__:
        for attr in vars(klass):
            for prefix in ("on_enter_", "on_exit_"):
                if attr.startswith(prefix) and attr[len(prefix) :] not in states:
                    raise b.fail(
                        f"method {attr!r} names no state (states: {', '.join(sorted(states))})"
                    )
    return b.finish(strict_finals=True)


def _named(cls: type, attr: str) -> tuple[str, ...]:
    return (attr,) if callable(getattr(cls, attr, None)) else ()


def from_arguments(
    name: str,
    initial_state: Any,
    *,
    transitions: Mapping[Any, Iterable[Any]] | None,
    events: Mapping[str, Mapping[Any, Any] | Iterable[tuple[Any, Any]]] | None,
    guards: Mapping[str, Hook | Sequence[Hook]] | None,
    on_enter: Mapping[Any, Hook | Sequence[Hook]] | None,
    on_exit: Mapping[Any, Hook | Sequence[Hook]] | None,
    before: Mapping[str, Hook | Sequence[Hook]] | None,
    after: Mapping[str, Hook | Sequence[Hook]] | None,
    allow_async: bool,
) -> Definition:
    """Compile the constructor form (the seed's ``initial_state=``/``transitions=``)."""
    b = _Builder(name, None, allow_async)
    if transitions is None and events is None:
        raise b.fail("give transitions={state: [targets]} and/or events={name: {source: target}}")
    if transitions is not None and not isinstance(transitions, Mapping):
        raise b.fail(f"transitions must be a mapping of state to targets, got {transitions!r}")
    arrows: list[tuple[Any, Any, str | None]] = []
    order: list[Any] = []
    if transitions is not None:
        order.extend(transitions)
        for source, targets in transitions.items():
            if isinstance(targets, str) or not isinstance(targets, Iterable):
                raise b.fail(f"the targets of {source!r} must be a list of states, got {targets!r}")
            arrows.extend((source, target, None) for target in dict.fromkeys(targets))
    event_arrows: list[tuple[Any, Any, str]] = []
    for event, spec in (events or {}).items():
        if not isinstance(event, str) or not event:
            raise b.fail(f"event names must be non-empty str, got {event!r}")
        pairs = list(spec.items()) if isinstance(spec, Mapping) else list(spec)
        if not pairs:
            raise b.fail(f"event {event!r} has no transitions")
        b.events.append(event)
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise b.fail(f"event {event!r}: expected (source, target) pairs, got {pair!r}")
            event_arrows.append((pair[0], pair[1], event))
    if transitions is None:
        # Without a state table the states are whatever the events mention.
        order.append(initial_state)
        for source, target, _ in event_arrows:
            order.extend((source, target))
    for state in order:
        try:
            hash(state)
        except TypeError:
            raise b.fail(f"state {state!r} is not hashable") from None
    for state in dict.fromkeys(order):
        b.add_state(state, initial=state == initial_state)
    if initial_state not in b.enter:
        raise b.fail(f"initial state {initial_state!r} is not one of its states")
    for mapping, what in ((guards, "guards"), (before, "before"), (after, "after")):
        for key in mapping or {}:
            if key not in b.events:
                raise b.fail(f"{what} given for {key!r}, which is not an event")
    for source, target, _ in arrows:
        b.add_edge(source, target, None)
    for source, target, event in event_arrows:
        b.add_edge(
            source,
            target,
            event,
            guards=_hooks((guards or {}).get(event)),
            before=_hooks((before or {}).get(event)),
            after=_hooks((after or {}).get(event)),
        )
    for mapping, table, what in ((on_enter, b.enter, "on_enter"), (on_exit, b.exit, "on_exit")):
        for state, hooks in (mapping or {}).items():
            if state not in table:
                raise b.fail(f"{what} given for {state!r}, which is not one of its states")
            table[state] = b.hooks(_hooks(hooks), what)
    return b.finish(strict_finals=False)


def _hooks(value: Hook | Sequence[Hook] | None) -> tuple[Hook, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or callable(value):
        return (value,)
    return tuple(value)
