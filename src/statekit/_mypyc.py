"""mypyc's class options, without mypy_extensions at run time.

The engine can be compiled with mypyc (see docs/engine.md). mypyc reads
``mypyc_attr`` when it compiles; pure Python only needs the name to exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr as mypyc_attr  # noqa: PLC0414 (a re-export)
else:

    def mypyc_attr(*args: object, **kwargs: object) -> Callable[[type], type]:
        """A no-op: the options matter only to mypyc."""
        return lambda cls: cls
