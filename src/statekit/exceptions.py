"""Every error statekit raises, in one place.

Each error names what was involved (the atom, store, path, scope or state) so
that the message alone tells a user what went wrong. Errors also subclass the
closest built-in exception, so ``except KeyError`` keeps working for a missing
path and ``except ValueError`` for a refused transition.

The tree::

    StatekitError                     base of everything below
    ├── CycleError (RuntimeError)     a computed or effect reads itself
    ├── ScopeError (LookupError)      no scope of the needed level is active
    ├── DisposedError (RuntimeError)  use of a disposed scope, effect or node
    ├── PathError (KeyError)          a JSON Pointer that does not resolve
    ├── PatchError (ValueError)       a JSON Patch that cannot be applied
    │   └── PatchTestFailed           a ``test`` operation did not match
    ├── ValidationError (ValueError)  a value refused by a schema or model
    ├── ReadOnlyError (TypeError)     a write to a frozen view or value
    ├── ActionError (RuntimeError)    an action refused a call
    │   └── ActionCancelled           a call was cancelled (superseded, ``cancel()``)
    │       └── ActionDropped         a call was ignored (``drop`` policy)
    ├── TransitionNotAllowed (ValueError)   a state machine move not allowed
    ├── InvalidDefinition (TypeError)       a malformed machine or model class
    └── VersionConflict (RuntimeError)      compare-and-set saw another version

Example:
    >>> import statekit as sk
    >>> try:
    ...     raise sk.PathError("/todo/9", "9", "index out of range (length 2)")
    ... except KeyError as exc:
    ...     print(exc)
    path '/todo/9': part '9': index out of range (length 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

__all__ = [
    "ActionCancelled",
    "ActionDropped",
    "ActionError",
    "CycleError",
    "DisposedError",
    "InvalidDefinition",
    "PatchError",
    "PatchTestFailed",
    "PathError",
    "ReadOnlyError",
    "ScopeError",
    "StatekitError",
    "TransitionNotAllowed",
    "ValidationError",
    "VersionConflict",
]


class StatekitError(Exception):
    """Base class of every error raised by statekit.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.CycleError, sk.StatekitError)
        True
    """


class CycleError(StatekitError, RuntimeError):
    """A computed value or effect depends on itself.

    ``nodes`` lists the names along the cycle, starting and ending with the
    node that was read again while it was being computed.

    Example:
        >>> import statekit as sk
        >>> str(sk.CycleError(["a", "b", "a"]))
        'cycle detected: a -> b -> a'
    """

    def __init__(self, nodes: Sequence[str]) -> None:
        self.nodes = list(nodes)
        super().__init__("cycle detected: " + " -> ".join(self.nodes))


class ScopeError(StatekitError, LookupError):
    """No scope of the level a definition needs is active.

    Example:
        >>> import statekit as sk
        >>> cart = sk.atom([], name="cart", scope="session")
        >>> try:
        ...     cart.value
        ... except sk.ScopeError as exc:
        ...     print(exc)  # doctest: +ELLIPSIS
        'cart' lives in a 'session' scope, but no session scope is active...
    """


class DisposedError(StatekitError, RuntimeError):
    """A scope, effect or value was used after it was disposed.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.DisposedError, RuntimeError)
        True
    """


class PathError(StatekitError, KeyError):
    """A JSON Pointer path does not resolve in a document.

    ``path`` is the whole pointer, ``part`` the reference token that failed and
    ``reason`` why. The state is left exactly as it was.

    Example:
        >>> import statekit as sk
        >>> err = sk.PathError("/a/b", "b", "no such key")
        >>> err.path, err.part
        ('/a/b', 'b')
    """

    def __init__(self, path: str, part: str | None = None, reason: str = "does not exist") -> None:
        self.path = path
        self.part = part
        self.reason = reason
        super().__init__(path)

    def __str__(self) -> str:
        # KeyError.__str__ would print the repr of the first argument only.
        where = f"path {self.path!r}"
        if self.part is not None:
            where += f": part {self.part!r}"
        return f"{where}: {self.reason}"


class PatchError(StatekitError, ValueError):
    """A JSON Patch operation is malformed or cannot be applied.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.PatchError, ValueError)
        True
    """


class PatchTestFailed(PatchError):
    """A JSON Patch ``test`` operation found a different value.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.PatchTestFailed, sk.PatchError)
        True
    """


class ValidationError(StatekitError, ValueError):
    """A value was refused by a schema, a model or a validator.

    ``model`` and ``field`` name what refused it when a ``State`` model did
    (``field`` is ``None`` for a whole-model check such as creation or
    ``restore``); ``errors`` holds pydantic's error details, if any.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.ValidationError, ValueError)
        True
        >>> err = sk.ValidationError("Cart.count: not an int", model="Cart", field="count")
        >>> err.model, err.field, err.errors
        ('Cart', 'count', [])
    """

    def __init__(
        self,
        message: str = "",
        *,
        model: str | None = None,
        field: str | None = None,
        errors: Sequence[object] = (),
    ) -> None:
        super().__init__(message)
        self.model = model
        self.field = field
        self.errors = list(errors)


class ReadOnlyError(StatekitError, TypeError):
    """A write was attempted on a frozen view of a value.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.ReadOnlyError, TypeError)
        True
    """


class ActionError(StatekitError, RuntimeError):
    """An action refused a call (for example under the ``drop`` policy).

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.ActionError, RuntimeError)
        True
    """


class ActionCancelled(ActionError):
    """A call to an action was cancelled before its result could land.

    Raised to the caller of a call superseded under the ``latest`` policy,
    cancelled by ``action.cancel()`` / ``call.cancel()``, or whose scope was
    disposed. ``action`` names the action, ``reason`` says why
    (``"superseded"``, ``"cancelled"``, ``"disposed"`` or ``"dropped"``).

    Example:
        >>> import statekit as sk
        >>> err = sk.ActionCancelled("login", "superseded")
        >>> print(err)
        call to action 'login' was superseded by a newer call
        >>> isinstance(err, sk.ActionError), err.reason
        (True, 'superseded')
    """

    _WHY: ClassVar[dict[str, str]] = {
        "superseded": "superseded by a newer call",
        "cancelled": "cancelled",
        "disposed": "cancelled because its scope was disposed",
        "dropped": "dropped: another call was running (policy 'drop')",
    }

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"call to action {action!r} was {self._WHY.get(reason, reason)}")

    def __reduce__(self) -> tuple[type[ActionCancelled], tuple[str, str]]:
        return type(self), (self.action, self.reason)


class ActionDropped(ActionCancelled):
    """A call to a ``policy="drop"`` action was ignored because one was running.

    The dropped call never runs; awaiting it raises this error, so
    ``except sk.ActionCancelled`` covers superseded and dropped calls alike.

    Example:
        >>> import statekit as sk
        >>> print(sk.ActionDropped("save"))
        call to action 'save' was dropped: another call was running (policy 'drop')
    """

    def __init__(self, action: str, reason: str = "dropped") -> None:
        super().__init__(action, reason)


class TransitionNotAllowed(StatekitError, ValueError):
    """A state machine transition is not allowed from the current state.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.TransitionNotAllowed, ValueError)
        True
    """


class InvalidDefinition(StatekitError, TypeError):
    """A state machine, model or store definition is malformed.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.InvalidDefinition, TypeError)
        True
    """


class VersionConflict(StatekitError, RuntimeError):
    """A compare-and-set update expected a version that is no longer current.

    Example:
        >>> import statekit as sk
        >>> issubclass(sk.VersionConflict, RuntimeError)
        True
    """
