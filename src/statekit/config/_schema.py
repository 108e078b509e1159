"""Validating a configuration before it is committed.

A schema is a pydantic model class (anything with ``model_validate``) or a
plain callable ``fn(config) -> config | None`` that raises ``ValueError`` or
``TypeError`` to refuse. pydantic is imported only here, and only when a
pydantic error has to be recognised: ``import statekit`` never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._frozen import thaw
from ..exceptions import ValidationError

__all__ = ["Schema", "make_validator"]

Schema = Any  # a pydantic model class, or fn(config) -> config | None
Validator = Callable[[Mapping[str, Any]], dict[str, Any]]


def make_validator(schema: Schema, name: str) -> Validator | None:
    """Return ``fn(config) -> normalised config`` raising :class:`~statekit.ValidationError`."""
    if schema is None:
        return None
    if hasattr(schema, "model_validate") and hasattr(schema, "model_dump"):
        return _pydantic(schema, name)
    if callable(schema):
        return _callable(schema, name)
    raise TypeError(f"config {name!r}: schema must be a pydantic model class or a callable")


def _pydantic(model: Any, name: str) -> Validator:
    def validate(config: Mapping[str, Any]) -> dict[str, Any]:
        try:
            instance = model.model_validate(thaw(config))
        except Exception as exc:
            import pydantic  # only now: the model's author has it installed

            if isinstance(exc, pydantic.ValidationError):
                problems = "; ".join(
                    f"{'/'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                    for err in exc.errors()
                )
                raise ValidationError(
                    f"config {name!r} refused by {model.__name__}: {problems}"
                ) from exc
            raise
        # JSON mode: what is stored is exactly what a journal can hold and
        # give back (enums as values, dates as ISO strings...).
        dumped: dict[str, Any] = instance.model_dump(mode="json")
        return dumped

    return validate


def _callable(fn: Callable[[Any], Any], name: str) -> Validator:
    def validate(config: Mapping[str, Any]) -> dict[str, Any]:
        plain = thaw(config)
        try:
            result = fn(plain)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(f"config {name!r} refused: {exc}") from exc
        if result is None:
            return dict(plain)
        if not isinstance(result, Mapping):
            raise ValidationError(f"config {name!r}: the schema returned {type(result).__name__}")
        return dict(result)

    return validate
