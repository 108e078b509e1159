"""The engine's thread-local state holder: never compiled.

A subclass of ``threading.local`` runs ``__init__`` again in each thread that
uses it; mypyc cannot compile such a subclass (see docs/engine.md), so it
lives in this module, which stays Python when the engine is compiled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ThreadLocal(threading.local, Generic[T]):
    """``state`` is ``factory()``, made once per thread on its first use."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self.state = factory()
