"""Test helpers: a fresh app scope per test, so no state leaks between tests.

The pytest plugin (registered through the ``pytest11`` entry point) provides
the ``sk_app`` fixture. Use it in a test, or make it autouse in a
``conftest.py``::

    import pytest

    @pytest.fixture(autouse=True)
    def _isolated(sk_app):
        yield

Example:
    >>> import statekit as sk
    >>> from statekit.testing import isolated
    >>> n = sk.atom(0)
    >>> with isolated():
    ...     n.value = 5
    >>> n.value
    0
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._scope import Scope, new_app_scope

__all__ = ["isolated", "sk_app"]


@contextmanager
def isolated(name: str = "test") -> Iterator[Scope]:
    """Run a block in a fresh app scope, disposed afterwards."""
    app = new_app_scope(name)
    try:
        with app:
            yield app
    finally:
        app.dispose()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def sk_app(request: Any) -> Iterator[Scope]:
        """A fresh app scope, current for the whole test, disposed after it."""
        with isolated(request.node.name) as app:
            yield app
