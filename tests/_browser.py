"""Playwright driving Debian's Chromium (never ``playwright install``).

``STATEKIT_REQUIRE_BROWSER=1`` turns a missing browser into a failure;
otherwise the browser tests skip with the reason. Screenshots go to
``$STATEKIT_ARTIFACTS`` or ``tests/artifacts/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"


def artifacts() -> Path:
    folder = Path(os.environ.get("STATEKIT_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _missing(reason: str) -> None:
    if os.environ.get("STATEKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"STATEKIT_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
