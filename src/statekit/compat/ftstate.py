"""FtState (Flet issue #5960) on statekit: ``from statekit.compat.ftstate import FtState``.

The seed proposes a session-scoped singleton base class for Flet apps: a
pydantic model, registered when subclassed, created once per session by
``FtState.initialize()``, read with ``use_state()`` (in a component, which
then re-renders on change) or ``get_state()`` (anywhere in the session).
This is that class, built on :class:`statekit.State`:

* each subclass is a ``scope="session"`` :class:`~statekit.State`: fields are
  validated on assignment and reactive, and every Flet session (see
  :mod:`statekit.flet`) has its own instance, released when it closes;
* ``initialize()`` works in ``main`` (no component needed) and attaches the
  page's session on its own, so ``ft.run(main)`` needs no wrapper;
* ``use_state()`` subscribes the component through statekit (delivered into
  the component's own session, unsubscribed on unmount and on close);
* ``@ft.observable`` on the class is accepted and changes nothing: FtState is
  already an ``ft.Observable``, so Flet's own ``ft.use_state(state)`` re-renders
  too, and Flet does not rebuild the pydantic class (which breaks it).

Errors are the seed's: ``use_state()`` before ``initialize()`` raises
``ValueError("State X not registered. Did you call State.initialize() in your
root component?")``, ``get_state()`` raises the seed's ``RuntimeError``.

Example:
    >>> from statekit.compat.ftstate import FtState
    >>> class Profile(FtState):
    ...     user_name: str = "Guest"
    >>> Profile.get_state()
    Traceback (most recent call last):
    ...
    RuntimeError: State Profile not initialized. Make sure State.initialize() was called ...
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar, cast

from flet.components.observable import Observable
from pydantic import ConfigDict

from .. import flet as skf
from .._model import State
from .._scope import SESSION, _current

__all__ = ["FtState", "StateRegistry"]

T = TypeVar("T")


class StateRegistry:
    """The seed's registry, over statekit's scopes (kept for code that uses it).

    Classes register when defined; instances live in the Flet session's
    statekit scope, and are also put in ``page.session.store`` under the
    seed's key (``"_state_manager_" + class name``).

    Example:
        >>> from statekit.compat.ftstate import FtState, StateRegistry
        >>> class Theme(FtState):
        ...     dark: bool = False
        >>> Theme in StateRegistry._registered_state_classes
        True
    """

    STATE_KEY_PREFIX = "_state_manager_"
    # Weak: classes made and dropped (in tests, say) do not linger.
    _registered_state_classes: ClassVar[weakref.WeakSet[type[FtState]]] = weakref.WeakSet()

    @classmethod
    def _get_storage_key(cls, state_type: type[Any]) -> str:
        return f"{cls.STATE_KEY_PREFIX}{state_type.__name__}"

    @classmethod
    def register_class(cls, state_class: type[FtState]) -> None:
        """Register a state class for :meth:`initialize`."""
        cls._registered_state_classes.add(state_class)

    @classmethod
    def _session(cls) -> skf.FletSession | None:
        session = skf.current_session()
        page = session.page if session is not None else None
        if page is not None and _current.get().chain[SESSION] is not session.scope:  # type: ignore[union-attr]
            skf.session(page)  # seen from main without skf.app: make it current
        return session

    @classmethod
    def get_instance(cls, state_type: type[T]) -> T | None:
        """This session's instance of ``state_type``, or ``None`` if not initialized."""
        cls._session()
        if _current.get().chain[SESSION] is None:
            return None
        kind: Any = state_type
        if not kind.exists():
            return None
        return kind.get()  # type: ignore[no-any-return]

    @classmethod
    def register_instance(cls, state_type: type[T], instance: T) -> None:
        """Also keep ``instance`` in the Flet session's ``store`` (the seed's storage)."""
        session = cls._session()
        flet_session = session.flet_session if session is not None else None
        if flet_session is not None:
            flet_session.store.set(cls._get_storage_key(state_type), instance)

    @classmethod
    def initialize(cls) -> dict[str, FtState]:
        """Create this session's instance of every registered class (idempotent)."""
        cls._session()
        if _current.get().chain[SESSION] is None:
            raise RuntimeError(
                "FtState.initialize() must run in a Flet session (in main or a component)"
            )
        # statekit's own initialize: every registered class that can make
        # itself (all fields have defaults), in definition order.
        made: dict[str, Any] = State.initialize.__func__(FtState)  # type: ignore[attr-defined]
        for instance in made.values():
            cls.register_instance(type(instance), instance)
        return made


class FtState(State, Observable, abstract=True, scope="session"):
    """Base class of session-scoped, typed, reactive application state (the seed's FtState).

    Example:
        >>> import flet as ft
        >>> from statekit.compat.ftstate import FtState
        >>> @ft.observable
        ... class AppState(FtState):
        ...     count: int = 0
        ...     def increment(self):
        ...         self.count += 1
        >>> @ft.component
        ... def Counter():
        ...     state = AppState.use_state()
        ...     return ft.Button(f"Count: {state.count}", on_click=lambda _: state.increment())
        >>> def main(page: ft.Page):
        ...     FtState.initialize()
        ...     page.add(Counter())
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        validate_assignment=True,
        extra="allow",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Auto-register when inherited."""
        kwargs.setdefault("scope", "session")
        super().__init_subclass__(**kwargs)
        if not kwargs.get("abstract", False):
            StateRegistry.register_class(cls)

    @classmethod
    def use_state(cls) -> Self:
        """This session's instance; inside an ``@ft.component`` it re-renders on changes."""
        state = StateRegistry.get_instance(cls)
        if state is None:
            raise ValueError(
                f"State {cls.__name__} not registered. "
                f"Did you call State.initialize() in your root component?"
            )
        from flet.components.utils import current_component

        try:
            current_component()
        except Exception:
            return state  # not rendering a component: nothing to subscribe
        return cast(Self, skf.use_model(state))

    @classmethod
    def get_state(cls) -> Self:
        """This session's instance, without subscribing (event handlers, controllers)."""
        state = StateRegistry.get_instance(cls)
        if state is None:
            raise RuntimeError(
                f"State {cls.__name__} not initialized. "
                f"Make sure State.initialize() was called in your root component."
            )
        return state

    @classmethod
    def initialize(cls, *classes: type[State]) -> dict[str, Any]:
        """Create the current session's instance of every FtState class.

        Call it once where the session starts (``main`` or the root component).
        """
        if classes:
            StateRegistry._session()
            return State.initialize.__func__(cls, *classes)  # type: ignore[attr-defined,no-any-return]
        return StateRegistry.initialize()

    def subscribe(
        self, callback: Callable[..., Any], *fields: str, deep: bool = True
    ) -> Callable[[], None]:
        """:meth:`statekit.State.subscribe`; also Flet's ``Observable.subscribe``.

        Flet subscribes ``listener(sender, field)``; statekit's own callbacks
        take the instance. Both are held by the session's scope.
        """
        if _positional_params(callback) >= 2:
            flet_listener = callback

            def callback(instance: Any) -> None:
                flet_listener(instance, None)

        return State.subscribe(self, callback, *fields, deep=deep)


def _positional_params(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)
