"""Finite state machines: :class:`StateMachine` and its asyncio twin.

A machine has a fixed set of states and the moves allowed between them. Build
one from arguments, as the seed does::

    machine = StateMachine(
        initial_state="draft",
        transitions={"draft": ["review"], "review": ["approved", "draft"], "approved": []},
    )

or declare it as a class, checked when the class is defined::

    class Order(StateMachine[str]):
        pending = State(initial=True)
        paid = State()
        shipped = State(final=True)
        pay = pending.to(paid, guard=lambda t: t.payload.get("amount", 0) > 0)
        ship = paid.to(shipped)

Guards see the event's payload; hooks run in a documented order and a failing
hook rolls the move back; listeners run after the move, outside the lock; a
bounded history gives ``previous()`` and ``back()``; ``snapshot()`` and
``restore()`` save and resume a machine as JSON; ``to_mermaid()`` draws it.

Example:
    >>> from statekit.machine import StateMachine
    >>> m = StateMachine(initial_state="draft", transitions={"draft": ["review"], "review": []})
    >>> m.transition("review")
    'review'
"""

from __future__ import annotations

from ._async import AsyncStateMachine
from ._spec import Event, State, Transition
from ._sync import StateMachine

__all__ = ["AsyncStateMachine", "Event", "State", "StateMachine", "Transition"]
