"""The error hook: where errors from effects and listeners go.

Never compiled (see docs/engine.md, "Compiled mode"): errors are rare, and a
Python module keeps ``set_error_hook``'s docstring, which mypyc drops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

_logger = logging.getLogger("statekit")

ErrorHook = Callable[[BaseException, str], None]


def _log_error(exc: BaseException, where: str) -> None:
    _logger.error("statekit: %s raised", where, exc_info=(type(exc), exc, exc.__traceback__))


_error_hook: ErrorHook = _log_error


def set_error_hook(hook: ErrorHook | None) -> ErrorHook:
    """Install ``hook(exc, where)`` for errors in effects and listeners; return the old one.

    The default hook logs to the ``statekit`` logger. ``None`` restores it.
    An error in one effect or listener never stops the others nor undoes the
    write that triggered it.

    Example:
        >>> import statekit as sk
        >>> errors = []
        >>> old = sk.set_error_hook(lambda exc, where: errors.append((where, repr(exc))))
        >>> n = sk.atom(0, name="n")
        >>> off = n.subscribe(lambda v: 1 / v)
        >>> n.value = 0 or 2; n.value = 0
        >>> errors
        [("effect 'listener of n'", "ZeroDivisionError('division by zero')")]
        >>> _ = sk.set_error_hook(old); off()
    """
    global _error_hook
    old = _error_hook
    _error_hook = hook if hook is not None else _log_error
    return old


def report(exc: BaseException, where: str) -> None:
    """Hand an error from user code to the error hook; never raise from here."""
    try:
        _error_hook(exc, where)
    except Exception:  # a broken hook must not break propagation
        _log_error(exc, where)
