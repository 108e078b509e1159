"""What the sync and async machines share: definition, state, history, snapshots.

Everything here reads or replaces the machine's state without running user
code, so it is the same for :class:`~statekit.machine.StateMachine` and
:class:`~statekit.machine.AsyncStateMachine`; the two subclasses differ only
in how they run guards, hooks and listeners.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, Generic, TypeVar

from ..exceptions import InvalidDefinition, StatekitError, TransitionNotAllowed, ValidationError
from ._definition import Definition, Edge, from_arguments, from_class
from ._mermaid import render
from ._spec import Hook, Transition

__all__ = ["BACK", "EVENT", "START", "TARGET", "MachineBase", "report"]

S = TypeVar("S")

# What a queued request asks for (small ints: compared with ``is``).
EVENT: Final = 0
TARGET: Final = 1
BACK: Final = 2
START: Final = 3

SNAPSHOT_FORMAT = "statekit.machine/1"


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def report(exc: BaseException, where: str) -> None:
    """Hand a listener's error to statekit's error hook (default: logged)."""
    from .._engine import report as engine_report

    engine_report(exc, where)


class MachineBase(Generic[S]):
    """The common part of :class:`StateMachine` and :class:`AsyncStateMachine`."""

    _definition: ClassVar[Definition | None] = None
    _is_async: ClassVar[bool] = False
    _statekit_base: ClassVar[bool] = True  # marks statekit's own classes (not inherited: vars)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Names of the machine's own API: an event may not hide one of them.
        own = frozenset(
            name for klass in cls.__mro__ if "_statekit_base" in vars(klass) for name in vars(klass)
        ) | {"name"}
        cls._definition = from_class(cls, own, allow_async=cls._is_async)

    def __init__(
        self,
        initial_state: S = _UNSET,
        transitions: Mapping[S, Iterable[S]] | None = None,
        *,
        events: Mapping[str, Mapping[S, S] | Iterable[tuple[S, S]]] | None = None,
        guards: Mapping[str, Hook | Sequence[Hook]] | None = None,
        on_enter: Mapping[S, Hook | Sequence[Hook]] | None = None,
        on_exit: Mapping[S, Hook | Sequence[Hook]] | None = None,
        before: Mapping[str, Hook | Sequence[Hook]] | None = None,
        after: Mapping[str, Hook | Sequence[Hook]] | None = None,
        history: int | None = 100,
        name: str | None = None,
        snapshot: Mapping[str, Any] | str | None = None,
    ) -> None:
        self._prepare()
        cls = type(self)
        definition = cls._definition
        if definition is None:
            if initial_state is _UNSET:
                raise InvalidDefinition(
                    f"{cls.__name__} needs initial_state= and transitions= "
                    "(or declare State attributes in a subclass)"
                )
            definition = from_arguments(
                name or cls.__name__,
                initial_state,
                transitions=transitions,
                events=events,
                guards=guards,
                on_enter=on_enter,
                on_exit=on_exit,
                before=before,
                after=after,
                allow_async=cls._is_async,
            )
        elif initial_state is not _UNSET or any(
            x is not None for x in (transitions, events, guards, on_enter, on_exit, before, after)
        ):
            raise InvalidDefinition(
                f"{cls.__name__} declares its states in the class; it takes no "
                "initial_state=, transitions=, events=, guards= or hooks arguments"
            )
        if history is not None and history < 0:
            raise ValueError(f"history must be >= 0 or None, got {history}")
        self._def = definition
        self.name: str = name or definition.name
        # The tables are copied to the instance so the hot path reads one
        # attribute instead of two.
        self._events = definition.by_event
        self._targets = definition.by_target
        self._fast_events = definition.fast_events
        self._fast_targets = definition.fast_targets
        self._state: S = definition.initial
        self._history: deque[tuple[str | None, S, S]] = deque(maxlen=history)
        self._listeners: tuple[Callable[[Transition], Any], ...] = ()
        self._listeners_lock = threading.Lock()
        self._pending: deque[Transition] = deque()
        self._delivering = False
        # Requests made by hooks while a transition runs: they run after it,
        # before anyone else's (run-to-completion).
        self._internal: deque[tuple[int, Any, Mapping[str, Any]]] = deque()
        self._running = False
        if snapshot is not None:
            self._load(snapshot)
        self._ready(snapshot is not None)

    def _prepare(self) -> None:
        """Set up what the sync or async twin needs before the machine is built."""

    def _ready(self, restored: bool) -> None:
        """The machine is built (``restored``: from a snapshot, entry hooks not re-run)."""

    # -- reading ------------------------------------------------------------

    @property
    def current_state(self) -> S:
        """The state the machine is in.

        Example:
            >>> from statekit.machine import StateMachine
            >>> StateMachine(initial_state="draft", transitions={"draft": []}).current_state
            'draft'
        """
        return self._state

    @property
    def initial_state(self) -> S:
        """The state the machine started in."""
        initial: S = self._def.initial
        return initial

    @property
    def states(self) -> tuple[S, ...]:
        """Every state, in the order they were declared."""
        return self._def.states

    @property
    def events(self) -> tuple[str, ...]:
        """Every event name, in the order they were declared."""
        return self._def.events

    @property
    def is_final(self) -> bool:
        """Whether the current state has no way out.

        Example:
            >>> from statekit.machine import StateMachine
            >>> StateMachine(initial_state="a", transitions={"a": []}).is_final
            True
        """
        return self._state in self._def.finals

    @property
    def allowed_events(self) -> list[str]:
        """Events with a transition from the current state (guards not checked).

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", events={"go": {"a": "b"}})
            >>> m.allowed_events
            ['go']
        """
        return list(self._events[self._state])

    @property
    def allowed_targets(self) -> list[S]:
        """States reachable in one move from the current state (guards not checked).

        Example:
            >>> from statekit.machine import StateMachine
            >>> StateMachine(initial_state="a", transitions={"a": ["b", "c"], "b": [], "c": []}
            ...             ).allowed_targets
            ['b', 'c']
        """
        return list(self._targets[self._state])

    @property
    def history(self) -> list[Transition]:
        """The last moves, oldest first (as many as ``history=`` allows).

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": ["a"]})
            >>> _ = m.transition("b"); _ = m.transition("a")
            >>> [(t.source, t.target) for t in m.history]
            [('a', 'b'), ('b', 'a')]
        """
        return [Transition(src, dst, ev) for ev, src, dst in list(self._history)]

    def previous(self) -> S | None:
        """The state before the last move, or ``None`` when there was none.

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
            >>> m.previous() is None
            True
            >>> _ = m.transition("b"); m.previous()
            'a'
        """
        try:
            return self._history[-1][1]
        except IndexError:
            return None

    # -- listeners ------------------------------------------------------------

    def subscribe(self, fn: Callable[[Transition], Any]) -> Callable[[], None]:
        """Call ``fn(transition)`` after each move; return a function that unsubscribes.

        Listeners run after the move is committed, outside the machine's lock,
        one at a time, in the order of the moves. An exception in one goes to
        statekit's error hook and neither stops the others nor undoes the move.

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
            >>> off = m.subscribe(lambda t: print(t.source, "->", t.target))
            >>> _ = m.transition("b")
            a -> b
            >>> off()
        """
        # Copy-on-write: the runners read the tuple without a lock.
        with self._listeners_lock:
            self._listeners = (*self._listeners, fn)

        def unsubscribe() -> None:
            with self._listeners_lock:
                listeners = list(self._listeners)
                if fn in listeners:
                    listeners.remove(fn)
                self._listeners = tuple(listeners)

        return unsubscribe

    # -- snapshots ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the machine's state and history as JSON-ready data.

        Pass it to :meth:`restore` (or to the constructor as ``snapshot=``) to
        continue where this machine is, without running any entry hook.

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
            >>> _ = m.transition("b")
            >>> snap = m.snapshot()
            >>> snap["format"], snap["state"], snap["history"]
            ('statekit.machine/1', 'b', [[None, 'a', 'b']])
        """
        ids = self._def.ids
        return {
            "format": SNAPSHOT_FORMAT,
            "machine": self.name,
            "state": ids[self._state],
            "history": [[ev, ids[src], ids[dst]] for ev, src, dst in list(self._history)],
        }

    def restore(self, snapshot: Mapping[str, Any] | str) -> None:
        """Put the machine in the state recorded by :meth:`snapshot`.

        No hook runs and no listener is called: restoring is not a move. A
        snapshot from a different machine raises :class:`~statekit.ValidationError`.

        Example:
            >>> from statekit.machine import StateMachine
            >>> def make():
            ...     return StateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
            >>> m = make(); _ = m.transition("b")
            >>> other = make(); other.restore(m.snapshot()); other.current_state
            'b'
        """
        if self._running:
            raise StatekitError(f"state machine {self.name!r}: cannot restore during a transition")
        self._load(snapshot)

    def _load(self, snapshot: Mapping[str, Any] | str) -> None:
        data: Any = json.loads(snapshot) if isinstance(snapshot, str) else snapshot
        where = f"snapshot for state machine {self.name!r}"
        if not isinstance(data, Mapping) or data.get("format") != SNAPSHOT_FORMAT:
            raise ValidationError(f"{where}: not a statekit machine snapshot")
        by_id = self._def.by_id

        def state(sid: Any) -> Any:
            if not isinstance(sid, str) or sid not in by_id:
                raise ValidationError(
                    f"{where}: {sid!r} is not one of its states ({', '.join(by_id)})"
                )
            return by_id[sid]

        current = state(data.get("state"))
        records = data.get("history", [])
        if not isinstance(records, list):
            raise ValidationError(f"{where}: history must be a list")
        history: list[tuple[str | None, Any, Any]] = []
        for record in records:
            if not (isinstance(record, list | tuple) and len(record) == 3):
                raise ValidationError(f"{where}: bad history record {record!r}")
            event, src, dst = record
            if event is not None and not isinstance(event, str):
                raise ValidationError(f"{where}: bad event name {event!r}")
            history.append((event, state(src), state(dst)))
        self._state = current
        self._history.clear()
        self._history.extend(history)

    # -- drawing ----------------------------------------------------------------

    def to_mermaid(self) -> str:
        """Return a Mermaid ``stateDiagram-v2`` of the machine, current state highlighted.

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", events={"go": {"a": "b"}})
            >>> print(m.to_mermaid())
            stateDiagram-v2
                [*] --> a
                a --> b : go
                b --> [*]
                classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px
                class a current
            <BLANKLINE>
        """
        return render(self._def, self._state)

    # -- shared helpers for the runners -------------------------------------------

    def send(self, event: str, /, **payload: Any) -> Any:  # pragma: no cover - overridden
        """Send ``event``; the subclasses implement it."""
        raise NotImplementedError

    def _edges(self, kind: int, key: Any) -> tuple[Edge, ...]:
        table = self._events if kind == EVENT else self._targets
        edges = table[self._state].get(key)
        if edges is None:
            raise self._refused(kind, key)
        return edges

    def _refused(self, kind: int, key: Any, guards: Sequence[str] = ()) -> TransitionNotAllowed:
        ids = self._def.ids
        here = ids[self._state]
        if kind == EVENT:
            if guards:
                return TransitionNotAllowed(
                    f"state machine {self.name!r}: event {key!r} in state {here!r} was "
                    f"refused by {', '.join(guards)}"
                )
            allowed = ", ".join(repr(e) for e in self._events[self._state]) or "none"
            what = "unknown event" if key not in self._def.events else "event"
            return TransitionNotAllowed(
                f"state machine {self.name!r}: {what} {key!r} is not allowed in state "
                f"{here!r}; allowed events: {allowed}"
            )
        try:
            target = ids.get(key, key)
        except TypeError:  # an unhashable target
            target = key
        if guards:
            return TransitionNotAllowed(
                f"state machine {self.name!r}: transition from {here!r} to {target!r} "
                f"was refused by {', '.join(guards)}"
            )
        allowed = ", ".join(repr(ids[t]) for t in self._targets[self._state]) or "none (final)"
        return TransitionNotAllowed(
            f"state machine {self.name!r}: cannot transition from {here!r} to "
            f"{target!r}; allowed from {here!r}: {allowed}"
        )

    def _no_history(self) -> TransitionNotAllowed:
        return TransitionNotAllowed(
            f"state machine {self.name!r}: no earlier state to go back to from "
            f"{self._def.ids[self._state]!r}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, state={self._state!r})"
