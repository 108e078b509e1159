"""HTeaLeaf's ``Store``, ``AuthStore`` and ``SuperStore``, on statekit.

Change ``from HTeaLeaf... import ...`` to ``from statekit.compat.htealeaf
import ...`` and the seed's examples run on a Starlette app: a global
``Store(dict)``, a per-user ``AuthStore(auth_fn, default)``, and
``SuperStore(app)`` mounting ``/api/_store/{api_id}/{path}`` (``GET`` reads,
``POST`` appends to an array or merges into an object, ``PATCH`` replaces,
``DELETE`` removes), with ``.react(path)``, ``.do.update(path, delta)`` and
``.js.update(path, value)`` for pages.

Each façade store is a :class:`statekit.Store` (``scope="user"`` for an
``AuthStore``), so it has what HTeaLeaf lacks: atomic, locked writes;
RFC 6901 paths (``~1`` for ``/``, no silent ``-1``); 4xx JSON errors that
never leak the state (and never a 500); a session cookie, an ``X-Statekit``
header, the ``Origin``/``Sec-Fetch-Site`` check and a JSON content type on
every write; body, depth and rate limits; lazily created, expiring sessions
and per-user copies; and live pages: ``SuperStore`` mounts a statekit
``SyncServer`` for its stores, so what ``.react()`` renders follows every
change over Server-Sent Events (JSON Patches), without a reload.

Example:
    >>> from statekit.compat.htealeaf import Store
    >>> cstore = Store({"counter": 1}, id="cstore")
    >>> cstore.update("counter", 2)
    2
    >>> cstore.react("counter")
    '<span data-sk-text="cstore:/counter">2</span>'
    >>> cstore.do.update("counter", -1)
    "statekit.update('cstore','/counter',-1)"
"""

from __future__ import annotations

import html
import itertools
import json
import re
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from .. import _paths
from .._frozen import thaw
from .._scope import Scope as SkScope
from .._scope import app_scope, user
from .._store import Store as SkStore
from ..exceptions import (
    PatchError,
    PatchTestFailed,
    PathError,
    ScopeError,
    StatekitError,
    ValidationError,
)
from ..server._app import SyncServer
from ..server._errors import ApiError, error_response, last_resort
from ..server._html import HTML, Do, js_literal, js_string, react
from ..server._hub import Hub
from ..server._limits import Limits as ServerLimits
from ..server._limits import RateLimiter, check_depth, depth_of
from ._htealeaf_web import (
    COOKIE,
    App,
    Component,
    Session,
    SessionData,
    a,
    body,
    button,
    checkbox,
    current_session,
    div,
    form,
    h1,
    h2,
    h3,
    head,
    html_,
    label,
    li,
    p,
    rButton,
    redirect,
    session_cookie,
    sessions_of,
    span,
    textInput,
    title,
    ul,
)

__all__ = [
    "WSGI",
    "App",
    "AuthStore",
    "Component",
    "JSCode",
    "Limits",
    "Session",
    "SessionData",
    "Store",
    "SuperStore",
    "UserStore",
    "a",
    "body",
    "button",
    "checkbox",
    "div",
    "false",
    "form",
    "h1",
    "h2",
    "h3",
    "head",
    "html_",
    "label",
    "li",
    "null",
    "p",
    "rButton",
    "redirect",
    "span",
    "textInput",
    "title",
    "true",
    "ul",
]

WSGI = App
_registry: weakref.WeakValueDictionary[str, Store | AuthStore] = weakref.WeakValueDictionary()
_MUTATIONS = ("POST", "PATCH", "DELETE")
_METHODS = ("GET", *_MUTATIONS)
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_registrations = itertools.count(1)  # bumped per registration: SuperStore serves new ones
_registered = 0
_JSON_PATCH = "application/json-patch+json"
_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_PAGE_JS = Path(__file__).parent / "static" / "htealeaf.js"


class JSCode(str):
    """A piece of JavaScript (HTeaLeaf's ``JSCode``): embedded raw, never quoted.

    Example:
        >>> from statekit.compat.htealeaf import JSCode, Store
        >>> s = Store({"todo": []}, id="todo")
        >>> s.do.set("todo/0", {"done": False, "value": JSCode("val")})
        "statekit.set('todo','/todo/0',{'done':false,'value':val})"
    """

    __slots__ = ()

    def __js__(self) -> str:
        return str(self)


