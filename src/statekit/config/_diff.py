"""Comparing configurations by path, as JSON Patch, and hiding their secrets.

A configuration is a JSON-like tree of dicts. :func:`diff` walks two trees
and reports each difference at the deepest path where it happens (lists are
compared whole: an index-by-index diff of a reordered list says nothing
useful about configuration). Paths are RFC 6901 JSON Pointers.

Secrets — values under keys such as ``password`` or ``api_key``, and the
password part of URLs like ``postgresql://user:pw@host`` — are replaced by
:data:`MASK` in what is shown (history, diffs). ``MASK`` is a ``str``
subclass, so a masked config written back (``update_config(history[n].config)``
as in the seed's rollback recipe) keeps the real secret instead of storing
``"********"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Final, NamedTuple

__all__ = [
    "DEFAULT_SECRETS",
    "MASK",
    "ConfigChange",
    "Masked",
    "Masker",
    "diff",
    "escape",
    "split_path",
    "to_patch",
]


class ConfigChange(NamedTuple):
    """One difference between two configurations, at a JSON Pointer ``path``.

    ``op`` is ``"add"``, ``"remove"`` or ``"replace"`` (as in JSON Patch);
    ``old`` is ``None`` for an add and ``new`` is ``None`` for a remove.

    Example:
        >>> from statekit.config import ConfigChange
        >>> ConfigChange("replace", "/timeout", 30, 60).path
        '/timeout'
    """

    op: str
    path: str
    old: Any
    new: Any

    def to_patch(self) -> dict[str, Any]:
        """This change as one RFC 6902 JSON Patch operation.

        Example:
            >>> from statekit.config import ConfigChange
            >>> ConfigChange("replace", "/timeout", 30, 60).to_patch()
            {'op': 'replace', 'path': '/timeout', 'value': 60}
        """
        if self.op == "remove":
            return {"op": "remove", "path": self.path}
        return {"op": self.op, "path": self.path, "value": _plain(self.new)}


def escape(key: str) -> str:
    """Escape one key for a JSON Pointer (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return key.replace("~", "~0").replace("/", "~1")


def split_path(path: str) -> list[str]:
    """Split a JSON Pointer into keys; the leading ``/`` may be left out.

    Example:
        >>> from statekit.config._diff import split_path
        >>> split_path("features/a~1b")
        ['features', 'a/b']
    """
    if path in ("", "/"):
        return []
    parts = path[1:].split("/") if path.startswith("/") else path.split("/")
    return [p.replace("~1", "/").replace("~0", "~") for p in parts]


def _same(a: Any, b: Any) -> bool:
    # 1 == True == 1.0, but a config that says true where it said 1 changed.
    return a is b or (type(a) is type(b) and a == b) or (_is_map(a) and _is_map(b) and a == b)


def _is_map(x: Any) -> bool:
    return isinstance(x, Mapping)


def diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[ConfigChange]:
    """List the differences from ``old`` to ``new`` by path, sorted by key.

    Example:
        >>> from statekit.config._diff import diff
        >>> for change in diff({"a": 1, "f": {"x": True}}, {"a": 2, "f": {"x": True, "y": 1}}):
        ...     print(change)
        ConfigChange(op='replace', path='/a', old=1, new=2)
        ConfigChange(op='add', path='/f/y', old=None, new=1)
    """
    out: list[ConfigChange] = []
    # An explicit stack, not recursion, so a deep config cannot overflow it;
    # a work item is either a pair of maps to compare or a change to emit.
    work: list[tuple[str, Any, Any] | ConfigChange] = [(prefix, old, new)]
    while work:
        item = work.pop()
        if isinstance(item, ConfigChange):
            out.append(item)
            continue
        base, a, b = item
        found: list[tuple[str, Any, Any] | ConfigChange] = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{base}/{escape(str(key))}"
            if key not in b:
                found.append(ConfigChange("remove", path, a[key], None))
            elif key not in a:
                found.append(ConfigChange("add", path, None, b[key]))
            elif _is_map(a[key]) and _is_map(b[key]):
                if a[key] is not b[key] and a[key] != b[key]:
                    found.append((path, a[key], b[key]))
            elif not _same(a[key], b[key]):
                found.append(ConfigChange("replace", path, a[key], b[key]))
        work.extend(reversed(found))  # popped back in key order
    return out


def to_patch(changes: Iterable[ConfigChange]) -> list[dict[str, Any]]:
    """Turn :func:`diff` output into an RFC 6902 JSON Patch.

    Example:
        >>> from statekit.config._diff import diff, to_patch
        >>> to_patch(diff({"a": 1}, {"b": 2}))
        [{'op': 'remove', 'path': '/a'}, {'op': 'add', 'path': '/b', 'value': 2}]
    """
    return [c.to_patch() for c in changes]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Masked):
        return str.__str__(value)
    return value


