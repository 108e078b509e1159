"""Default limits on what a request may cost: body size, ops, nesting depth, rate.

Every limit is on by default and configurable through :class:`Limits`
(``None`` turns one off). The rate limit is a token bucket per identity (the
user when known, else the session, else the client address), kept in a
bounded LRU so that a flood of new identities cannot grow memory without end.

Example:
    >>> limits = Limits(rate=1.0, burst=2)
    >>> bucket = RateLimiter(limits)
    >>> [bucket.take("s:abc", now=0.0) for _ in range(3)]
    [0.0, 0.0, 1.0]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ._errors import ApiError

__all__ = ["Limits", "RateLimiter", "check_depth", "depth_of"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may cost; ``None`` turns a limit off.

    ``body``: bytes per request body (64 KiB). ``ops``: operations per patch
    (100). ``depth``: nesting depth of a body and of any value it writes,
    counted from the document root (32). ``rate`` requests per second per
    identity with bursts of ``burst`` (50/s, 100). ``identities``: how many
    rate buckets are remembered (least recently used go first).

    Example:
        >>> Limits().body, Limits(rate=None).rate
        (65536, None)
    """

    body: int | None = 64 * 1024
    ops: int | None = 100
    depth: int | None = 32
    rate: float | None = 50.0
    burst: int = 100
    identities: int = 100_000

    def __post_init__(self) -> None:
        for name in ("body", "ops", "depth", "rate"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise ValueError(f"Limits: {name}= is a positive number or None, not {value!r}")
        if self.burst < 1 or self.identities < 1:
            raise ValueError("Limits: burst= and identities= are at least 1")


class RateLimiter:
    """Token buckets per identity key; :meth:`take` returns the seconds to wait (0 = allowed)."""

    __slots__ = ("_buckets", "_lock", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token for ``key``; 0.0 if there was one, else how long until there is."""
        rate = self.limits.rate
        if rate is None:
            return 0.0
        burst = float(self.limits.burst)
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.limits.identities:
                self._buckets.popitem(last=False)
            return wait

    def check(self, key: str) -> None:
        """Raise ``429 rate_limited`` (with ``Retry-After``) when ``key`` has no token."""
        wait = self.take(key)
        if wait > 0.0:
            seconds = max(1, int(wait + 0.999))
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests: at most {self.limits.rate:g} per second "
                f"(bursts of {self.limits.burst}); retry in {seconds} s",
                {"Retry-After": str(seconds)},
            )


def depth_of(value: Any) -> int:
    """The container nesting depth of a JSON value (a scalar is 0), without recursion.

    Example:
        >>> depth_of(1), depth_of([]), depth_of({"a": [1, {"b": 2}]})
        (0, 1, 3)
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children if isinstance(child, (dict, list)))
    return deepest


def check_depth(limit: int | None, depth: int, what: str) -> None:
    """Raise ``422 too_deep`` when ``depth`` exceeds ``limit``."""
    if limit is not None and depth > limit:
        raise ApiError(422, "too_deep", f"{what} nests {depth} levels deep; the limit is {limit}")
