"""JSON Pointers (RFC 6901): how a store names a place in its document.

A path is parsed once into a tuple of *parts* (decoded reference tokens) and
then resolved with a plain loop, one part per level, so that a deep document
never costs stack depth. Two spellings are accepted:

* a string pointer, ``"/todo/0/done"``; the leading ``/`` may be left out
  (``"todo/0/done"`` is the same path), ``""`` is the whole document and
  ``"/"`` the key ``""`` of the top object. ``~1`` stands for ``/`` and
  ``~0`` for ``~``;
* a sequence of parts, ``("todo", 0, "done")``, taken as already decoded
  (no ``~`` escapes) — handy when a key comes from user data.

Resolution follows RFC 6901 strictly: in an object every part is a key (so
``"0"`` is the key ``"0"``), in an array only canonical non-negative decimal
indexes work (``"0"``, ``"12"``; not ``"-1"``, ``"01"``, ``"+1"``), and ``-``
(past the end) is only meaningful to JSON Patch ``add``. A failure raises
:class:`~statekit.PathError` naming the whole path, the part that failed and
why — never the contents of the document, which may be private.

``make compile`` compiles this module with the engine (docs/engine.md,
"Compiled mode"), as it does :mod:`._patch`.

Example:
    >>> from statekit import _paths
    >>> parts = _paths.parse("todo/0/done")
    >>> parts
    ('todo', '0', 'done')
    >>> _paths.format(parts)
    '/todo/0/done'
    >>> _paths.get({"todo": [{"done": True}]}, parts)
    True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from .exceptions import PathError

__all__ = ["exists", "format", "get", "parse"]

# Paths repeat (the same few keys are read and written over and over) and
# parsing is the only non-trivial work in a read, so the string form is
# cached. Bounded: paths can come from clients of the sync server.
_CACHE_SIZE = 4096

# A longer run of digits cannot be an index of any real list; it is refused
# before int() so that a hostile path cannot make int() do quadratic work (or
# hit the interpreter's digit limit).
_MAX_INDEX_DIGITS = 18

_ABSENT: Any = object()  # None is a JSON value, so "no such key" needs its own marker


def parse(path: str | Sequence[str | int]) -> tuple[str, ...]:
    """Return the parts of ``path`` as a tuple of decoded strings.

    A string is a JSON Pointer whose leading ``/`` is optional; a sequence is
    a list of parts that are already decoded (ints are indexes).

    Example:
        >>> from statekit._paths import parse
        >>> parse("/a~1b/m~0n"), parse("a/0"), parse(""), parse("/")
        (('a/b', 'm~n'), ('a', '0'), (), ('',))
        >>> parse(["todo", 0])
        ('todo', '0')
        >>> parse("/a/~2")
        Traceback (most recent call last):
        ...
        statekit.exceptions.PathError: path '/a/~2': part '~2': invalid escape...
    """
    if isinstance(path, str):
        return _parse_string(path)
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, Sequence):
        raise TypeError(f"a path is a string or a sequence of keys, not {type(path).__name__}")
    parts: list[str] = []
    for part in path:
        # bool is an int, but True as a path part is far more likely a bug
        # than a request for index 1.
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, int) and not isinstance(part, bool):
            parts.append(str(part))
        else:
            raise TypeError(f"a path part is a string or an int, not {type(part).__name__}")
    return tuple(parts)


# The cache of string paths: a plain dict, so that a hot path reads it with
# one subscript (``PARSED[path]``, a quarter of an lru_cache call) and calls
# _parse_string only on a miss. Emptied when full (a miss re-parses).
PARSED: dict[str, tuple[str, ...]] = {}


def _parse_string(path: str) -> tuple[str, ...]:
    """``path`` parsed, from the cache or parsed and remembered (an error is not)."""
    try:
        return PARSED[path]
    except KeyError:
        pass
    parts = _split(path)
    if len(PARSED) >= _CACHE_SIZE:
        PARSED.clear()
    PARSED[path] = parts
    return parts


def _split(path: str) -> tuple[str, ...]:
    if path == "":
        return ()
    tokens = (path[1:] if path[0] == "/" else path).split("/")
    if "~" not in path:
        return tuple(tokens)
    parts: list[str] = []
    for token in tokens:
        if "~" in token:
            _check_escapes(path, token)
            # ~1 first, then ~0: "~01" means the two characters "~1", and
            # decoding ~0 first would wrongly turn it into "/".
            token = token.replace("~1", "/").replace("~0", "~")
        parts.append(token)
    return tuple(parts)


def _check_escapes(path: str, token: str) -> None:
    at = token.find("~")
    while at != -1:
        if token[at + 1 : at + 2] not in ("0", "1"):
            canonical = path if path.startswith("/") else "/" + path
            raise PathError(
                canonical,
                token,
                "invalid escape: '~' must be followed by '0' (for '~') or '1' (for '/')",
            )
        at = token.find("~", at + 2)


def format(parts: Sequence[str]) -> str:
    """Return the canonical JSON Pointer for ``parts`` (``""`` for the root).

    Example:
        >>> from statekit._paths import format
        >>> format(("todo", "0", "done")), format(("a/b", "m~n")), format(()), format(("",))
        ('/todo/0/done', '/a~1b/m~0n', '', '/')
    """
    if isinstance(parts, tuple):
        return _format_tuple(parts)
    return _format_tuple(tuple(parts))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _format_tuple(parts: tuple[str, ...]) -> str:
    return "".join("/" + _escape(part) for part in parts)


def _escape(part: str) -> str:
    # "~" first, so that the "~" introduced by "~1" is not escaped again.
    if "~" in part:
        part = part.replace("~", "~0")
    if "/" in part:
        part = part.replace("/", "~1")
    return part


def get(doc: Any, parts: Sequence[str]) -> Any:
    """Return the value at ``parts`` (from :func:`parse`) in ``doc``.

    Raises :class:`~statekit.PathError` naming the path and the failing part
    if the path does not resolve; the message never shows document contents.

    Example:
        >>> from statekit._paths import get, parse
        >>> doc = {"todo": [{"done": False}], "0": "key, not index"}
        >>> get(doc, parse("/todo/0/done")), get(doc, parse("0"))
        (False, 'key, not index')
        >>> get(doc, parse("/todo/3"))
        Traceback (most recent call last):
        ...
        statekit.exceptions.PathError: path '/todo/3': part '3': index 3 out of range (length 1)
    """
    node = doc
    for part in parts:
        # Inlined (rather than calling step()) because get() is the hot path
        # of every store read.
        if isinstance(node, dict):
            # dict.get, not node[part]: a __missing__ (defaultdict) must not
            # create the key we are only reading.
            node = dict.get(node, part, _ABSENT)
            if node is _ABSENT:
                raise PathError(format(parts), part, f"no key {part!r} in object")
        elif isinstance(node, list):
            # Fast path for a canonical in-range index; index() explains the rest.
            if part.isdigit() and part.isascii() and (part[0] != "0" or len(part) == 1):
                at = int(part) if len(part) <= _MAX_INDEX_DIGITS else len(node)
                if at < len(node):
                    node = node[at]
                    continue
            node = node[index(parts, part, len(node), end_ok=False)]
        else:
            raise PathError(format(parts), part, f"cannot index into {type_name(node)}")
    return node


def exists(doc: Any, parts: Sequence[str]) -> bool:
    """Return whether ``parts`` resolves to a value in ``doc``.

    Example:
        >>> from statekit._paths import exists, parse
        >>> exists({"a": [1]}, parse("a/0")), exists({"a": [1]}, parse("a/1"))
        (True, False)
    """
    try:
        get(doc, parts)
    except PathError:
        return False
    return True


def step(node: Any, part: str, parts: Sequence[str]) -> Any:
    """One level of :func:`get` (``parts`` is the whole path, for errors).

    Shared with ``_patch``, which walks down a path keeping every container
    on the way.
    """
    if isinstance(node, dict):
        child = dict.get(node, part, _ABSENT)
        if child is _ABSENT:
            raise PathError(format(parts), part, f"no key {part!r} in object")
        return child
    if isinstance(node, list):
        return node[index(parts, part, len(node), end_ok=False)]
    raise PathError(format(parts), part, f"cannot index into {type_name(node)}")


def index(parts: Sequence[str], part: str, length: int, *, end_ok: bool) -> int:
    """Return ``part`` as an index into an array of ``length`` elements.

    ``end_ok`` allows the position just past the end (``-`` or ``length``),
    which only JSON Patch ``add`` (insertion) may use.

    Example:
        >>> from statekit._paths import index
        >>> index(("xs", "-"), "-", 2, end_ok=True)
        2
        >>> index(("xs", "01"), "01", 2, end_ok=False)
        Traceback (most recent call last):
        ...
        statekit.exceptions.PathError: path '/xs/01': part '01': '01' is not a valid array index
    """
    if part == "-":
        if end_ok:
            return length
        raise PathError(
            format(parts),
            part,
            "'-' (past the end of the array) names no element; only 'add' can use it",
        )
    # isdigit() alone would accept "²" and other non-ASCII digits.
    if not (part.isascii() and part.isdigit()) or (part[0] == "0" and len(part) > 1):
        raise PathError(format(parts), part, f"{part!r} is not a valid array index")
    limit = length if end_ok else length - 1
    if len(part) > _MAX_INDEX_DIGITS or int(part) > limit:
        raise PathError(format(parts), part, f"index {part} out of range (length {length})")
    return int(part)


def type_name(value: Any) -> str:
    """The name used for a value's type in error messages (no contents).

    Example:
        >>> from statekit._paths import type_name
        >>> type_name(3), type_name(None), type_name("x")
        ('int', 'None', 'str')
    """
    return "None" if value is None else type(value).__name__