# JavaScript's spellings, so seed code written with them runs.
true, false, null = True, False, None


@dataclass(frozen=True)
class Limits:
    """Limits on what one request may send (all on by default).

    Example:
        >>> Limits().body, Limits(rate=5).rate, Limits().ops
        (65536, 5, 100)
    """

    body: int = 64 * 1024  #: bytes of a request body
    ops: int = 100  #: operations in one JSON Patch body
    depth: int = 32  #: nesting of a JSON value
    rate: float = 50.0  #: requests per second per identity (token bucket)...
    burst: int = 100  #: ...with bursts of this many


# ------------------------------------------------------------------ the operations


class _Ops:
    """HTeaLeaf's read/create/update/delete over one statekit store, in one scope."""

    _sk: SkStore
    _id: str

    def _enter(self) -> Any:
        raise NotImplementedError

    def read(self, path: str = "") -> Any:
        """The value at ``path`` (a plain, thawed copy).

        Raises :class:`statekit.PathError` (a ``KeyError``) if it does not exist.
        """
        with self._enter():
            return thaw(self._sk.get(path))

    def create(self, path: str, data: Any) -> Any:
        """Append ``data`` to the array at ``path`` or merge it into the object there."""
        parts = _paths.parse(path)
        where = _paths.format(parts)
        with self._enter(), self._sk.transaction():
            target = self._sk.get(parts)
            if isinstance(target, list):
                self._sk.add([*parts, "-"], data)
            elif isinstance(target, dict):
                if not isinstance(data, Mapping):
                    raise PatchError(
                        f"store {self._id!r}: merging into the object at {where!r} "
                        f"needs an object, not {_paths.type_name(data)}"
                    )
                self._sk.patch(
                    [
                        {"op": "add", "path": _paths.format([*parts, k]), "value": v}
                        for k, v in data.items()
                    ]
                )
            else:
                raise PatchError(
                    f"store {self._id!r}: {where!r} holds {_paths.type_name(target)}; "
                    "create appends to an array or merges into an object"
                )
            return thaw(self._sk.get(parts))

    def update(self, path: str, data: Any) -> Any:
        """Replace the existing value at ``path`` by ``data``; return it."""
        parts = _paths.parse(path)
        if not parts and not isinstance(data, Mapping):
            raise PatchError(
                f"store {self._id!r}: the root must stay an object, not {_paths.type_name(data)}"
            )
        with self._enter():
            _paths.get(self._sk.snapshot(), parts)  # exists, or PathError
            self._sk.patch([{"op": "replace", "path": _paths.format(parts), "value": data}])
            return thaw(self._sk.get(parts))

    def delete(self, path: str) -> None:
        """Remove the value at ``path`` (not the root)."""
        parts = _paths.parse(path)
        if not parts:
            raise PatchError(f"store {self._id!r}: the root cannot be removed")
        with self._enter():
            self._sk.delete(parts)

    def get(self, path: str = "") -> Any:
        """Same as :meth:`read`."""
        return self.read(path)

    def set(self, path: str, data: Any) -> Any:
        """Same as :meth:`update`."""
        return self.update(path, data)

    @property
    def data(self) -> Any:
        """The whole document, as a plain copy."""
        return self.read("")

    @property
    def version(self) -> int:
        """How many changes this copy has committed (the ``ETag``)."""
        with self._enter():
            return self._sk.version


