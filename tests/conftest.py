"""Every test runs in a fresh app scope (see statekit.testing).

And a stuck thread cannot hang the run: a test that times out (pytest-timeout)
fails, but a non-daemon thread it left blocked would keep the interpreter from
exiting after the summary. After a failed run such threads are named, with
their stacks, and the process exits with pytest's status.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import statekit as sk
from _backends import BACKENDS, make_backend
from statekit.backends import Backend

_STATUS: list[int] = []


@pytest.fixture(autouse=True)
def _fresh_app(sk_app: sk.Scope) -> Iterator[None]:
    yield


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    """Each backend in turn (memory, SQLite, Redis): the backend suites run once per kind."""
    made = make_backend(request.param, tmp_path)
    try:
        yield made
    finally:
        made.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _STATUS or not _STATUS[-1]:
        return  # a passing run exits normally (idle pool threads end at exit)
    stuck = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    for t in stuck:  # threads that are merely finishing get a moment
        t.join(timeout=1)
    stuck = [t for t in stuck if t.is_alive()]
    if stuck:
        names = ", ".join(t.name for t in stuck)
        sys.stderr.write(f"\nthreads still running after a failed run, exiting: {names}\n")
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(_STATUS[-1])