# -- secrets ---------------------------------------------------------------------


class Masked(str):
    """A string standing in for a secret in history and diffs.

    Writing a ``Masked`` value back into a config keeps the real secret at
    that path: masked views can be round-tripped without leaking or losing it.

    Example:
        >>> from statekit.config import MASK
        >>> MASK, isinstance(MASK, str)
        ('********', True)
    """

    __slots__ = ()


MASK: Final = Masked("********")

DEFAULT_SECRETS: Final = (
    "*password*",
    "*passwd*",
    "*secret*",
    "*token*",
    "*api_key*",
    "*apikey*",
    "*private_key*",
    "*credential*",
)

# scheme://user:password@host -> the password part.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@/\s]+(?P<tail>@)")


class Masker:
    """Decides which values are secrets and replaces them with :data:`MASK`.

    Patterns are matched case-insensitively (``fnmatch`` style) against the
    last key of a path, or against the whole path when they start with ``/``.

    Example:
        >>> from statekit.config._diff import Masker
        >>> m = Masker(["*password*", "/db/url"])
        >>> m.mask({"user": "bob", "db_password": "x", "db": {"url": "u"}})
        {'user': 'bob', 'db_password': '********', 'db': {'url': '********'}}
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        pats = [p.lower() for p in patterns]
        self.key_patterns = tuple(p for p in pats if not p.startswith("/"))
        self.path_patterns = tuple(p for p in pats if p.startswith("/"))

    def is_secret(self, path: str) -> bool:
        """Whether the value at ``path`` (a JSON Pointer) is a secret."""
        lowered = path.lower()
        key = split_path(lowered)[-1] if lowered not in ("", "/") else ""
        return any(fnmatchcase(key, p) for p in self.key_patterns) or any(
            fnmatchcase(lowered, p) for p in self.path_patterns
        )

    def mask(self, value: Any, path: str = "") -> Any:
        """Return ``value`` with secrets masked; unchanged parts are shared, not copied."""
        if path and self.is_secret(path):
            return MASK
        if isinstance(value, Mapping):
            masked = {k: self.mask(v, f"{path}/{escape(str(k))}") for k, v in value.items()}
            if all(masked[k] is v for k, v in value.items()):
                return value
            kind: Any = type(value)  # FrozenDict stays FrozenDict
            return masked if kind is dict else kind(masked)
        if isinstance(value, list | tuple):
            items = [self.mask(v, f"{path}/{i}") for i, v in enumerate(value)]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return type(value)(items)
        if isinstance(value, str) and "://" in value:
            hidden = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", value)
            if hidden != value:
                return Masked(hidden)
        return value

    def mask_changes(self, changes: Iterable[ConfigChange]) -> list[ConfigChange]:
        """Mask the old and new values of each change."""
        return [
            c._replace(
                old=self.mask(c.old, c.path) if c.op != "add" else None,
                new=self.mask(c.new, c.path) if c.op != "remove" else None,
            )
            for c in changes
        ]