class _JSHandle:
    """``store.js``: HTeaLeaf's JavaScript handle, calling the statekit client.

    ``update``/``set`` replace a value, ``read``/``get`` read it, ``delete``
    removes it; any other method is called on the client as
    ``statekit.<name>('<store>', ...)``.
    """

    __slots__ = ("_id",)

    def __init__(self, store_id: str) -> None:
        self._id = store_id

    def __getattr__(self, name: str) -> Callable[..., JSCode]:
        method = {"update": "set", "read": "get", "create": "append"}.get(name, name)
        if not method.isidentifier() or method.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any) -> JSCode:
            if method == "delete":
                ops = [{"op": "remove", "path": _pointer(args[0])}]
                return JSCode(f"statekit.patch({js_string(self._id)},{js_literal(ops)})")
            if args and isinstance(args[0], str):
                args = (_pointer(args[0]), *args[1:])
            rendered = ",".join([js_string(self._id), *(js_literal(arg) for arg in args)])
            return JSCode(f"statekit.{method}({rendered})")

        return call

    def __str__(self) -> str:
        return f"statekit.store({js_string(self._id)})"


def _pointer(path: str) -> str:
    return _paths.format(_paths.parse(path))


class _Facade(_Ops):
    _writable: tuple[tuple[str, ...], ...] | None

    def _setup(
        self,
        *,
        store_id: str | None,
        default: Mapping[str, Any] | None,
        scope: str,
        subscribe: bool,
        writable: Sequence[str] | None,
        schema: Any,
    ) -> None:
        self._id = store_id if store_id is not None else uuid.uuid4().hex
        if not _NAME.fullmatch(self._id):
            raise ValueError(f"store id {self._id!r} must match [A-Za-z0-9_.-]+")
        self._sk = SkStore(
            dict(default or {}),
            name=self._id,
            scope=scope,
            schema=schema,
            # What the sync server lets clients write directly: only what was
            # declared. Without writable=, writes go through the façade's routes.
            writable=() if writable is None else writable,
        )
        self._writable = None if writable is None else tuple(_paths.parse(w) for w in writable)
        self.do = Do(self._id)
        self.js = _JSHandle(self._id)
        if subscribe:
            global _registered
            _registry[self._id] = self  # type: ignore[assignment]
            _registered = next(_registrations)

    @property
    def id(self) -> str:
        """The store's id: the ``{api_id}`` of its routes and its name on the sync server."""
        return self._id

    @property
    def store(self) -> SkStore:
        """The underlying :class:`statekit.Store`."""
        return self._sk

    def writable(self, path: str) -> bool:
        """Whether clients may write ``path`` (everything unless ``writable=`` was given)."""
        if self._writable is None:
            return True
        parts = _paths.parse(path)
        return any(parts[: len(w)] == w for w in self._writable)


