"""The OpenAPI 3.1 document of a :class:`~statekit.server.SyncServer` (``GET P/openapi.json``).

The document is built from the server's configuration, not written by hand:
one path per served store (its snapshot ``GET`` and JSON Patch ``PATCH``),
one per exposed action (its arguments' JSON Schema is the pydantic model the
server validates them with), the event stream, ``client.js``, the per-tab
token (when ``session_per_tab``) and the document itself. A store with a
pydantic ``schema=`` describes its snapshot ``value`` with that model. Each
operation declares exactly the error statuses the server can answer it with
(the codes of :data:`~statekit.server._errors.CODES` its checks raise, given
the limits in force): ``400 request_failed``, the last resort for a server
bug, is deliberately not declared, so that a schema-driven fuzzer reports it.

The document is cached per server and mount prefix and rebuilt when the set
of stores, actions or limits changes (:func:`document`).

Example:
    >>> import statekit as sk
    >>> from statekit.server import SyncServer
    >>> counter = sk.Store({"n": 0}, name="counter", writable=["/n"])
    >>> def bump(by: int = 1) -> int:
    ...     return counter.update("n", lambda n: n + by)
    >>> server = SyncServer([counter], secret="s", actions={"counter": [bump]})
    >>> doc = build(server)
    >>> sorted(doc["paths"])  # doctest: +NORMALIZE_WHITESPACE
    ['/client.js', '/events', '/openapi.json', '/stores', '/stores/counter',
     '/stores/counter/actions/bump']
    >>> body = doc["paths"]["/stores/counter/actions/bump"]["post"]["requestBody"]
    >>> body["content"]["application/json"]["schema"]["properties"]
    {'by': {'default': 1, 'title': 'By', 'type': 'integer'}}
"""

from __future__ import annotations

import hashlib
import inspect
import json
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import pydantic

from ._errors import CODES
from ._identity import SESSION_COOKIE, TAB_HEADER

if TYPE_CHECKING:
    from .._store import Store
    from ._actions import Exposed
    from ._app import SyncServer

__all__ = ["build", "document"]

_JSON = "application/json"
_OK_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_VERSION = {"type": "integer", "minimum": 0}
_ETAG = {
    "description": 'The store\'s version in quotes, `"<version>"`',
    "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
}
# RFC 6901: "" or "/"-prefixed tokens, where "~" only starts "~0" or "~1".
_POINTER = {
    "type": "string",
    "pattern": "^(/([^~/]|~[01])*)*$",
    "description": "an RFC 6901 JSON Pointer",
}
_OP_VALUE: dict[str, Any] = {}  # any JSON value


class _Codes(NamedTuple):
    """Error codes (and parameters) that many operations share, given the configuration."""

    who: list[str]  # any request that identifies the caller
    write: list[str]  # any mutation
    body: list[str]  # any request with a JSON body
    tab: list[dict[str, Any]]  # the tab-token header parameter, when per-tab sessions are on


_PREFIXES = 16  # mount prefixes cached per server
_cache: weakref.WeakKeyDictionary[SyncServer, tuple[Any, dict[str, tuple[bytes, str]]]] = (
    weakref.WeakKeyDictionary()
)


