"""``SyncServer``: stores served over HTTP and Server-Sent Events (docs/sync-protocol.md).

The server is a plain ASGI app with its own small dispatch (so that a 404 or
405 is statekit's JSON error even when mounted inside another framework, whose
own handlers would answer in their format). Each request:

1. is matched to an endpoint (``404 not_found`` / ``405 method_not_allowed``);
2. is rate limited per identity;
3. for a mutation, passes the same-origin check, carries ``X-Statekit: 1``
   and a valid session cookie;
4. runs in its scope chain ``app → user → session → request``
   (:func:`~statekit.server._identity.enter_scopes`), so a user- or
   session-scoped store resolves to the caller's own copy;
5. answers JSON, or a 4xx ``{error, detail}`` (:mod:`._errors`): nothing
   answers 500.
"""

from __future__ import annotations

import functools
import hashlib
import json
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic
from starlette.requests import ClientDisconnect, Request, cookie_parser
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .. import _paths
from .._scope import Scope as StateScope
from .._scope import app_scope
from .._store import Store
from ..backends import Backend, backend_from_url
from ..exceptions import PatchError, PatchTestFailed, PathError, ScopeError, ValidationError
from ._actions import Exposed, describe_errors
from ._errors import ApiError, error_response, last_resort
from ._events import EventStream, parse_last_event_id
from ._hub import Copy, Hub, VersionMismatch, encode
from ._identity import (
    DEFAULT_MAX_AGE,
    SESSION_COOKIE,
    TAB_HEADER,
    Identity,
    SessionSigner,
    call_identify,
    enter_scopes,
    session_of,
    set_session_cookie,
)
from ._limits import Limits, RateLimiter, check_depth, depth_of
from ._openapi import build as build_openapi
from ._openapi import document as openapi_document
from ._uvicorn import respond

__all__ = ["SyncServer"]

Identify = Callable[[Request], "str | Awaitable[str | None] | None"]
Handler = Callable[["_Call"], Awaitable[Response]]

CLIENT_JS = Path(__file__).parent / "static" / "statekit.js"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_JSON = "application/json"
_JSON_PATCH = "application/json-patch+json"
_WRITES = frozenset({"PATCH", "POST", "PUT", "DELETE"})
_TAB_KEY = TAB_HEADER.lower().encode()
# The headers the PATCH fast path reads: only these are decoded.
_PATCH_HEADERS = frozenset(
    {
        b"content-length",
        b"content-type",
        b"host",
        b"if-match",
        b"origin",
        b"sec-fetch-site",
        b"x-statekit",
        _TAB_KEY,
    }
)
_COOKIE_CACHE = 10_000  # Cookie headers whose parse is remembered
_SESSION_COPIES = 10_000  # session copies remembered by identity (see _session_copy)
_NO_COOKIE: Any = object()