class Store(_Facade):
    """A global store, shared by every visitor (HTeaLeaf's ``Store``).

    ``writable=[...]`` limits which paths clients may write over HTTP
    (default: every path, as in HTeaLeaf); ``schema=`` a pydantic model
    validates every change; ``id=`` names it (default: a random id).

    Example:
        >>> from statekit.compat.htealeaf import Store
        >>> store = Store({"todo": [{"value": "Buy milk", "done": False}]}, id="shop")
        >>> store.update("todo/0/done", True)
        True
        >>> str(store.js.update("todo/0/done", True))
        "statekit.set('shop','/todo/0/done',true)"
    """

    def __init__(
        self,
        default: Mapping[str, Any] | None = None,
        subscribe: bool = True,
        id: str | None = None,  # HTeaLeaf's name
        *,
        writable: Sequence[str] | None = None,
        schema: Any = None,
    ) -> None:
        self._setup(
            store_id=id,
            default=default,
            scope="app",
            subscribe=subscribe,
            writable=writable,
            schema=schema,
        )

    def _enter(self) -> Any:
        return _NullContext()

    def react(self, path: str = "", *, tag: str = "span", **attrs: Any) -> str:
        """An element showing the value at ``path``, kept live by the client."""
        return react(self._id, _pointer(path), self.read(path), tag=tag, **attrs)

    def __repr__(self) -> str:
        return f"<htealeaf.Store {self._id!r}>"


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class AuthStore(_Facade):
    """A store with one copy per user: ``auth_fn(session)`` names the user.

    Example:
        >>> from statekit.compat.htealeaf import AuthStore, SessionData
        >>> todos = AuthStore(lambda s: s.get("userName"), {"todo": []}, id="todos")
        >>> todos.auth(SessionData(userName="ana")).create("todo", {"value": "milk"})
        [{'value': 'milk'}]
        >>> todos.auth(SessionData(userName="bob")).read("todo")
        []
        >>> todos.auth(SessionData()) is None
        True
    """

    def __init__(
        self,
        auth: Callable[[SessionData], Any],
        default: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,  # HTeaLeaf's name
        writable: Sequence[str] | None = None,
        schema: Any = None,
        ttl: float | None = 86400.0,
    ) -> None:
        self.auth_func = auth
        #: Idle seconds after which a user's copy may be evicted (``SuperStore`` does).
        self.ttl = ttl
        self._setup(
            store_id=id,
            default=default,
            scope="user",
            subscribe=True,
            writable=writable,
            schema=schema,
        )

    def user_of(self, session: SessionData) -> str | None:
        """The user id ``auth_fn`` gives for ``session`` (``None``: anonymous)."""
        key = self.auth_func(session)
        return None if key is None else str(key)

    def auth(self, session: SessionData) -> UserStore | None:
        """This user's copy, or ``None`` when ``auth_fn`` knows nobody."""
        key = self.user_of(session)
        return None if key is None else UserStore(self, key)

    def _enter(self) -> Any:
        session = current_session()
        key = None if session is None else self.user_of(session)
        if key is None:
            raise ScopeError(f"store {self._id!r} is per user and no user is logged in")
        return user(key, ttl=self.ttl)

    def react(self, path: str = "", *, tag: str = "span", **attrs: Any) -> str:
        """An element showing the current user's value at ``path``, kept live.

        For an anonymous visitor it is empty and unbound: there is no copy to
        follow (and naming the store would make the sync server refuse the
        page's event stream).
        """
        session = current_session()
        view = None if session is None else self.auth(session)
        if view is None:
            _pointer(path)  # a bad path is an error whoever is asking
            if not tag.isalnum():
                raise ValueError(f"invalid tag name {tag!r}")
            empty = Component().attr(**attrs)
            empty.tag = tag
            return HTML(empty.render())
        return react(self._id, _pointer(path), view.read(path), tag=tag, **attrs)

    def __repr__(self) -> str:
        return f"<htealeaf.AuthStore {self._id!r}>"


class UserStore(_Ops):
    """One user's copy of an :class:`AuthStore` (what ``auth(session)`` returns)."""

    def __init__(self, owner: AuthStore, user_id: str) -> None:
        self.owner = owner
        self.user_id = user_id
        self._sk = owner._sk
        self._id = owner._id

    def _enter(self) -> Any:
        return user(self.user_id, ttl=self.owner.ttl)


# ------------------------------------------------------------------ SuperStore