def document(server: SyncServer, root_path: str = "") -> tuple[bytes, str]:
    """The encoded document of ``server`` mounted at ``root_path``, and its ``ETag``.

    Built once per server and prefix; rebuilt when what it describes changes
    (stores, actions, limits or per-tab sessions).

    Example:
        >>> import statekit as sk
        >>> from statekit.server import SyncServer
        >>> server = SyncServer([sk.Store({}, name="s")], secret="k")
        >>> body, etag = document(server, "/sk")
        >>> json.loads(body)["servers"], document(server, "/sk")[0] is body
        ([{'url': '/sk'}], True)
    """
    key = _fingerprint(server)
    cached = _cache.get(server)
    if cached is None or cached[0] != key:
        cached = (key, {})
        _cache[server] = cached
    found = cached[1].get(root_path)
    if found is None:
        if len(cached[1]) >= _PREFIXES:
            cached[1].clear()  # prefixes come from the deployment, so this is rare
        body = json.dumps(build(server, root_path), separators=(",", ":")).encode()
        found = (body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
        cached[1][root_path] = found
    return found


def _fingerprint(server: SyncServer) -> Any:
    stores = tuple((name, id(store), store.writable) for name, store in server.stores.items())
    actions = tuple(
        (name, tuple((label, id(ex.fn)) for label, ex in exposed.items()))
        for name, exposed in server.actions.items()
    )
    return (stores, actions, server.limits, server.session_per_tab)


def build(server: SyncServer, root_path: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``server`` as a dict (see the module docstring)."""
    components: dict[str, Any] = {"Error": _error_schema(sorted(CODES))}
    common = ["rate_limited"] if server.limits.rate is not None else []
    who = [*common, *(["invalid_session"] if server.session_per_tab else [])]
    write = ["invalid_session", "cross_origin", "missing_header", *common]
    body = ["unsupported_media_type", "malformed_json", "too_deep"]
    if server.limits.body is not None:
        body.append("body_too_large")
    tab = [_tab_header()] if server.session_per_tab else []
    paths: dict[str, Any] = {
        "/stores": {
            "get": _operation(
                "listStores",
                "The served stores: name, scope, writable pointers, actions",
                who,
                _json_response("The stores", _listing_schema()),
                parameters=tab,
                session="optional",
            )
        }
    }
    codes = _Codes(who, write, body, tab)
    for name, store in server.stores.items():
        paths.update(_store_paths(server, name, store, codes, components))
    paths["/events"] = {"get": _events_operation(server, codes)}
    if server.session_per_tab:
        paths["/session/tab"] = {
            "post": _operation(
                "newTab",
                "A per-tab token: send it as `X-Statekit-Tab` (or `tab=` on events)",
                write,
                _json_response("The token", _object({"tab": {"type": "string"}})),
                parameters=[_statekit_header()],
            )
        }
    paths["/client.js"] = {
        "get": _operation(
            "clientJs",
            "The JavaScript client, an ES module",
            common,
            {
                "200": {
                    "description": "The module",
                    "headers": {"ETag": {"schema": {"type": "string"}}},
                    "content": {"text/javascript": {"schema": {"type": "string"}}},
                },
                "304": {"description": "Unchanged since `If-None-Match`"},
            },
            parameters=[_header("If-None-Match", False, {"type": "string"})],
            session="none",
        )
    }
    paths["/openapi.json"] = {
        "get": _operation(
            "openapi",
            "This document",
            common,
            _json_response("The OpenAPI document", {"type": "object"}),
            session="none",
        )
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "statekit sync server",
            "version": "1",
            "description": "Stores served by statekit.server.SyncServer; the protocol is "
            "docs/sync-protocol.md. Mutations need the session cookie "
            f"`{SESSION_COOKIE}` (any GET issues one) and the header `X-Statekit: 1`.",
        },
        "servers": [{"url": root_path or "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE}
            },
        },
    }


# ------------------------------------------------------------------ pieces


def _store_paths(
    server: SyncServer,
    name: str,
    store: Store,
    codes: _Codes,
    components: dict[str, Any],
) -> dict[str, Any]:
    """The snapshot GET, the PATCH and the actions of one store."""
    who, write, body, tab = codes.who, codes.write, codes.body, codes.tab
    owned = ["unknown_store"] if store.scope == "user" else []
    value = _value_schema(store, components)
    patch_codes = [*write, *body, *owned, "invalid_patch", "not_writable", "version_mismatch"]
    patch_codes += ["test_failed", "path_not_found"]
    if server.limits.ops is not None:
        patch_codes.append("too_many_ops")
    if getattr(store, "_schema", None) is not None:
        patch_codes.append("validation_failed")
    paths: dict[str, Any] = {}
    paths[f"/stores/{name}"] = {
        "get": _operation(
            f"getStore_{name}",
            f"Snapshot of store {name!r} ({store.scope} scope)",
            [*who, *owned],
            {
                **_json_response(
                    "The snapshot; `ETag` is its version",
                    _object({"name": {"const": name}, "version": _VERSION, "value": value}),
                    {"ETag": _ETAG},
                ),
                "304": {
                    "description": "Unchanged since `If-None-Match`",
                    "headers": {"ETag": _ETAG},
                },
            },
            parameters=[*tab, _header("If-None-Match", False, {"type": "string"})],
            session="optional",
        ),
        "patch": _operation(
            f"patchStore_{name}",
            f"Apply an RFC 6902 JSON Patch to store {name!r}, atomically; writable: "
            + (", ".join(repr(p) for p in store.writable) or "nothing"),
            patch_codes,
            _json_response("The new version", _object({"version": _VERSION}), {"ETag": _ETAG}),
            parameters=[
                *tab,
                _statekit_header(),
                _header(
                    "If-Match",
                    False,
                    {"type": "string", "pattern": '^(\\*|(W/)?"[0-9]+")$'},
                    'Apply only at this version (`"<version>"`, the snapshot\'s ETag)',
                ),
            ],
            request_body=(
                "application/json-patch+json",
                _patch_schema(server.limits.ops, store.writable),
            ),
        ),
    }
    for label, exposed in server.actions[name].items():
        paths[f"/stores/{name}/actions/{label}"] = {
            "post": _operation(
                f"action_{name}_{label}",
                f"Call action {label!r} of store {name!r} with keyword arguments",
                [*write, *body, *owned, "invalid_arguments", "action_failed"],
                _json_response(
                    "The store's version after the call and the action's result",
                    _object({"version": _VERSION, "result": _result_schema(exposed, components)}),
                    {"ETag": _ETAG},
                ),
                parameters=[*tab, _statekit_header()],
                request_body=(_JSON, _arguments_schema(exposed, components)),
            ),
        }
    _link_versions(paths, name)
    return paths


def _link_versions(paths: dict[str, Any], name: str) -> None:
    """OpenAPI links: the ``ETag`` of a response is the ``If-Match`` of the next write.

    They tell clients (and stateful fuzzers) how the versions chain.
    """

    def link(operation: str, header: str, description: str) -> dict[str, Any]:
        return {
            "operationId": _safe(f"{operation}_{name}"),
            "parameters": {f"header.{header}": "$response.header.ETag"},
            "description": description,
        }

    write = link("patchStore", "If-Match", "Patch the store at the version just seen")
    for path, item in paths.items():
        for operation in item.values():
            ok = operation["responses"]["200"]
            ok["links"] = {"patchAtVersion": write}
            if path == f"/stores/{name}":
                ok["links"]["revalidate"] = link(
                    "getStore", "If-None-Match", "Fetch again only if it changed (304)"
                )


def _events_operation(server: SyncServer, codes: _Codes) -> dict[str, Any]:
    """``GET P/events``: the stores to stream, resume, and the schema of one event."""
    who, tab = codes.who, codes.tab
    store_names = list(server.stores)
    events_params = [
        {
            "name": "store",
            "in": "query",
            "required": True,
            "style": "form",
            "explode": True,
            "schema": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": store_names},
            },
            "description": "The stores to stream (repeat the parameter for several)",
        },
        {
            "name": "last_event_id",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "Resume after this event id (`a=3,b=7`), like `Last-Event-ID`",
        },
        _header("Last-Event-ID", False, {"type": "string"}, "The last event id received"),
    ]
    if tab:
        # The stream takes the token as a header or (for EventSource) in the query.
        events_params += [*tab, {"name": "tab", "in": "query", "schema": {"type": "string"}}]
    return _operation(
        "events",
        "Server-Sent Events: `snapshot` and `patch` events of the named stores "
        "(docs/sync-protocol.md), resumable with `Last-Event-ID`",
        # unknown_store: a name not served, or a user store for an anonymous visitor.
        [*who, "invalid_query", "unknown_store"],
        {
            "200": {
                "description": "An endless event stream; the schema is one event's",
                "content": {"text/event-stream": {"schema": _event_schema(store_names)}},
            }
        },
        parameters=[*events_params],
        session="optional",
    )


def _operation(
    operation_id: str,
    summary: str,
    codes: Iterable[str],
    ok: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    request_body: tuple[str, dict[str, Any]] | None = None,
    session: str = "required",
) -> dict[str, Any]:
    responses = dict(ok)
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(CODES[code], []).append(code)
    for status, names in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": ", ".join(f"`{n}`" for n in names),
            "content": {_JSON: {"schema": _error_schema(names)}},
        }
        if status == 429:
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        responses[str(status)] = response
    operation: dict[str, Any] = {
        "operationId": _safe(operation_id),
        "summary": summary,
        "responses": responses,
        # GETs issue a session when there is none; writes need one.
        "security": [{}, {"session": []}] if session == "optional" else [{"session": []}],
    }
    if parameters:
        operation["parameters"] = parameters
    if request_body is not None:
        media, schema = request_body
        operation["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
    if session == "none":
        del operation["security"]  # no identity involved
    return operation


def _json_response(
    description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return {"200": response}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }


def _error_schema(codes: list[str]) -> dict[str, Any]:
    return _object({"error": {"type": "string", "enum": codes}, "detail": {"type": "string"}})


def _header(
    name: str, required: bool, schema: dict[str, Any], description: str = ""
) -> dict[str, Any]:
    header = {"name": name, "in": "header", "required": required, "schema": schema}
    if description:
        header["description"] = description
    return header


def _statekit_header() -> dict[str, Any]:
    return _header(
        "X-Statekit", True, {"type": "string", "enum": ["1"]}, "Sent by the client on writes"
    )


def _tab_header() -> dict[str, Any]:
    return _header(TAB_HEADER, False, {"type": "string"}, "The per-tab token (POST session/tab)")


def _listing_schema() -> dict[str, Any]:
    strings = {"type": "array", "items": {"type": "string"}}
    store = _object(
        {
            "name": {"type": "string"},
            "scope": {"type": "string", "enum": ["app", "user", "session"]},
            "writable": strings,
            "actions": strings,
        }
    )
    return _object({"stores": {"type": "array", "items": store}})


def _patch_schema(max_ops: int | None, writable: tuple[str, ...] | None = None) -> dict[str, Any]:
    """An array of RFC 6902 ops; ``writable``: the pointers clients may write under.

    As the server checks: ``test`` and the ``from`` of ``copy`` read anywhere;
    every other ``path`` (and the ``from`` of ``move``, which removes) writes.
    """
    anywhere = _POINTER
    if writable is None or "" in writable:
        writes = anywhere
    else:
        under = "|".join(_regex_escape(pointer) for pointer in writable)
        writes = {**_POINTER, "pattern": f"^({under})(/([^~/]|~[01])*)*$"}
    shapes: list[tuple[str, dict[str, Any], bool]] = [
        ("test", {"path": anywhere, "value": _OP_VALUE}, False),
        ("add", {"path": writes, "value": _OP_VALUE}, True),
        ("replace", {"path": writes, "value": _OP_VALUE}, True),
        ("remove", {"path": writes}, True),
        ("move", {"from": writes, "path": writes}, True),
        ("copy", {"from": anywhere, "path": writes}, True),
    ]
    variants = [
        _object({"op": {"const": name}, **members})
        for name, members, writes_something in shapes
        if not (writes_something and writable == ())
    ]
    schema: dict[str, Any] = {"type": "array", "items": {"oneOf": variants}}
    if max_ops is not None:
        schema["maxItems"] = max_ops
    return schema


def _regex_escape(text: str) -> str:
    """``text`` as a literal in a pattern that is both ECMA-262 and Python ``re``."""
    return "".join("\\" + c if c in "\\.^$*+?()[]{}|" else c for c in text)


def _event_schema(store_names: list[str]) -> dict[str, Any]:
    """One SSE event (``event``, ``id``, ``data``: JSON, see docs/sync-protocol.md)."""
    store = {"type": "string", "enum": store_names}
    payloads = {
        "snapshot": _object({"store": store, "version": _VERSION, "value": {"type": "object"}}),
        "patch": _object(
            {
                "store": store,
                "base": _VERSION,
                "version": _VERSION,
                "ops": _patch_schema(None),
            }
        ),
    }
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "id", "data"],
                "properties": {
                    "event": {"const": kind},
                    "id": {"type": "string", "description": "`a=3,b=7`: each store's version"},
                    "data": {
                        "type": "string",
                        "contentMediaType": _JSON,
                        "contentSchema": payload,
                    },
                },
            }
            for kind, payload in payloads.items()
        ]
    }


def _value_schema(store: Store, components: dict[str, Any]) -> dict[str, Any]:
    """The snapshot's ``value``: the store's pydantic model (as dumped), else any object."""
    model = getattr(store, "_schema", None)
    if model is not None and hasattr(model, "model_json_schema"):
        try:
            schema = model.model_json_schema(mode="serialization")
        except Exception:  # a field type with no JSON Schema: say only what is sure
            return {"type": "object"}
        schema.pop("title", None)
        return _hoist(schema, store.name, components)
    return {"type": "object"}


def _arguments_schema(exposed: Exposed, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of an action's keyword arguments (its validating model's)."""
    try:
        schema = exposed.schema()
    except Exception:  # a parameter type with no JSON Schema (a Callable, ...)
        # Still name the arguments, which ones are required, and that no others are taken.
        fields = exposed.model.model_fields.values()
        return {
            "type": "object",
            "properties": {field.alias: {} for field in fields if field.alias},
            "required": [f.alias for f in fields if f.alias and f.is_required()],
            "additionalProperties": False,
        }
    return _hoist(schema, f"{exposed.store.name}.{exposed.name}", components)


def _result_schema(exposed: Exposed, components: dict[str, Any]) -> dict[str, Any]:
    """The action's result from its return annotation; any JSON value when there is none."""
    try:
        annotation = inspect.signature(exposed.fn, eval_str=True).return_annotation
    except Exception:  # an annotation that does not evaluate: describe nothing
        return {}
    if annotation is inspect.Signature.empty:
        return {}
    try:
        schema = pydantic.TypeAdapter(annotation).json_schema(mode="serialization")
    except Exception:  # not a type pydantic can describe
        return {}
    schema.pop("title", None)
    return _hoist(schema, f"{exposed.store.name}.{exposed.name}.result", components)


def _safe(name: str) -> str:
    return "".join(c if c in _OK_NAME else "_" for c in name)


def _hoist(schema: dict[str, Any], prefix: str, components: dict[str, Any]) -> dict[str, Any]:
    """Move a pydantic schema's ``$defs`` into ``components`` under ``prefix``, fixing refs.

    In an OpenAPI document a ``#/$defs/...`` reference would resolve against
    the document's root, where there is no ``$defs``.
    """
    defs = schema.pop("$defs", {})
    names = {name: _safe(f"{prefix}.{name}") for name in defs}

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node = {**node, "$ref": "#/components/schemas/" + names[ref[8:]]}
            return {key: fix(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fix(value) for value in node]
        return node

    for name, definition in defs.items():
        components[names[name]] = fix(definition)
    fixed: dict[str, Any] = fix(schema)
    return fixed
