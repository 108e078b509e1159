"""Every test runs in a fresh app scope (see statekit.testing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import statekit as sk


@pytest.fixture(autouse=True)
def _fresh_app(sk_app: sk.Scope) -> Iterator[None]:
    yield
