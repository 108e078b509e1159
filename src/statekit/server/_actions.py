"""Actions a store exposes to clients: argument validation and one transaction per call.

An exposed action is any function (plain, ``async``, or a ``sk.action``).
Its keyword arguments are validated against its signature with a pydantic
model built once (unknown or missing arguments, wrong types: ``422
invalid_arguments`` naming the argument, never echoing the value). A sync
action runs in a worker thread inside one transaction of its store: all of
its writes to that store are one version and one event, and when it raises
they are all rolled back. With a backend shared by several processes, a
sync action whose transaction loses the race to commit (another process
committed to that store first: nothing of it was written) runs again on the
fresh state, as ``update(fn)`` does, so keep it free of effects outside the
stores. An async action cannot hold a transaction across
``await`` (other requests would wait on it), so each of its writes is its own
version.

Example:
    >>> import statekit as sk
    >>> todos = sk.Store({"todo": []}, name="todos")
    >>> def add(title: str, done: bool = False) -> int:
    ...     todos.add("todo/-", {"title": title, "done": done})
    ...     return len(todos.get("todo"))
    >>> exposed = Exposed(todos, add)
    >>> exposed.validate({"title": "milk"})
    {'title': 'milk', 'done': False}
    >>> exposed.validate({"title": 3})
    Traceback (most recent call last):
    ...
    statekit.server._errors.ApiError: action 'add' of store 'todos': argument 'title': Input sh...
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread
import pydantic

from .. import _patch
from .._action import AsyncAction
from .._store import Store
from ..exceptions import VersionConflict
from ._errors import ApiError

__all__ = ["Exposed", "describe_errors"]

_RUNS = 100  # how often a sync action may run when its commits keep losing races
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def describe_errors(exc: pydantic.ValidationError, where: str, what: str = "argument") -> str:
    """A sentence naming each refused field and why, without the input values."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        loc = "/".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{what} {loc!r}: {error.get('msg', 'invalid')}" if loc else error["msg"])
    more = len(exc.errors()) - len(problems)
    return f"{where}: " + "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


class Exposed:
    """One action of one store, as clients may call it."""

    __slots__ = ("fn", "is_async", "model", "name", "params", "store")

    def __init__(self, store: Store, fn: Callable[..., Any], name: str | None = None) -> None:
        label = name or getattr(fn, "name", None) or getattr(fn, "__name__", None)
        if not isinstance(label, str) or not label or not _NAME_OK.issuperset(label):
            raise ValueError(
                f"store {store.name!r}: action {fn!r} needs a name of letters, digits, '_.-'"
            )
        self.store = store
        self.fn = fn
        self.name = label
        target = fn.__wrapped__ if hasattr(fn, "__wrapped__") else fn
        self.is_async = isinstance(fn, AsyncAction) or inspect.iscoroutinefunction(target)
        fields: dict[str, Any] = {}
        self.params: list[str] = []
        for param in _signature(fn).parameters.values():
            if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                raise ValueError(
                    f"action {label!r} of store {store.name!r}: parameter {param.name!r} "
                    "must be a plain or keyword-only parameter (clients send keyword arguments)"
                )
            annotation = Any if param.annotation is param.empty else param.annotation
            default = ... if param.default is param.empty else param.default
            # Fields get neutral names and the parameter as alias: a parameter
            # called "copy" or "json" must not shadow pydantic's methods.
            fields[f"p{len(self.params)}"] = (
                annotation,
                pydantic.Field(default, alias=param.name),
            )
            self.params.append(param.name)
        self.model: type[pydantic.BaseModel] = pydantic.create_model(
            f"{store.name}.{label}",
            __config__=pydantic.ConfigDict(extra="forbid", populate_by_name=False),
            **fields,
        )
        if not self.model.__pydantic_complete__:
            # A name the annotations use is unknown: say so now, not on the first call.
            try:
                self.model.model_rebuild()
            except pydantic.PydanticUndefinedAnnotation as exc:
                raise ValueError(
                    f"action {label!r} of store {store.name!r}: annotation {exc.name!r} "
                    "is not defined where the function is"
                ) from None

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the arguments object (for the OpenAPI document)."""
        schema = self.model.model_json_schema(by_alias=True)
        schema.pop("title", None)
        return schema

    def where(self) -> str:
        return f"action {self.name!r} of store {self.store.name!r}"

    def validate(self, body: Any) -> dict[str, Any]:
        """The keyword arguments from a request body, validated; ``422 invalid_arguments``."""
        if not isinstance(body, Mapping):
            raise ApiError(
                422,
                "invalid_arguments",
                f"{self.where()}: the body is a JSON object of keyword arguments, "
                f"not {_patch._json_type(body)}",
            )
        try:
            model = self.model.model_validate(body)
        except pydantic.ValidationError as exc:
            raise ApiError(422, "invalid_arguments", describe_errors(exc, self.where())) from None
        return {name: getattr(model, f"p{i}") for i, name in enumerate(self.params)}

    async def call(self, kwargs: dict[str, Any]) -> Any:
        """Run the action in the current scopes; its JSON result (``422 action_failed``)."""
        try:
            if self.is_async:
                return _json_result(await self.fn(**kwargs))
            ctx = contextvars.copy_context()
            return await anyio.to_thread.run_sync(ctx.run, self._run_sync, kwargs)
        except ApiError:
            raise
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            raise ApiError(422, "action_failed", f"{self.where()} failed: {_said(exc)}") from None

    def _run_sync(self, kwargs: dict[str, Any]) -> Any:
        runs = 0
        while True:
            runs += 1
            ran = False
            try:
                with self.store.transaction():
                    # Checked inside the transaction: a result that is not JSON
                    # rolls the writes back.
                    result = _json_result(self.fn(**kwargs))
                    ran = True
                return result
            except VersionConflict:
                # Raised by the block's commit (the backend moved on; nothing
                # was written and the copy is current now): run it again. One
                # the action raised itself is its answer.
                if not ran or runs >= _RUNS:
                    raise


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with string annotations (``from __future__ import annotations``)
    resolved in its module, so that aliases like ``Title = Annotated[str, ...]`` validate."""
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):  # unresolvable: pydantic will name it
        return inspect.signature(fn)


def _json_result(result: Any) -> Any:
    try:
        return _patch.freeze_json(result)
    except Exception:
        raise TypeError(f"it returned a {type(result).__name__}, which is not JSON") from None


def _said(exc: Exception) -> str:
    """What an action's exception says: its message for errors meant for users, else its type."""
    from ..exceptions import StatekitError

    kind = type(exc).__name__
    if isinstance(exc, (ValueError, TypeError, LookupError, StatekitError)):
        text = str(exc).strip() or kind
        return f"{kind}: {text[:300]}"
    return kind
