"""The synchronous, thread-safe :class:`StateMachine`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from threading import get_ident
from typing import Any, TypeVar

from ._base import BACK, EVENT, TARGET, MachineBase, report
from ._definition import Edge
from ._spec import EMPTY_PAYLOAD, Transition

__all__ = ["StateMachine"]

S = TypeVar("S")

_SLOW: Any = object()  # "no fast path here" in the fast tables


class StateMachine(MachineBase[S]):
    """A finite state machine: explicit states, allowed moves, guards and hooks.

    Build one from arguments, as in the seed::

        machine = StateMachine(
            initial_state="draft",
            transitions={"draft": ["review"], "review": ["approved", "draft"], "approved": []},
        )
        machine.transition("review")

    or declare it as a class with :class:`State` attributes joined by events
    (checked when the class is defined: a missing initial state, an
    unreachable state or an ambiguous event raise
    :class:`~statekit.InvalidDefinition` at once)::

        class Order(StateMachine[str]):
            pending = State(initial=True)
            paid = State()
            shipped = State(final=True)
            pay = pending.to(paid, guard=lambda t: t.payload.get("amount", 0) > 0)
            ship = paid.to(shipped)

            def on_enter_shipped(self, t: Transition) -> None: ...

    **What runs, in order**, when a move is made: the guards (``guard=`` must
    all be true, ``unless=`` all false; the first arrow whose guards pass is
    taken), then the transition's ``before`` hooks (and a ``before_<event>``
    method), the source state's exit hooks (``on_exit=``, ``on_exit_<state>``),
    the transition's ``on`` hooks (``on_<event>``), then the state changes,
    then the target's entry hooks (``on_enter=``, ``on_enter_<state>``), the
    transition's ``after`` hooks (``after_<event>``). Then the move is
    committed to the history and, outside the lock, listeners are called.

    If a guard or hook raises, the machine stays in (or returns to) the
    source state, nothing is recorded, no listener is called, and the
    exception propagates. Hooks receive the :class:`Transition` (or nothing,
    if they take no argument). An event sent from a hook runs after the
    current move completes (run-to-completion); other threads wait.

    Example:
        >>> from statekit.machine import StateMachine
        >>> m = StateMachine(
        ...     initial_state="draft",
        ...     transitions={"draft": ["review"], "review": ["published", "draft"],
        ...                  "published": []},
        ... )
        >>> m.transition("review")
        'review'
        >>> m.can_transition("draft"), m.can_transition("nowhere")
        (True, False)
        >>> m.back()
        'draft'
    """

    _statekit_base = True

    def _prepare(self) -> None:
        # A plain lock (cheaper than an RLock on the hot path). A hook that
        # sends an event runs on the thread holding it: ``_owner`` spots that
        # before the lock is taken, and the event is queued instead.
        self._lock = threading.Lock()
        self._owner: int | None = None

    def _ready(self, restored: bool) -> None:
        if not restored:
            enters = self._def.enter[self._state]
            if enters:
                t = Transition(None, self._state, None)
                for fn in enters:
                    fn(self, t)

    # -- moving ---------------------------------------------------------------

    def send(self, event: str, /, **payload: Any) -> S:
        """Send ``event`` (keyword arguments are its payload); return the new state.

        Raises :class:`~statekit.TransitionNotAllowed` (a ``ValueError``) when
        the event has no transition from the current state or its guards
        refuse, naming the state, the event and what is allowed.

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(
            ...     initial_state="idle",
            ...     events={"start": {"idle": "running"}, "stop": {"running": "idle"}},
            ...     guards={"start": lambda t: t.payload.get("ready", False)},
            ... )
            >>> m.send("start", ready=True)
            'running'
        """
        owner = self._owner
        if owner is not None and owner == get_ident():
            self._internal.append((EVENT, event, payload))
            return self._state
        with self._lock:
            state = self._state
            target: S = self._fast_events[state].get(event, _SLOW)
            if target is not _SLOW:
                # Fast path: an unguarded arrow with no hooks.
                self._state = target
                self._history.append((event, state, target))
                if not self._listeners:
                    return target
                self._pending.append(Transition(state, target, event, payload))
            else:
                target = self._run(EVENT, event, payload)
                if not self._pending:
                    return target
            if self._delivering:
                return target  # the thread delivering will deliver ours too, in order
            self._delivering = True
        self._deliver()
        return target

    def transition(self, target: S, /, **payload: Any) -> S:
        """Move to ``target`` if an arrow leads there from the current state.

        Raises :class:`~statekit.TransitionNotAllowed` (a ``ValueError``)
        naming the current state, the target and the allowed targets.

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="review",
            ...                  transitions={"review": ["approved"], "approved": []})
            >>> try:
            ...     m.transition("published")
            ... except ValueError as e:
            ...     for part in str(e).split("; "):
            ...         print(part)
            state machine 'StateMachine': cannot transition from 'review' to 'published'
            allowed from 'review': 'approved'
        """
        owner = self._owner
        if owner is not None and owner == get_ident():
            self._internal.append((TARGET, target, payload))
            return self._state
        with self._lock:
            state = self._state
            event = self._fast_targets[state].get(target, _SLOW)
            if event is not _SLOW:
                self._state = target
                self._history.append((event, state, target))
                if not self._listeners:
                    return target
                self._pending.append(Transition(state, target, event, payload))
            else:
                target = self._run(TARGET, target, payload)
                if not self._pending:
                    return target
            if self._delivering:
                return target
            self._delivering = True
        self._deliver()
        return target

    def back(self) -> S:
        """Undo the last move: return to the previous state (exit and entry hooks run).

        The move is taken off the history, so calling ``back()`` again goes
        further back. Raises :class:`~statekit.TransitionNotAllowed` when
        there is no history left.

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": ["c"], "c": []})
            >>> _ = m.transition("b"); _ = m.transition("c")
            >>> m.back(), m.back()
            ('b', 'a')
        """
        return self._request(BACK, None, EMPTY_PAYLOAD)

    def can_transition(self, target: S, /, **payload: Any) -> bool:
        """Whether :meth:`transition` to ``target`` would be allowed now (guards run).

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", transitions={"a": ["b"], "b": []})
            >>> m.can_transition("b"), m.can_transition("a")
            (True, False)
        """
        return self._can(TARGET, target, payload)

    def can_send(self, event: str, /, **payload: Any) -> bool:
        """Whether :meth:`send` of ``event`` would be allowed now (guards run).

        Example:
            >>> from statekit.machine import StateMachine
            >>> m = StateMachine(initial_state="a", events={"go": {"a": "b"}})
            >>> m.can_send("go"), m.can_send("stop")
            (True, False)
        """
        return self._can(EVENT, event, payload)

    # -- machinery ----------------------------------------------------------------

    def _request(self, kind: int, key: Any, payload: Mapping[str, Any]) -> S:
        owner = self._owner
        if owner is not None and owner == get_ident():
            self._internal.append((kind, key, payload))
            return self._state
        with self._lock:
            state = self._run(kind, key, payload)
            if not self._pending or self._delivering:
                return state
            self._delivering = True
        self._deliver()
        return state

    def _can(self, kind: int, key: Any, payload: Mapping[str, Any]) -> bool:
        owner = self._owner
        if owner is not None and owner == get_ident():
            return self._check(kind, key, payload)  # asked from a hook: lock held
        with self._lock:
            self._owner = get_ident()
            self._running = True
            try:
                return self._check(kind, key, payload)
            finally:
                self._owner = None
                self._running = False
                self._internal.clear()  # guards must not send; drop what they did

    def _check(self, kind: int, key: Any, payload: Mapping[str, Any]) -> bool:
        table = self._events if kind == EVENT else self._targets
        edges = table[self._state].get(key)
        if edges is None:
            return False
        return any(
            self._passes(edge, Transition(self._state, edge.target, edge.event, payload))
            for edge in edges
        )

    def _passes(self, edge: Edge, t: Transition) -> bool:
        return all(guard(self, t) for guard in edge.guards)

    def _run(self, kind: int, key: Any, payload: Mapping[str, Any]) -> S:
        # Under the lock. Runs the request, then whatever its hooks sent.
        self._owner = get_ident()
        self._running = True
        try:
            self._step(kind, key, payload)
            while self._internal:
                self._step(*self._internal.popleft())
        except BaseException:
            self._internal.clear()
            raise
        finally:
            self._owner = None
            self._running = False
        return self._state

    def _step(self, kind: int, key: Any, payload: Mapping[str, Any]) -> None:
        source = self._state
        if kind == BACK:
            self._step_back(source)
            return
        refused: list[str] = []
        for edge in self._edges(kind, key):
            t = Transition(source, edge.target, edge.event, payload)
            for guard, name in zip(edge.guards, edge.guard_names, strict=True):
                if not guard(self, t):
                    refused.append(name)
                    break
            else:
                break
        else:
            raise self._refused(kind, key, refused)
        try:
            for fn in edge.before:
                fn(self, t)
            for fn in edge.exits:
                fn(self, t)
            for fn in edge.on:
                fn(self, t)
            self._state = edge.target
            for fn in edge.enters:
                fn(self, t)
            for fn in edge.after:
                fn(self, t)
        except BaseException:
            self._state = source
            raise
        self._history.append((edge.event, source, edge.target))
        if self._listeners:
            self._pending.append(t)

    def _step_back(self, source: S) -> None:
        if not self._history:
            raise self._no_history()
        _, previous, _ = self._history[-1]
        t = Transition(source, previous, None)
        try:
            for fn in self._def.exit[source]:
                fn(self, t)
            self._state = previous
            for fn in self._def.enter[previous]:
                fn(self, t)
        except BaseException:
            self._state = source
            raise
        self._history.pop()
        if self._listeners:
            self._pending.append(t)

    def _deliver(self) -> None:
        # One thread at a time drains the queue, outside the lock, so
        # listeners see every move once, in order, and may send events.
        while True:
            with self._lock:
                if not self._pending:
                    self._delivering = False
                    return
                t = self._pending.popleft()
                listeners = self._listeners
            for fn in listeners:
                try:
                    fn(t)
                except Exception as exc:
                    report(exc, f"listener {fn!r} of state machine {self.name!r}")