class SuperStore:
    """Mount every façade store's routes on a Starlette app (HTeaLeaf's ``SuperStore``).

    Routes: ``/api/_store/{api_id}/{path}`` with ``GET`` (read), ``POST``
    (append or merge), ``PATCH`` (replace; with ``Content-Type:
    application/json-patch+json`` on ``/api/_store/{api_id}``, an atomic RFC
    6902 patch answering ``{"version": n}``) and ``DELETE`` (remove). Writes
    need the ``sk_session`` cookie (pages set it), ``X-Statekit: 1``, a JSON
    body (``Content-Type: application/json``) and a same-origin request;
    limits apply (see :class:`Limits`). Stores made after ``SuperStore(app)``
    are found too. ``allowed_origins`` adds origins trusted besides the
    app's own.

    Live pages (``live``, the prefix, by default ``/_statekit``): a statekit
    :class:`~statekit.server.SyncServer` is mounted there for every
    registered store (snapshots, the SSE stream of JSON Patches, ``client.js``),
    sharing the ``sk_session`` cookie and, for an :class:`AuthStore`, the user
    its ``auth_fn`` names; ``htealeaf.js`` is served beside it, and every page
    an :class:`App` renders loads it (:meth:`script`), so what ``.react()``
    rendered follows each change, and the ``onclick`` code of ``.do`` and
    ``.js`` writes through the routes above. ``live=None`` mounts nothing.

    Example:
        >>> from statekit.compat.htealeaf import App, SuperStore
        >>> app = App(secret="s" * 32)
        >>> hub = SuperStore(app)
        >>> [r.path for r in app.routes]  # doctest: +NORMALIZE_WHITESPACE
        ['/_statekit/htealeaf.js', '/_statekit', '/api/_store/{api_id}',
         '/api/_store/{api_id}/{path:path}']
        >>> [r.path for r in SuperStore(App(secret="s" * 32), live=None).app.routes]
        ['/api/_store/{api_id}', '/api/_store/{api_id}/{path:path}']
    """

    def __init__(
        self,
        app: Any,
        *,
        secret: str | bytes | None = None,
        limits: Limits | None = None,
        allowed_origins: Sequence[str] = (),
        live: str | None = "/_statekit",
    ) -> None:
        self.app = app
        self.sessions = sessions_of(app, secret)
        self._limiter = RateLimiter(ServerLimits())
        self.limits = limits or Limits()
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)
        #: The app scope the stores' values live in: the one current now.
        self.scope: SkScope = app_scope()
        self._next_sweep = 0.0
        api = _StoreAPI(self)
        routes: list[Route | Mount] = [
            Route("/api/_store/{api_id}", api),
            Route("/api/_store/{api_id}/{path:path}", api),
        ]
        #: Where the sync server is mounted (``None``: no live pages).
        self.live = None if live is None else "/" + live.strip("/")
        #: The sync server of the live pages (``None`` with ``live=None``).
        self.server: SyncServer | None = None
        self._served = 0  # the registration the server last caught up with
        if self.live is not None:
            self.server = SyncServer(
                [],
                secret=self.sessions.secret,  # one secret: the same cookies
                session_max_age=self.sessions.max_age,
                identify=self._identify,
                allowed_origins=allowed_origins,
                limits=self._limiter.limits,
                app=self.scope,
            )
            self.server.rate = self._limiter  # one budget per visitor, pages and streams
            self._page_js = _PAGE_JS.read_bytes()
            routes[0:0] = [
                Route(self.live + "/htealeaf.js", self._serve_page_js),
                Mount(self.live, app=_Live(self, self.server)),
            ]
            hooks = getattr(app, "page_hooks", None)
            if hooks is not None:
                hooks.append(self.script)
        # JSON Patch writes commit through a hub, which says their exact version.
        self._hub = self.server.hub if self.server is not None else Hub(log_size=1)
        app.router.routes[0:0] = routes

    @property
    def limits(self) -> Limits:
        """What one request may cost (the routes' and the sync server's); settable."""
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = limits
        # The sync server's form of the same limits; its rate buckets check them.
        self._limiter.limits = ServerLimits(
            body=limits.body,
            ops=limits.ops,
            depth=limits.depth,
            rate=limits.rate,
            burst=limits.burst,
        )
        server = getattr(self, "server", None)
        if server is not None:
            server.limits = self._limiter.limits

    def script(self, request: Request) -> str:
        """The ``<script>`` that makes a page live (an :class:`App` adds it to every page).

        Example:
            >>> from starlette.requests import Request
            >>> hub = SuperStore(App(secret="s" * 32))
            >>> hub.script(Request({"type": "http", "root_path": "/shop"})).split()[2:]
            ['src="/shop/_statekit/htealeaf.js"', 'data-api="/shop/api/_store"></script>']
        """
        if self.live is None:
            return ""
        root = html.escape(str(request.scope.get("root_path", "")))
        return (
            f'<script type="module" src="{root}{html.escape(self.live)}/htealeaf.js" '
            f'data-api="{root}/api/_store"></script>'
        )

    async def _serve_page_js(self, request: Request) -> Response:
        return Response(
            self._page_js, media_type="text/javascript", headers={"Cache-Control": "no-cache"}
        )

    def _serve_registered(self) -> None:
        """Serve the stores registered since the last request (on the serving thread)."""
        if self.server is None or self._served == _registered:
            return
        self._served = _registered
        for facade in list(_registry.values()):
            self.server.add(facade.store, replace=True)  # the registry's latest owns the id

    def _identify(self, request: Request) -> str | None:
        """The sync server's user: who the ``auth_fn`` of the requested AuthStores names.

        A request names its stores (``stores/{name}``, ``events?store=...``);
        the session is the page's (one cookie). Global stores need no user.
        AuthStores that name different users for one session cannot share a
        request: refused as unknown, like another user's store.
        """
        sid = self.sessions.verify(request.cookies.get(COOKIE))
        if sid is None:
            return None
        names = request.query_params.getlist("store")
        path, root = request.scope["path"], request.scope.get("root_path", "")
        parts = [p for p in path.removeprefix(root).split("/") if p]
        if len(parts) >= 2 and parts[0] == "stores":
            names.append(parts[1])
        owners = [s for s in map(_registry.get, names) if isinstance(s, AuthStore)]
        if not owners:
            return None
        session = self.sessions.load(sid)
        users = {owner.user_of(session) for owner in owners}
        if len(users) > 1:
            raise ApiError(
                404,
                "unknown_store",
                "these per-user stores name different users for this session; "
                "stream them separately",
            )
        return users.pop()

    def stores(self) -> list[Store | AuthStore]:
        """Every live store that registered (``subscribe=True``)."""
        return list(_registry.values())

    # -------------------------------------------------------------- checks

    def _check_origin(self, request: Request) -> None:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise ApiError(403, "cross_origin", f"Sec-Fetch-Site {site!r} is not same-origin")
        origin = request.headers.get("origin")
        if origin is not None:
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin.rstrip("/") != own and origin.rstrip("/") not in self.allowed_origins:
                raise ApiError(403, "cross_origin", "the request's Origin is not this site's")

    async def _body(self, request: Request, method: str) -> Any:
        if method != "JSON-PATCH" and _media_type(request) != "application/json":
            raise ApiError(
                415,
                "unsupported_media_type",
                "writes need Content-Type: application/json"
                + (f" (or {_JSON_PATCH} for PATCH)" if method == "PATCH" else ""),
            )
        limit = self.limits.body
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except RecursionError:
            raise ApiError(
                422, "too_deep", f"the body nests deeper than {self.limits.depth}"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            detail = f"the body is not JSON ({type(exc).__name__})"
            if isinstance(exc, json.JSONDecodeError):
                detail = f"the body is not JSON: {exc.msg} at offset {exc.pos}"
            raise ApiError(400, "malformed_json", detail) from None
        check_depth(self.limits.depth, depth_of(value), "the body")
        return value

    def _sweep(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + 30.0
            self.scope.expire_idle(now)

    # -------------------------------------------------------------- handling

    async def handle(self, request: Request) -> Response:
        """Answer one store request (4xx JSON errors; see the class docstring)."""
        cookie = None
        try:
            sid = self.sessions.verify(request.cookies.get(COOKIE))
            client = request.client.host if request.client else "?"
            self._limiter.check(f"s:{sid}" if sid else f"ip:{client}")
            method = request.method
            if method not in _METHODS:
                raise ApiError(
                    405,
                    "method_not_allowed",
                    f"{method} is not one of {', '.join(_METHODS)}",
                    {"Allow": ", ".join(_METHODS)},
                )
            api_id = request.path_params["api_id"]
            store = _registry.get(api_id)
            if store is None:
                raise ApiError(404, "unknown_store", f"no store {api_id!r}")
            data: Any = None
            if method in _MUTATIONS:
                if request.headers.get("x-statekit") != "1":
                    raise ApiError(403, "missing_header", "writes need the header X-Statekit: 1")
                self._check_origin(request)
                if sid is None:
                    raise ApiError(
                        401, "invalid_session", "writes need a valid session cookie (load a page)"
                    )
                if method == "PATCH" and _media_type(request) == _JSON_PATCH:
                    method = "JSON-PATCH"
                if method != "DELETE":
                    data = await self._body(request, method)
            if sid is None:
                sid, cookie = self.sessions.issue()
            with self.scope:
                self._sweep()
                result = self._apply(store, method, request.path_params.get("path", ""), sid, data)
            response: Response = JSONResponse(result[0], headers={"ETag": f'"{result[1]}"'})
        except ApiError as error:
            response = error_response(error)
        if cookie is not None:
            session_cookie(response, request, cookie, self.sessions.max_age)
        return response

    def _apply(
        self, store: Store | AuthStore, method: str, path: str, sid: str, data: Any
    ) -> tuple[Any, int]:
        label = f"store {store.id!r}"
        try:
            parts = _paths.parse(path)
        except PathError as exc:
            raise ApiError(404, "not_found", f"{label}: {exc}") from None
        where = _paths.format(parts)
        view: _Ops = store
        if isinstance(store, AuthStore):
            found = store.auth(self.sessions.load(sid))
            if found is None:  # anonymous: as if there were no such store
                raise ApiError(404, "unknown_store", f"no store {store.id!r}")
            view = found
        if method == "JSON-PATCH" and parts:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"{label}: a JSON Patch goes to /api/_store/{store.id} (its pointers say where)",
            )
        if method not in ("GET", "JSON-PATCH") and not store.writable(where):
            raise ApiError(403, "not_writable", f"{label}: {where!r} is not writable")
        try:
            if method == "JSON-PATCH":
                return self._json_patch(store, view, data)
            if method == "GET":
                value = view.read(where)
            elif method == "POST":
                value = view.create(where, data)
            elif method == "PATCH":
                value = view.update(where, data)
            else:
                view.delete(where)
                value = None
            return value, view.version
        except PathError as exc:
            raise ApiError(404, "not_found", f"{label}: {exc}") from None
        except ValidationError as exc:
            raise ApiError(422, "validation_failed", _first_line(exc)) from None
        except PatchError as exc:
            raise ApiError(422, "invalid_patch", _first_line(exc)) from None
        except StatekitError as exc:
            raise ApiError(422, "invalid_patch", f"{label}: {type(exc).__name__}") from None

    def _json_patch(self, store: Store | AuthStore, view: _Ops, ops: Any) -> tuple[Any, int]:
        """Check ``ops`` against the limits and ``writable``, then commit them at once."""
        label = f"store {store.id!r}"
        if not isinstance(ops, list):
            raise ApiError(422, "invalid_patch", "a JSON Patch is an array of operations")
        if len(ops) > self.limits.ops:
            raise ApiError(
                413, "too_many_ops", f"{len(ops)} operations; at most {self.limits.ops} per patch"
            )
        for number, op in enumerate(ops):
            name = op.get("op") if isinstance(op, dict) else None
            if name not in _PATCH_OPS:
                raise ApiError(
                    422,
                    "invalid_patch",
                    f"op {number}: an object whose 'op' is one of {', '.join(sorted(_PATCH_OPS))}",
                )
            for member in ("path", "from") if name in ("move", "copy") else ("path",):
                pointer = op.get(member)
                if not isinstance(pointer, str) or (pointer and pointer[0] != "/"):
                    raise ApiError(
                        422, "invalid_patch", f"op {number} ({name}): {member!r} is not a pointer"
                    )
                try:
                    _paths.parse(pointer)
                except PathError as exc:
                    raise ApiError(
                        422, "invalid_patch", f"op {number} ({name}): {exc.reason}"
                    ) from None
                if name == "test" or (name, member) == ("copy", "from"):
                    continue  # reads: allowed anywhere
                if not store.writable(pointer):
                    raise ApiError(
                        403, "not_writable", f"{label}: op {number} ({name}) writes {pointer!r}"
                    )
        with view._enter():
            copy = self._hub.copy(store.store)
            try:
                version = self._hub.commit(copy, ops)
            except PatchTestFailed as exc:
                raise ApiError(409, "test_failed", _first_line(exc)) from None
            except PathError as exc:
                raise ApiError(422, "path_not_found", _first_line(exc)) from None
        return {"version": version}, version


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Live:
    """The mounted sync server, first serving the stores registered since the last request."""

    def __init__(self, hub: SuperStore, server: SyncServer) -> None:
        self.hub, self.server = hub, server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.hub._serve_registered()
        await self.server(scope, receive, send)


class _StoreAPI:
    """The ASGI endpoint behind both routes (any method reaches ``handle``)."""

    def __init__(self, hub: SuperStore) -> None:
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.hub.handle(request)
        except Exception as exc:  # a bug must not become a 500 page that leaks a traceback
            response = last_resort(exc)
        await response(scope, receive, send)
