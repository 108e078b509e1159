"""Scopes: where the values of definitions live.

A definition (an atom, a computed, a store, a ``State`` class) is made once;
its *value* lives in a :class:`Scope`. Scopes form a tree, ``app → user →
session → request``, and the current one is held in a ``ContextVar`` so each
thread, asyncio task and Flet session sees its own. A definition declares the
level it lives at; reading it finds the nearest scope of that level in the
current chain and creates the value there on first use.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, Protocol, TypeVar

from . import _engine
from ._engine import Node, WatcherNode
from .exceptions import DisposedError, ScopeError

__all__ = [
    "LEVELS",
    "Scope",
    "app_scope",
    "current_scope",
    "level_index",
    "new_app_scope",
    "request",
    "session",
    "user",
]

LEVELS: tuple[str, ...] = ("app", "user", "session", "request")
APP, USER, SESSION, REQUEST = range(4)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_tree_lock = threading.RLock()  # guards children maps and node creation
_tree_acquire = _tree_lock.acquire
_tree_release = _tree_lock.release
_request_ids = itertools.count(1)
_monotonic = time.monotonic
_NO_CHAIN: tuple[None, None, None, None] = (None, None, None, None)


def level_index(level: str) -> int:
    """The position of a level name in ``LEVELS``; a clear error for a typo.

    Example:
        >>> from statekit._scope import level_index
        >>> level_index("session")
        2
    """
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown scope level {level!r}; expected one of {LEVELS}") from None


class Definition(Protocol):
    """What a scope needs from a definition to hold its value."""

    name: str

    def _make_node(self, scope: Scope) -> Node: ...

    def _release(self, scope: Scope, node: Node) -> None: ...

    def _forget(self, scope: Scope) -> None: ...


class Scope:
    """One node of the scope tree: an app, a user, a session or a request.

    Scopes are made by :func:`session`, :func:`user`, :func:`request` and
    :func:`new_app_scope`, not directly.

    Example:
        >>> import statekit as sk
        >>> cart = sk.atom(0, name="cart", scope="session")
        >>> with sk.session("s1") as s1:
        ...     cart.value = 3
        >>> with sk.session("s2"):
        ...     cart.value
        0
        >>> with s1:
        ...     cart.value
        3
        >>> s1.level, s1.id
        ('session', 's1')
    """

    __slots__ = (
        "__weakref__",
        "_children",
        "_cleanups",
        "_effects",
        "_nodes",
        "backend",
        "chain",
        "depth",
        "disposed",
        "id",
        "last_used",
        "parent",
        "ttl",
    )

    def __init__(self, depth: int, scope_id: str, parent: Scope | None, ttl: float | None) -> None:
        self.depth = depth
        self.id = scope_id
        self.parent = parent
        self.ttl = ttl
        self.disposed = False
        self.last_used = _monotonic()
        # chain[level] is the nearest scope of that level, self included: the
        # one lookup every read makes. The parent's chain with self at depth,
        # built as one tuple display (no list to fill and convert per scope).
        c: tuple[Scope | None, ...] = parent.chain if parent is not None else _NO_CHAIN
        chain: tuple[Scope | None, ...]
        if depth == SESSION:
            chain = (c[0], c[1], self, c[3])
        elif depth == REQUEST:
            chain = (c[0], c[1], c[2], self)
        elif depth == USER:
            chain = (c[0], self, c[2], c[3])
        else:
            chain = (self, c[1], c[2], c[3])
        self.chain: tuple[Scope | None, ...] = chain
        self._nodes: dict[Any, Node] = {}
        # Made on first use: most sessions and requests never start an
        # effect, register a cleanup or open a child, and three empty
        # containers per scope are a good part of what creating one costs.
        self._effects: dict[WatcherNode, None] | None = None
        self._cleanups: list[Callable[[], Any]] | None = None
        self._children: dict[tuple[int, str], Scope] | None = None
        # On an app scope: the statekit.backends binder its store copies
        # load from and commit through (None: values live in this process).
        self.backend: Any = None

    # ------------------------------------------------------------ identity

    @property
    def level(self) -> str:
        """``"app"``, ``"user"``, ``"session"`` or ``"request"``."""
        return LEVELS[self.depth]

    def __repr__(self) -> str:
        state = " disposed" if self.disposed else ""
        return f"<Scope {self.level} {self.id!r}{state}>"

    def runner(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` with this scope current.

        The engine wraps every computed and effect run in its owner's runner:
        a write in one session may pull or re-run nodes of another, and each
        must resolve definitions in its own scope, not the writer's. (A
        method rather than a closure made per scope: one function object
        less to build for every request scope.)
        """
        if _current.get() is self:
            return fn()
        token = _current.set(self)
        try:
            return fn()
        finally:
            _current.reset(token)

    def find(self, level: str) -> Scope | None:
        """The nearest scope of ``level`` in this scope's chain (itself included).

        Example:
            >>> import statekit as sk
            >>> with sk.session("s") as s:
            ...     s.find("app") is sk.app_scope()
            True
        """
        return self.chain[level_index(level)]

    # ------------------------------------------------------------ values

    def node(self, definition: Definition) -> Node:
        """The value node of ``definition`` in this scope, created on first use."""
        nodes = self._nodes
        found = nodes.get(definition)
        if found is not None:
            return found
        # acquire/release rather than ``with``: no bound __enter__/__exit__
        # made on every value created (once per session for each State).
        _tree_acquire()
        try:
            if self.disposed:
                raise DisposedError(f"{self!r} is disposed; {definition.name!r} cannot live in it")
            found = nodes.get(definition)
            if found is None:
                found = definition._make_node(self)
                nodes[definition] = found
            return found
        finally:
            _tree_release()

    def has(self, definition: Any) -> bool:
        """Whether ``definition`` already has a value in this scope."""
        return definition in self._nodes

    def _drop(self, definition: Any) -> Node | None:
        with _tree_lock:
            return self._nodes.pop(definition, None)

    def _adopt_effect(self, watcher: WatcherNode) -> None:
        with _tree_lock:
            if self.disposed:
                raise DisposedError(f"{self!r} is disposed; no effect can start in it")
            effects = self._effects
            if effects is None:
                effects = self._effects = {}
            effects[watcher] = None

    def _release_effect(self, watcher: WatcherNode) -> None:
        with _tree_lock:
            if self._effects is not None:
                self._effects.pop(watcher, None)

    # ------------------------------------------------------------ tree

    def _child(self, depth: int, scope_id: str, ttl: float | None) -> Scope:
        key = (depth, scope_id)
        _tree_acquire()  # (not ``with``: see node())
        try:
            if self.disposed:
                raise DisposedError(f"{self!r} is disposed; cannot open a {LEVELS[depth]} in it")
            children = self._children
            if children is None:
                children = self._children = {}
            child = children.get(key)
            if child is None:
                child = Scope(depth, scope_id, self, ttl)
                children[key] = child
            elif ttl is not None:
                child.ttl = ttl
            return child
        finally:
            _tree_release()

    def children(self, level: str | None = None) -> list[Scope]:
        """Live direct children, optionally of one level only."""
        with _tree_lock:
            kids = list(self._children.values()) if self._children else []
        if level is None:
            return kids
        depth = level_index(level)
        return [kid for kid in kids if kid.depth == depth]

    def scopes(self, level: str | None = None) -> list[Scope]:
        """Every live scope below this one (optionally of one level).

        Example:
            >>> import statekit as sk
            >>> app = sk.new_app_scope()
            >>> with app:
            ...     for sid in ("a", "b"):
            ...         with sk.session(sid):
            ...             pass
            >>> [s.id for s in app.scopes("session")]
            ['a', 'b']
        """
        depth = None if level is None else level_index(level)
        found: list[Scope] = []
        with _tree_lock:
            todo = list(self._children.values()) if self._children else []
            while todo:
                scope = todo.pop(0)
                if depth is None or scope.depth == depth:
                    found.append(scope)
                if scope._children:
                    todo.extend(scope._children.values())
        return found

    def count(self, level: str | None = None) -> int:
        """How many live scopes are below this one (optionally of one level)."""
        return len(self.scopes(level))

    # ------------------------------------------------------------ entering

    def touch(self) -> None:
        """Mark this scope and its ancestors as used now (idle expiry)."""
        now = _monotonic()
        scope: Scope | None = self
        while scope is not None:
            scope.last_used = now
            scope = scope.parent

    def __enter__(self) -> Scope:
        if self.disposed:
            raise DisposedError(f"{self!r} is disposed and cannot be entered")
        # touch(), inline: every session and request entry passes here.
        now = _monotonic()
        scope: Scope | None = self
        while scope is not None:
            scope.last_used = now
            scope = scope.parent
        # The open blocks' tokens as a linked list of pairs: pushing and
        # popping build one 2-tuple, not a copy of the whole stack.
        _tokens.set((_current.set(self), _tokens.get()))
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # (Named parameters, not ``*exc_info``: no tuple packed per block.)
        token, rest = _tokens.get()  # type: ignore[misc]
        _current.reset(token)
        _tokens.set(rest)

    def run(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Call ``fn`` with this scope current (for threads and callbacks).

        Example:
            >>> import statekit as sk
            >>> with sk.session("s") as s:
            ...     pass
            >>> s.run(lambda: sk.current_scope().id)
            's'
        """
        with self:
            return fn(*args, **kwargs)

    # ------------------------------------------------------------ lifetime

    def on_dispose(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register a cleanup (sync or async) run when this scope is disposed.

        Cleanups run in reverse order of registration. Returns ``fn`` so it
        can be used as a decorator.
        """
        with _tree_lock:
            if self.disposed:
                raise DisposedError(f"{self!r} is disposed")
            if self._cleanups is None:
                self._cleanups = []
            self._cleanups.append(fn)
        return fn

    def _detach_tree(self) -> list[Scope]:
        """Mark this scope and its descendants disposed; return them deepest first."""
        with _tree_lock:
            if self.disposed:
                return []
            order: list[Scope] = []
            todo = [self]
            while todo:
                scope = todo.pop()
                scope.disposed = True
                order.append(scope)
                if scope._children:
                    todo.extend(scope._children.values())
            if self.parent is not None and self.parent._children is not None:
                self.parent._children.pop((self.depth, self.id), None)
        order.sort(key=lambda s: -s.depth)
        return order

    def _teardown(self) -> list[Any]:
        """Dispose effects and values; run sync cleanups; return async ones."""
        with _tree_lock:
            effects = list(self._effects) if self._effects else []
            if self._effects is not None:
                self._effects.clear()
            nodes = list(self._nodes.items())
            self._nodes.clear()
            cleanups = self._cleanups[::-1] if self._cleanups else []
            if self._cleanups is not None:
                self._cleanups.clear()
            if self._children is not None:
                self._children.clear()
        for watcher in effects:
            _engine.dispose_watcher(watcher)
        for definition, node in nodes:
            definition._release(self, node)
        pending: list[Any] = []
        for cleanup in cleanups:
            try:
                result = cleanup()
            except Exception as exc:
                _engine.report(exc, f"cleanup of {self!r}")
                continue
            if inspect.isawaitable(result):
                pending.append(result)
        return pending

    def dispose(self) -> None:
        """Dispose this scope and everything below it, now.

        Effects stop, values are released and cleanups run (children first).
        Async cleanups are awaited on the running loop if there is one (as a
        task) or else run to completion here; use :meth:`aclose` to await them.
        """
        with _tree_lock:
            if not (self._children or self._nodes or self._effects or self._cleanups):
                # A scope that holds nothing (most request scopes): no tree
                # to walk and nothing to tear down, only unlink it.
                if not self.disposed:
                    self.disposed = True
                    if self.parent is not None and self.parent._children is not None:
                        self.parent._children.pop((self.depth, self.id), None)
                return
        pending: list[Any] = []
        for scope in self._detach_tree():
            pending.extend(scope._teardown())
        for awaitable in pending:
            _finish_async(awaitable)

    async def aclose(self) -> None:
        """Dispose this scope like :meth:`dispose`, awaiting async cleanups."""
        pending: list[Any] = []
        for scope in self._detach_tree():
            pending.extend(scope._teardown())
        for awaitable in pending:
            try:
                await awaitable
            except Exception as exc:
                _engine.report(exc, f"async cleanup of {self!r}")

    def expire_idle(self, now: float | None = None) -> int:
        """Dispose every descendant idle for longer than its ``ttl``.

        ``now`` defaults to ``time.monotonic()``. Returns how many scopes were
        disposed (descendants of a disposed scope included).

        Example:
            >>> import statekit as sk, time
            >>> app = sk.new_app_scope()
            >>> with app, sk.session("s", ttl=10):
            ...     pass
            >>> app.expire_idle(now=time.monotonic() + 11)
            1
        """
        moment = time.monotonic() if now is None else now
        expired = [
            scope
            for scope in self.scopes()
            if scope.ttl is not None and scope.last_used + scope.ttl < moment
        ]
        count = 0
        for scope in expired:
            if not scope.disposed:
                count += 1 + scope.count()
                scope.dispose()
        return count


_background: set[asyncio.Task[Any]] = set()


def _finish_async(awaitable: Any) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None

    async def _run() -> None:
        try:
            await awaitable
        except Exception as exc:
            _engine.report(exc, "async scope cleanup")

    if loop is None:
        asyncio.run(_run())
    else:
        task = loop.create_task(_run())
        _background.add(task)
        task.add_done_callback(_background.discard)


# ---------------------------------------------------------------- current scope

_DEFAULT_APP = Scope(APP, "app", None, None)
_current: contextvars.ContextVar[Scope] = contextvars.ContextVar(
    "statekit_scope", default=_DEFAULT_APP
)
# Tokens of ``with scope:`` blocks, so that a Scope object (shared between
# tasks) need not hold per-context state itself.
# A linked list: (innermost token, (next token, ... None)).
_TokenStack = tuple[contextvars.Token[Scope], Any] | None
_tokens: contextvars.ContextVar[_TokenStack] = contextvars.ContextVar(
    "statekit_scope_tokens", default=None
)


_engine.set_context_probe(_current.get)


def current_scope() -> Scope:
    """The innermost scope active in this thread or task.

    Example:
        >>> import statekit as sk
        >>> with sk.session("abc"):
        ...     sk.current_scope().id
        'abc'
    """
    return _current.get()


def app_scope() -> Scope:
    """The app scope of the current chain.

    Example:
        >>> import statekit as sk
        >>> sk.app_scope().level
        'app'
    """
    app = _current.get().chain[APP]
    assert app is not None
    return app


def new_app_scope(name: str = "app") -> Scope:
    """A fresh, independent app scope (enter it with ``with``).

    Two app scopes share no values: this is how tests and several apps in one
    process stay apart.

    Example:
        >>> import statekit as sk
        >>> n = sk.atom(0)
        >>> with sk.new_app_scope():
        ...     n.value = 5
        >>> n.value
        0
    """
    return Scope(APP, name, None, None)


def session(session_id: str | None = None, *, ttl: float | None = None) -> Scope:
    """Enter the session ``session_id`` (created on first use) for a ``with`` block.

    Returns the session's :class:`Scope`, which is the context manager: a
    ``with`` block makes it current (``as`` names it).

    The session hangs under the current user if one is active, else under the
    app. Entering the same id again finds the same session and its values.
    ``ttl`` (seconds) lets :meth:`Scope.expire_idle` dispose it when idle.

    Example:
        >>> import statekit as sk
        >>> theme = sk.atom("light", scope="session")
        >>> with sk.session("a"):
        ...     theme.value = "dark"
        >>> with sk.session("a"):
        ...     theme.value
        'dark'
    """
    current = _current.get()
    parent = current.chain[USER] or current.chain[APP]
    assert parent is not None
    sid = session_id if session_id is not None else _new_id()
    # The scope is its own context manager (entering makes it current): no
    # generator-based wrapper to build, enter and finish per session.
    return parent._child(SESSION, sid, ttl)


def user(user_id: str, *, ttl: float | None = None) -> Scope:
    """Enter the user ``user_id`` (created on first use) for a ``with`` block.

    Returns the user's :class:`Scope` (the context manager, like :func:`session`).

    Example:
        >>> import statekit as sk
        >>> prefs = sk.atom({}, scope="user")
        >>> with sk.user("alice"), sk.session("phone"):
        ...     prefs.value = {"lang": "fr"}
        >>> with sk.user("alice"), sk.session("laptop"):
        ...     prefs.value
        {'lang': 'fr'}
    """
    app = _current.get().chain[APP]
    assert app is not None
    return app._child(USER, user_id, ttl)


@contextmanager
def request() -> Iterator[Scope]:
    """Enter a fresh request scope, disposed when the block ends.

    Example:
        >>> import statekit as sk
        >>> with sk.request() as r:
        ...     r.level
        'request'
        >>> r.disposed
        True
    """
    current = _current.get()
    parent = current.chain[SESSION] or current.chain[USER] or current.chain[APP]
    assert parent is not None
    scope = parent._child(REQUEST, f"r{next(_request_ids)}", None)
    try:
        with scope:
            yield scope
    finally:
        scope.dispose()


def _new_id() -> str:
    import secrets

    return secrets.token_urlsafe(16)


def scope_error(name: str, depth: int) -> ScopeError:
    """The error for reading a definition whose level has no active scope."""
    level = LEVELS[depth]
    return ScopeError(
        f"{name!r} lives in a {level!r} scope, but no {level} scope is active here; "
        f"wrap the code in `with statekit.{level}(...)`"
        + (" or run it where statekit opens one for you (a Flet page, a request)" if depth else "")
    )


def contains(outer: Scope, inner: Scope) -> bool:
    """Whether ``outer`` is ``inner`` or one of its ancestors."""
    return inner.chain[outer.depth] is outer