class _Call:
    """One request on its way through the server: the request, who, and a pending cookie."""

    __slots__ = ("cookie", "identity", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.identity: Identity | None = None
        self.cookie: str | None = None  # a new session cookie to set on the response


class SyncServer:
    """An ASGI app serving stores to browsers: snapshots, JSON Patch writes, actions, SSE.

    ``stores``: the stores to serve (``scope`` ``"app"``, ``"user"`` or
    ``"session"``); clients may write only under each store's ``writable=``
    pointers and call only the actions given for it in ``actions``
    (``{"todos": [add, clear_done]}``, or ``{"todos": {"add": add}}``).
    ``secret`` signs the session cookies (else ``$STATEKIT_SECRET``; no
    default). ``identify(request) -> user id | None`` (sync or async) names
    logged-in users. ``session_per_tab`` gives each browser tab its own
    session scope. ``allowed_origins`` are other origins allowed to write.
    ``limits``: see :class:`~statekit.server.Limits`. ``heartbeat``: seconds
    between ``: ping`` comments on event streams. ``event_interval``: the
    least seconds between two events of one stream (the first commit after a
    quiet spell goes out at once; commits in the interval go out together as
    one event; 0 sends each as soon as the stream runs). ``log_size``: commits kept
    per store copy for replay. ``backend``: a :class:`statekit.backends.Backend`
    or its URL (``memory://``, ``sqlite:///path``, ``redis://host:port/db``) that
    the store copies live in, so that several server processes share them;
    ``None`` keeps them in this process.
    ``app``: the app scope holding app-level values (default: the current one).

    Run it alone (``statekit serve module:server``) or mount it under a
    prefix: ``Starlette(routes=[Mount("/sk", app=server)])``, or
    ``fastapi_app.mount("/sk", server)``.

    Example:
        >>> import statekit as sk
        >>> from statekit.server import SyncServer
        >>> counter = sk.Store({"n": 0}, name="counter", writable=["/n"])
        >>> def reset() -> None:
        ...     counter.set("n", 0)
        >>> server = SyncServer([counter], secret="s3cret", actions={"counter": [reset]})
        >>> server.describe()
        [{'name': 'counter', 'scope': 'app', 'writable': ['/n'], 'actions': ['reset']}]
    """

    def __init__(
        self,
        stores: Iterable[Store],
        *,
        secret: str | bytes | None = None,
        identify: Identify | None = None,
        session_per_tab: bool = False,
        allowed_origins: Iterable[str] = (),
        limits: Limits | None = None,
        heartbeat: float = 15.0,
        event_interval: float = 0.01,
        log_size: int = 1000,
        actions: Mapping[str, Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]]]
        | None = None,
        backend: Backend | str | None = None,
        session_max_age: float = DEFAULT_MAX_AGE,
        app: StateScope | None = None,
    ) -> None:
        self.stores: dict[str, Store] = {}
        self.actions: dict[str, dict[str, Exposed]] = {}
        for store in stores:
            self.add(store)
        for name, declared in (actions or {}).items():
            if name not in self.stores:
                raise ValueError(f"actions= names store {name!r}, which is not served")
            pairs = (
                list(declared.items())
                if isinstance(declared, Mapping)
                else [(None, fn) for fn in declared]
            )
            for label, fn in pairs:
                exposed = Exposed(self.stores[name], fn, label)
                if exposed.name in self.actions[name]:
                    raise ValueError(f"store {name!r} has two actions named {exposed.name!r}")
                self.actions[name][exposed.name] = exposed
        self.signer = SessionSigner(secret, session_max_age)
        self.identify = identify
        self.session_per_tab = session_per_tab
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)
        self.limits = limits if limits is not None else Limits()
        if heartbeat <= 0:
            raise ValueError("heartbeat is a number of seconds > 0")
        self.heartbeat = float(heartbeat)
        if event_interval < 0:
            raise ValueError("event_interval is a number of seconds >= 0")
        self.event_interval = float(event_interval)
        self.app_scope = app if app is not None else app_scope()
        #: Where the store copies live (``None``: in this process only).
        self.backend: Backend | None = None
        if backend is not None:
            # Copies made under the app scope load from and commit through
            # the backend: versions are the backend's, and every server
            # process on it serves the same state (no sticky sessions).
            self.backend = backend_from_url(backend)
            self.backend.attach(self.app_scope)
        self.hub = Hub(log_size)
        self.rate = RateLimiter(self.limits)
        self._client_js = CLIENT_JS.read_bytes()
        self._client_etag = '"' + hashlib.sha256(self._client_js).hexdigest()[:16] + '"'
        self._routes: dict[tuple[str, ...], dict[str, Handler]] = {
            ("stores",): {"GET": self._list},
            ("stores", "*"): {"GET": self._snapshot, "PATCH": self._patch},
            ("stores", "*", "actions", "*"): {"POST": self._action},
            ("events",): {"GET": self._events},
            ("session", "tab"): {"POST": self._tab},
            ("client.js",): {"GET": self._client},
            ("openapi.json",): {"GET": self._openapi},
        }
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        # Cookie header -> its sk_session value (bounded; see _fast_sid).
        self._cookie_values: dict[bytes, str | None] = {}
        # (store, user, session key) -> that session's copy of a session-scoped
        # store (bounded; see _session_copy).
        self._session_copies: dict[tuple[Store, str | None, str], weakref.ref[Copy]] = {}

    def add(self, store: Store, *, replace: bool = False) -> None:
        """Serve one more store (with no actions), as if it had been in ``stores``.

        For apps whose stores are made after the server (the HTeaLeaf façade's
        ``SuperStore`` adds each store as it is registered). A store named like
        one already served is an error, unless ``replace=True`` (then it takes
        the name over). Call it from the thread serving requests, or before.

        Example:
            >>> import statekit as sk
            >>> server = SyncServer([], secret="s3cret")
            >>> server.add(sk.Store({"n": 0}, name="late"))
            >>> [store["name"] for store in server.describe()]
            ['late']
        """
        if not isinstance(store, Store):
            raise TypeError(f"SyncServer serves Store objects, not {type(store).__name__}")
        if not _NAME_OK.issuperset(store.name) or not store.name:
            raise ValueError(
                f"store name {store.name!r}: use letters, digits and '_.-' (it is sent "
                "in URLs and event ids)"
            )
        if store.scope == "request":
            raise ValueError(
                f"store {store.name!r} is request-scoped: each request would see a "
                "fresh copy, so there is nothing to serve (use 'session')"
            )
        served = self.stores.get(store.name)
        if served is store:
            return
        if served is not None and not replace:
            raise ValueError(f"two stores are named {store.name!r}")
        self.stores[store.name] = store
        self.actions[store.name] = {}

    def close(self) -> None:
        """End every open event stream (clients reconnect to whoever serves next)."""
        for stream in list(self._streams):
            stream.close()

    @property
    def streams(self) -> int:
        """How many event streams are open."""
        return len(self._streams)

    # ------------------------------------------------------------ description

    def describe(self) -> list[dict[str, Any]]:
        """What ``GET /stores`` lists: name, scope, writable pointers and actions per store."""
        return [
            {
                "name": name,
                "scope": store.scope,
                "writable": list(store.writable),
                "actions": sorted(self.actions[name]),
            }
            for name, store in self.stores.items()
        ]

    def openapi(self, root_path: str = "") -> dict[str, Any]:
        """The OpenAPI 3.1 document served at ``P/openapi.json`` (``root_path``: ``P``).

        Example:
            >>> import statekit as sk
            >>> server = SyncServer([sk.Store({}, name="notes")], secret="s3cret")
            >>> doc = server.openapi("/sk")
            >>> doc["openapi"], doc["servers"], "/stores/notes" in doc["paths"]
            ('3.1.0', [{'url': '/sk'}], True)
        """
        return build_openapi(self, root_path)

    # ------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return  # websockets are not spoken here; closing without accepting refuses them
        if scope["method"] == "PATCH" and (store := self._patch_target(scope)) is not None:
            # The hot write of every client: the same checks as _patch, in the
            # same order, on the raw ASGI scope (no Request, no Response).
            try:
                await self._fast_patch(store, scope, receive, send)
                return
            except ApiError as exc:
                response = error_response(exc)
            except Exception as exc:  # the last resort: never a 500
                response = last_resort(exc)
            await response(scope, receive, send)
            return
        request = Request(scope, receive)
        call = _Call(request)
        try:
            response = await self._dispatch(call)
        except ApiError as exc:
            response = error_response(exc)
        except Exception as exc:  # the last resort: never a 500
            response = last_resort(exc)
        if call.cookie is not None:
            set_session_cookie(response, request, call.cookie, self.signer.max_age)
        await response(scope, receive, send)

    async def _dispatch(self, call: _Call) -> Response:
        request = call.request
        path = request.scope["path"]
        root = request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        parts = [p for p in path.split("/") if p]
        handlers = self._match(parts)
        if handlers is None:
            raise ApiError(404, "not_found", "no such endpoint (see openapi.json)")
        method = request.method
        handler = handlers.get("GET" if method == "HEAD" else method)
        if handler is None:
            allowed = sorted(handlers) + (["HEAD"] if "GET" in handlers else [])
            raise ApiError(
                405,
                "method_not_allowed",
                f"{method} is not allowed here; allowed: {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        request.scope["path_params"] = {"parts": parts}
        self._limit(call)
        return await handler(call)

    def _match(self, parts: Sequence[str]) -> dict[str, Handler] | None:
        for pattern, handlers in self._routes.items():
            if len(pattern) == len(parts) and all(
                want in ("*", got) for want, got in zip(pattern, parts, strict=True)
            ):
                return handlers
        return None

    # ------------------------------------------------------------ who is asking

    def _limit(self, call: _Call) -> None:
        if self.limits.rate is None:
            return
        request = call.request
        sid = session_of(request, self.signer)
        client = request.client.host if request.client else "?"
        self.rate.check(f"s:{sid}" if sid else f"ip:{client}")

    def _check_mutation(self, call: _Call) -> None:
        """Same-origin, the custom header: what a cross-site form or script cannot fake."""
        request = call.request
        headers = request.headers
        self._check_origin(
            headers.get("sec-fetch-site"),
            headers.get("origin"),
            request.url.scheme,
            headers.get("host", ""),
            headers.get("x-statekit"),
        )

    def _check_origin(
        self, site: str | None, origin: str | None, scheme: str, host: str, marker: str | None
    ) -> None:
        if site is not None and site not in ("same-origin", "none"):
            raise ApiError(
                403, "cross_origin", f"Sec-Fetch-Site is {site[:20]!r}; writes must be same-origin"
            )
        if origin is not None:
            own = f"{scheme}://{host}"
            if origin.rstrip("/") != own and origin.rstrip("/") not in self.allowed_origins:
                raise ApiError(
                    403,
                    "cross_origin",
                    "the Origin header is neither this server's origin nor an allowed origin",
                )
        if marker != "1":
            raise ApiError(
                403,
                "missing_header",
                "writes need the header 'X-Statekit: 1' (the JS client sends it)",
            )

    async def _who(self, call: _Call, *, mutation: bool) -> Identity:
        """The caller's identity; a GET without a valid cookie gets a new session."""
        request = call.request
        if mutation:
            self._check_mutation(call)
        sid = session_of(request, self.signer)
        if sid is None:
            if mutation:
                raise _no_session()
            sid, call.cookie = self.signer.issue()
        tab = None
        if self.session_per_tab:
            token = request.headers.get(TAB_HEADER) or request.query_params.get("tab")
            tab = self._tab_of(sid, token)
        user = await self._user_of(request)
        call.identity = Identity(sid, user, tab)
        return call.identity

    def _tab_of(self, sid: str, token: str | None) -> str | None:
        if token is None:
            return None
        tab = self.signer.verify_tab(sid, token)
        if tab is None:
            raise ApiError(
                401,
                "invalid_session",
                "the tab token does not belong to this session; get a new one "
                "with POST session/tab",
            )
        return tab

    async def _user_of(self, request: Request) -> str | None:
        return await call_identify(self.identify, request)

    def _store(self, call: _Call) -> Store:
        name = call.request.scope["path_params"]["parts"][1]
        store = self.stores.get(name)
        if store is None:
            raise ApiError(404, "unknown_store", f"no store named {name[:60]!r}")
        return store

    def _copy(self, store: Store) -> Copy:
        """The caller's copy (inside its scopes); 404 when it cannot have one."""
        try:
            return self.hub.copy(store)
        except ScopeError:
            raise ApiError(
                404,
                "unknown_store",
                f"no store named {store.name!r} for this visitor (it is per {store.scope} "
                f"and this request has no {store.scope})",
            ) from None

    def _scopes(self, identity: Identity, *, request: bool = True) -> Any:
        # request=False where no user code runs (snapshots, patches, streams):
        # the store commits in its copy's own scope, so a request scope would
        # only be made and disposed.
        return enter_scopes(identity, self.app_scope, request=request)

    # ------------------------------------------------------------ the PATCH fast path

    def _patch_target(self, scope: Scope) -> Store | None:
        """The store of ``PATCH P/stores/<name>`` when it is served, else ``None``.

        ``None`` leaves the request to :meth:`_dispatch` (an unknown store's
        404 and every other route's answers come from one place).
        """
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        parts = [p for p in path.split("/") if p]
        if len(parts) != 2 or parts[0] != "stores":
            return None
        scope["path_params"] = {"parts": parts}  # as _dispatch leaves it, for identify()
        return self.stores.get(parts[1])

    async def _fast_patch(self, store: Store, scope: Scope, receive: Receive, send: Send) -> None:
        """:meth:`_patch` without Starlette's Request and Response.

        (A Request is made only for what needs one: ``identify(request)``,
        and the ``?tab=`` query of a per-tab session without the header.)

        Every check of the general path, in its order: the rate limit, the
        same-origin checks and custom header, the session cookie, the
        content type, the body's size and depth, the ops' shape, count,
        writability and depth, If-Match, then the commit's 409/412/422s.
        Headers are read as Starlette reads them: the first of a name wins,
        and every ``Cookie`` header counts.
        """
        # Each header read is decoded once, here, as Starlette's Headers
        # decodes it (latin-1); the others (user agent, accept...) never are.
        headers: dict[bytes, str] = {}
        cookies: list[bytes] = []
        for key, value in scope["headers"]:
            if key == b"cookie":
                cookies.append(value)
            elif key in _PATCH_HEADERS and key not in headers:
                headers[key] = value.decode("latin-1")
        sid = self._fast_sid(cookies)
        if self.limits.rate is not None:
            client = scope.get("client")
            self.rate.check(f"s:{sid}" if sid else f"ip:{client[0] if client else '?'}")
        self._check_origin(
            headers.get(b"sec-fetch-site"),
            headers.get(b"origin"),
            scope.get("scheme", "http"),
            headers.get(b"host", ""),
            headers.get(b"x-statekit"),
        )
        if sid is None:
            raise _no_session()
        tab = None
        if self.session_per_tab:
            token = headers.get(_TAB_KEY)
            tab = self._tab_of(sid, token or Request(scope, receive).query_params.get("tab"))
        user = None if self.identify is None else await self._user_of(Request(scope, receive))
        _check_content_type(headers.get(b"content-type", ""), _JSON_PATCH)
        data = await _read_body(receive, headers.get(b"content-length", ""), self.limits.body)
        brackets = _brackets(data)
        ops = self._parse_body(data, brackets)
        self._check_ops(store, ops, brackets)
        expected = _if_match(headers.get(b"if-match"))
        version = await self._commit(store, Identity(sid, user, tab), ops, expected)
        body = b'{"version":%d}' % version
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"cache-control", b"no-store"),
                (b"etag", b'"%d"' % version),
                (b"content-length", b"%d" % len(body)),
                (b"content-type", b"application/json"),
            ],
        }
        await respond(send, start, body)  # one write under uvicorn, not two

    def _fast_sid(self, cookies: list[bytes]) -> str | None:
        """The verified session id of the ``sk_session`` cookie (as :func:`session_of`)."""
        if not cookies:
            return None
        if len(cookies) == 1:
            # A client sends the same Cookie header on every request: its
            # parse is remembered (the signature and expiry are still checked).
            header = cookies[0]
            value = self._cookie_values.get(header, _NO_COOKIE)
            if value is _NO_COOKIE:
                value = cookie_parser(header.decode("latin-1")).get(SESSION_COOKIE)
                if len(self._cookie_values) >= _COOKIE_CACHE:
                    self._cookie_values.clear()
                self._cookie_values[header] = value
            return self.signer.verify(value)
        found: dict[str, str] = {}
        for header in cookies:
            found.update(cookie_parser(header.decode("latin-1")))
        return self.signer.verify(found.get(SESSION_COOKIE))

    # ------------------------------------------------------------ endpoints

    async def _list(self, call: _Call) -> Response:
        await self._who(call, mutation=False)
        return _json({"stores": self.describe()})

    async def _snapshot(self, call: _Call) -> Response:
        store = self._store(call)
        identity = await self._who(call, mutation=False)
        with self._scopes(identity, request=False):
            version, value = self.hub.read(self._copy(store))
        etag = f'"{version}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _etag_matches(call.request.headers.get("if-none-match"), version):
            return Response(status_code=304, headers=headers)
        body = f'{{"name":{encode(store.name)},"version":{version},"value":{encode(value)}}}'
        return Response(body, 200, headers, media_type=_JSON)

    async def _patch(self, call: _Call) -> Response:
        store = self._store(call)
        identity = await self._who(call, mutation=True)
        _content_type(call.request, _JSON_PATCH)
        ops = await self._body(call)
        self._check_ops(store, ops)
        expected = _if_match(call.request.headers.get("if-match"))
        version = await self._commit(store, identity, ops, expected)
        return Response(
            f'{{"version":{version}}}',
            200,
            {"Cache-Control": "no-store", "ETag": f'"{version}"'},
            _JSON,
        )

    async def _commit(
        self, store: Store, identity: Identity, ops: Any, expected: int | None
    ) -> int:
        """Commit a client's checked patch in its scopes; the store's refusals as 4xx."""
        copy = self._session_copy(store, identity)
        if copy is not None:
            return await self._acommit(store, copy, ops, expected)
        with self._scopes(identity, request=False):
            copy = self._copy(store)
            if store.scope == "session":
                if len(self._session_copies) >= _SESSION_COPIES:
                    self._session_copies.clear()  # bounded: ended sessions go too
                key = (store, identity.user, identity.scope_key())
                self._session_copies[key] = weakref.ref(copy)
            return await self._acommit(store, copy, ops, expected)

    def _session_copy(self, store: Store, identity: Identity) -> Copy | None:
        """The copy of a session-scoped store that ``identity`` committed to before, if live.

        What entering ``app → user → session`` and looking the copy up would
        find, without doing it: the key is all that picks the copy (the
        store, the user, the session and tab), and a copy whose session
        scope ended is not used (the full path then makes a new one). The
        commit still enters the copy's own scope, the session, and so
        touches it and its parents as entering the chain does.
        """
        ref = self._session_copies.get((store, identity.user, identity.scope_key()))
        copy = None if ref is None else ref()
        if copy is None:
            return None
        state = copy._state()
        if state is None or state.owner.disposed:
            return None
        return copy

    async def _acommit(self, store: Store, copy: Copy, ops: Any, expected: int | None) -> int:
        """``hub.acommit`` with the store's refusals as 4xx."""
        try:
            # Awaited: with a backend, the round trip does not block the loop.
            return await self.hub.acommit(copy, ops, expected)
        except VersionMismatch as exc:
            raise ApiError(
                412,
                "version_mismatch",
                f"store {store.name!r} is at version {exc.current}, not {expected}",
                {"ETag": f'"{exc.current}"'},
            ) from None
        # The store's errors already name the store, the op and the path.
        except PatchTestFailed as exc:
            raise ApiError(409, "test_failed", str(exc)) from None
        except PathError as exc:
            raise ApiError(422, "path_not_found", str(exc)) from None
        except ValidationError as exc:
            raise ApiError(422, "validation_failed", _schema_detail(store, exc)) from None
        except PatchError as exc:
            raise ApiError(422, "invalid_patch", str(exc)) from None

    async def _action(self, call: _Call) -> Response:
        store = self._store(call)
        name = call.request.scope["path_params"]["parts"][3]
        exposed = self.actions[store.name].get(name)
        if exposed is None:
            raise ApiError(
                404, "unknown_action", f"store {store.name!r} has no action {name[:60]!r}"
            )
        identity = await self._who(call, mutation=True)
        _content_type(call.request, _JSON)
        kwargs = exposed.validate(await self._body(call))
        with self._scopes(identity):
            copy = self._copy(store)
            result = await exposed.call(kwargs)
            version = self.hub.version(copy)
        return _json({"version": version, "result": result}, {"ETag": f'"{version}"'})

    async def _events(self, call: _Call) -> Response:
        query = call.request.query_params
        names = list(dict.fromkeys(query.getlist("store")))
        if not names:
            raise ApiError(
                400, "invalid_query", "name the stores to stream: events?store=a&store=b"
            )
        stores = []
        for name in names:
            store = self.stores.get(name)
            if store is None:
                raise ApiError(404, "unknown_store", f"no store named {name[:60]!r}")
            stores.append(store)
        identity = await self._who(call, mutation=False)
        with self._scopes(identity, request=False):
            copies = [self._copy(store) for store in stores]
        resume = parse_last_event_id(
            call.request.headers.get("last-event-id") or query.get("last_event_id")
        )
        return EventStream(
            self.hub, copies, resume, self.heartbeat, self._streams, interval=self.event_interval
        )

    async def _tab(self, call: _Call) -> Response:
        if not self.session_per_tab:
            raise ApiError(404, "not_found", "per-tab sessions are off (session_per_tab=False)")
        identity = await self._who(call, mutation=True)
        return _json({"tab": self.signer.issue_tab(identity.sid)})

    async def _client(self, call: _Call) -> Response:
        headers = {"ETag": self._client_etag, "Cache-Control": "no-cache"}
        if call.request.headers.get("if-none-match") == self._client_etag:
            return Response(status_code=304, headers=headers)
        return Response(self._client_js, 200, headers, media_type="text/javascript")

    async def _openapi(self, call: _Call) -> Response:
        body, etag = openapi_document(self, call.request.scope.get("root_path", ""))
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        return Response(body, 200, headers, media_type=_JSON)

    # ------------------------------------------------------------ bodies

    async def _body(self, call: _Call) -> Any:
        """The request body as JSON, within the size and depth limits."""
        request = call.request
        data = await _read_body(
            request.receive, request.headers.get("content-length", ""), self.limits.body
        )
        return self._parse_body(data)

    def _parse_body(self, data: bytes, brackets: int | None = None) -> Any:
        """``data`` as JSON within the depth limit; ``brackets``: :func:`_brackets` of it."""
        try:
            value = _loads(data)
        except RecursionError:
            raise ApiError(422, "too_deep", "the body nests too deep to parse") from None
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError):
                reason = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
            else:
                reason = "not valid JSON text"
            raise ApiError(400, "malformed_json", f"the body is not JSON: {reason}") from None
        limit = self.limits.depth
        if limit is not None and (brackets is None or brackets > limit):
            # (With no more brackets than the limit, the body cannot nest deeper.)
            check_depth(limit, depth_of(value), "the body")
        return value

    def _check_ops(self, store: Store, ops: Any, brackets: int | None = None) -> None:
        """Shape, count, writability and depth of a patch, before anything is applied.

        ``brackets``: :func:`_brackets` of the body, when known: an op's value
        is not walked for its depth when the body has too few brackets for
        the value to reach the limit at its path.
        """
        if not isinstance(ops, list):
            raise ApiError(
                422,
                "invalid_patch",
                "a patch is a JSON array of operations, not an object or value",
            )
        limit = self.limits.ops
        if limit is not None and len(ops) > limit:
            raise ApiError(
                413, "too_many_ops", f"the patch has {len(ops)} operations; the limit is {limit}"
            )
        writable = _writable_parts(store.writable)
        limit_depth = self.limits.depth
        for number, op in enumerate(ops):
            if not isinstance(op, dict):
                raise ApiError(422, "invalid_patch", f"op {number}: an operation is a JSON object")
            name = op.get("op")
            if not isinstance(name, str) or name not in _OPS:
                raise ApiError(
                    422,
                    "invalid_patch",
                    f"op {number}: 'op' must be one of add, remove, replace, move, copy, test",
                )
            members = ("path", "from") if name in ("move", "copy") else ("path",)
            for member in members:
                parts = _pointer(number, name, op, member)
                if name == "test" or (member == "from" and name == "copy"):
                    continue  # reads: allowed anywhere
                if not _under(parts, writable):
                    raise ApiError(
                        403,
                        "not_writable",
                        f"op {number} ({name}): store {store.name!r} does not let clients "
                        f"write {_paths.format(parts)!r} (writable: "
                        f"{', '.join(store.writable) or 'nothing'})",
                    )
                if member == "path" and "value" in op and limit_depth is not None:
                    value = op["value"]
                    depth = len(parts)
                    # The value's containers are among the body's brackets,
                    # less the patch's array and this op's object: walked
                    # only when there are enough of them to pass the limit.
                    if isinstance(value, (dict, list)) and (
                        brackets is None or depth + brackets - 2 > limit_depth
                    ):
                        depth += depth_of(value)
                    if depth > limit_depth:
                        # The message (and its formatted pointer) only for a refusal.
                        check_depth(
                            limit_depth,
                            depth,
                            f"op {number} ({name}): the value at {_paths.format(parts)!r}",
                        )


