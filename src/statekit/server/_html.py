"""HTML helpers for server-rendered pages that the JS client keeps live.

``store.react(path)`` renders the current value inside an element bound with
``data-sk-text``; ``store.do.update(path, delta)`` and ``store.do.set(path,
value)`` render the JavaScript of an ``onclick`` attribute. Everything here is
standard library only, so a page can be rendered without the server extra.

The JavaScript is written with single-quoted strings whose ``< > & " '`` are
``\\u`` escapes: it is valid both pasted raw into a double-quoted attribute and
after a template engine has HTML-escaped it, and it cannot close a
``<script>`` element.

Example:
    >>> from statekit.server._html import do, react
    >>> react("counter", "/n", 3)
    '<span data-sk-text="counter:/n">3</span>'
    >>> str(do("counter").update("/n", 1))
    "statekit.update('counter','/n',1)"
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["HTML", "JS", "Do", "do", "js_literal", "js_string", "react", "text_of"]

# Characters that must not appear raw in JS meant for HTML attributes or <script>.
_JS_ESCAPES = {
    "\\": "\\\\",
    "'": "\\u0027",
    '"': "\\u0022",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\n": "\\n",
    "\r": "\\r",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


class HTML(str):
    """Markup that template engines (Jinja's ``__html__``) insert unescaped.

    Example:
        >>> HTML("<b>x</b>").__html__()
        '<b>x</b>'
    """

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


class JS(str):
    """JavaScript code (an ``onclick`` value); also embeds raw in :func:`js_literal`.

    Example:
        >>> js_literal([JS("event.target.value")])
        '[event.target.value]'
    """

    __slots__ = ()

    def __js__(self) -> str:
        return str(self)


def js_string(text: str) -> str:
    """A single-quoted JavaScript string literal, safe inside HTML.

    Example:
        >>> js_string("it's <b>")
        "'it\\\\u0027s \\\\u003cb\\\\u003e'"
    """
    out = []
    for char in text:
        escaped = _JS_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def js_literal(value: Any) -> str:
    """``value`` (JSON-like, or an object with ``__js__``) as a JavaScript expression.

    Example:
        >>> js_literal({"title": "milk", "done": False, "n": [1, 2.5, None]})
        "{'title':'milk','done':false,'n':[1,2.5,null]}"
    """
    raw = getattr(value, "__js__", None)
    if raw is not None:
        return str(raw())
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no JSON form")
        return json.dumps(value)
    if isinstance(value, str):
        return js_string(value)
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            items.append(f"{js_string(key)}:{js_literal(item)}")
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(js_literal(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} has no JSON form")


def text_of(value: Any) -> str:
    """How ``data-sk-text`` shows a value: strings as they are, the rest as JSON.

    Example:
        >>> text_of("a"), text_of(3), text_of(True), text_of(None), text_of([1])
        ('a', '3', 'true', '', '[1]')
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _pointer(path: str) -> str:
    return path if path == "" or path.startswith("/") else "/" + path


def react(store: str, path: str, value: Any = None, *, tag: str = "span", **attrs: Any) -> HTML:
    """An element bound to ``store:path`` showing ``value`` (escaped) until the client takes over.

    Extra keyword arguments become attributes (``class_`` for ``class``).

    Example:
        >>> react("todos", "todo/0/title", "<milk>", tag="b", class_="t")
        '<b class="t" data-sk-text="todos:/todo/0/title">&lt;milk&gt;</b>'
    """
    if not tag.isalnum():
        raise ValueError(f"invalid tag name {tag!r}")
    parts = [tag]
    for key, item in attrs.items():
        name = key.rstrip("_").replace("_", "-")
        parts.append(f'{name}="{html.escape(str(item))}"')
    parts.append(f'data-sk-text="{html.escape(store + ":" + _pointer(path))}"')
    return HTML(f"<{' '.join(parts)}>{html.escape(text_of(value), quote=False)}</{tag}>")


class Do:
    """``store.do``: the ``onclick`` code of a write through the JS client.

    Example:
        >>> d = Do("todos")
        >>> d.set("filter", "done")
        "statekit.set('todos','/filter','done')"
        >>> d.action("clear_done")
        "statekit.action('todos','clear_done',{})"
    """

    __slots__ = ("store",)

    def __init__(self, store: str) -> None:
        self.store = store

    def _call(self, method: str, *args: Any) -> JS:
        rendered = ",".join([js_string(self.store), *(js_literal(arg) for arg in args)])
        return JS(f"statekit.{method}({rendered})")

    def update(self, path: str, delta: Any = 1) -> JS:
        """Add ``delta`` to the number at ``path`` (test + replace, retried on conflict).

        A non-numeric ``delta`` (a string, a boolean, an object) sets the value instead.
        """
        if isinstance(delta, bool) or not isinstance(delta, int | float):
            return self.set(path, delta)
        return self._call("update", _pointer(path), delta)

    def set(self, path: str, value: Any) -> JS:
        """Replace the value at ``path``."""
        return self._call("set", _pointer(path), value)

    def add(self, path: str, value: Any) -> JS:
        """RFC 6902 ``add`` at ``path`` (``/todo/-`` appends)."""
        return self._call("patch", [{"op": "add", "path": _pointer(path), "value": value}])

    def remove(self, path: str) -> JS:
        """RFC 6902 ``remove`` of ``path``."""
        return self._call("patch", [{"op": "remove", "path": _pointer(path)}])

    def action(self, name: str, **kwargs: Any) -> JS:
        """Call the store's action ``name`` with keyword arguments."""
        return self._call("action", name, kwargs)


def do(store: str) -> Do:
    """The :class:`Do` helper of the store named ``store``."""
    return Do(store)