# ------------------------------------------------------------------ helpers


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _json(value: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(encode(value), 200, {"Cache-Control": "no-store", **(headers or {})}, _JSON)


@functools.lru_cache(maxsize=256)
def _writable_parts(pointers: tuple[str, ...]) -> list[tuple[str, ...]]:
    """A store's ``writable=`` pointers, parsed once (not on every PATCH)."""
    return [_paths.parse(p) for p in pointers]


def _under(parts: tuple[str, ...], writable: list[tuple[str, ...]]) -> bool:
    """Whether ``parts`` is at or below one of the ``writable`` pointers."""
    # A loop, not any(genexpr): no generator made per op of every PATCH.
    for pointer in writable:  # noqa: SIM110
        if parts[: len(pointer)] == pointer:
            return True
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every body: json.loads(data, parse_constant=...) builds a
# new JSONDecoder on each call.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


def _no_session() -> ApiError:
    return ApiError(
        401,
        "invalid_session",
        "no valid session cookie (missing, forged or expired); a GET request issues one",
    )


# The decoder's C scanner, what decode() calls after its whitespace match
# (typeshed does not list the attribute).
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _loads(data: bytes) -> Any:
    """``json.loads(data, parse_constant=_refuse_constant)`` with the decoder made once.

    Example:
        >>> _loads(b'[{"op": "remove", "path": "/a"}]'), _loads('"\u00e9"'.encode("utf-16"))
        ([{'op': 'remove', 'path': '/a'}], 'é')
    """
    if data.isascii() and b"\x00" not in data:
        # ASCII without NULs is UTF-8 to detect_encoding (a NUL could mean
        # UTF-16/32; in UTF-8 JSON it is an error either way), and a body
        # that starts with its value and ends with it (what clients send) is
        # one scanner call: decode() adds two whitespace matches and the
        # error handling. Anything else, errors included, goes the whole
        # way, for decode()'s own checks and messages.
        text = data.decode("ascii")
        try:
            value, end = _scan(text, 0)
        except (StopIteration, ValueError):
            return _decoder.decode(text)
        if end == len(text):
            return value
        return _decoder.decode(text)
    return _decoder.decode(data.decode(json.detect_encoding(data), "surrogatepass"))


def _brackets(data: bytes) -> int:
    """How many ``[`` and ``{`` bytes ``data`` has: a bound on its JSON's nesting depth.

    Every array or object of the body opens with one of them, in every
    encoding JSON may come in (UTF-16 and UTF-32 keep the ASCII byte); ones
    inside strings only make the bound looser.

    Example:
        >>> _brackets(b'[{"op": "add", "path": "/a", "value": "[x]"}]')
        3
    """
    return data.count(b"[") + data.count(b"{")


async def _read_body(receive: Receive, length: str, limit: int | None) -> bytes:
    """The whole request body, refused with 413 past ``limit`` bytes (as it arrives)."""
    if limit is not None and length.isdigit() and int(length) > limit:
        raise ApiError(
            413, "body_too_large", f"the body is {int(length)} bytes; the limit is {limit}"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit is not None and size > limit:
                raise ApiError(413, "body_too_large", f"the body is over {limit} bytes, the limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _content_type(request: Request, wanted: str) -> None:
    _check_content_type(request.headers.get("content-type", ""), wanted)


def _check_content_type(header: str, wanted: str) -> None:
    got = header.split(";", maxsplit=1)[0].strip().lower()
    if got != wanted:
        shown = repr(got[:60]) if got else "missing"
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type is {shown}; this endpoint takes {wanted}"
        )


def _pointer(number: int, name: str, op: Mapping[str, Any], member: str) -> tuple[str, ...]:
    pointer = op.get(member)
    if not isinstance(pointer, str):
        what = "missing" if member not in op else f"a {type(pointer).__name__}"
        raise ApiError(
            422,
            "invalid_patch",
            f"op {number} ({name}): {member!r} must be a JSON Pointer string, not {what}",
        )
    if pointer and not pointer.startswith("/"):
        raise ApiError(
            422,
            "invalid_patch",
            f"op {number} ({name}): {member!r} must be empty or start with '/' (RFC 6901)",
        )
    try:
        return _paths.parse(pointer)
    except PathError as exc:
        raise ApiError(
            422, "invalid_patch", f"op {number} ({name}): {member!r}: {exc.reason}"
        ) from None


def _if_match(header: str | None) -> int | None:
    if header is None or header.strip() == "*":
        return None
    text = header.strip()
    if text.startswith("W/"):
        text = text[2:]
    if len(text) >= 3 and text[0] == text[-1] == '"' and text[1:-1].isdigit():
        return int(text[1:-1])
    raise ApiError(
        412,
        "version_mismatch",
        'If-Match must be a version in quotes, like "3" (the ETag of the snapshot)',
    )


def _etag_matches(header: str | None, version: int) -> bool:
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or f'"{version}"' in tags


def _schema_detail(store: Store, exc: ValidationError) -> str:
    cause = exc.__cause__
    if isinstance(cause, pydantic.ValidationError):
        return describe_errors(
            cause, f"store {store.name!r}: the change does not fit the schema", "field"
        )
    return f"store {store.name!r}: the change does not fit the schema"
