"""The server's OpenAPI document: valid, complete, and true (schemathesis against uvicorn).

The document is checked as OpenAPI 3.1 and for listing every store, action and
endpoint; then schemathesis generates requests from it (valid and invalid
ones) and sends them to a real uvicorn on 127.0.0.1, each with a valid session
cookie and tab token (and, for half of them, a logged-in user) so that they
reach the real handlers rather than stopping at ``401``. Every response must be a status the
document declares for that operation, with its content type, headers and
body schema, and never a 5xx; the run fails if fewer than 1,000 requests
were sent. A stateful run follows the document's links (an ``ETag`` becomes the
next ``If-Match`` or ``If-None-Match``).
"""

from __future__ import annotations

import http.cookiejar
import re
from collections.abc import Callable
from typing import Any

import httpx
import hypothesis
import openapi_spec_validator
import pydantic
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.routing import Mount

import statekit as sk
from _server_fixtures import (
    SECRET,
    add,
    bump,
    counter,
    draft,
    fail_after_write,
    identify,
    items,
    make_server,
    profile,
    running,
    todos,
)
from statekit.server import SESSION_COOKIE, TAB_HEADER, Limits, SyncServer

# Examples per operation and generation mode; operations with few possible
# inputs (no parameters) stop early, so the total is asserted, not assumed.
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 50, schemathesis.GenerationMode.NEGATIVE: 30}
NEGATIVE_STATUSES = ["400", "401", "403", "404", "412", "413", "415", "422", "429"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_document_is_valid_openapi_and_lists_everything() -> None:
    server = make_server()
    doc = server.openapi("/sk")
    openapi_spec_validator.validate(doc)
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/sk"}]
    paths = doc["paths"]
    for name in server.stores:
        assert set(paths[f"/stores/{name}"]) == {"get", "patch"}
        patch = paths[f"/stores/{name}"]["patch"]
        assert "application/json-patch+json" in patch["requestBody"]["content"]
        assert {p["name"] for p in patch["parameters"]} >= {"X-Statekit", "If-Match"}
    actions = {(s, a) for s, names in server.actions.items() for a in names}
    assert actions == {("counter", "bump"), ("counter", "fail_after_write"), ("todos", "add")}
    for store, action in actions:
        body = paths[f"/stores/{store}/actions/{action}"]["post"]["requestBody"]
        assert body["required"] is True and "application/json" in body["content"]
    add = paths["/stores/todos/actions/add"]["post"]
    arguments = add["requestBody"]["content"]["application/json"]["schema"]
    assert arguments["required"] == ["title"] and arguments["additionalProperties"] is False
    assert set(arguments["properties"]) == {"title", "done"}
    result = add["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["properties"]["result"] == {"type": "integer"}  # from `-> int`
    assert "text/event-stream" in paths["/events"]["get"]["responses"]["200"]["content"]
    assert {"/stores", "/events", "/client.js", "/openapi.json"} <= set(paths)
    assert "/session/tab" not in paths  # per-tab sessions are off
    # Links chain the versions: an ETag is the next write's If-Match.
    link = paths["/stores/counter"]["get"]["responses"]["200"]["links"]["patchAtVersion"]
    assert link["operationId"] == paths["/stores/counter"]["patch"]["operationId"]
    assert link["parameters"] == {"header.If-Match": "$response.header.ETag"}


def test_document_follows_the_configuration() -> None:
    server = make_server(session_per_tab=True, limits=Limits(rate=5.0, ops=7))
    doc = server.openapi()
    openapi_spec_validator.validate(doc)
    paths = doc["paths"]
    assert "/session/tab" in paths
    patch = paths["/stores/counter"]["patch"]
    body = patch["requestBody"]["content"]["application/json-patch+json"]["schema"]
    assert body["maxItems"] == 7
    assert "429" in patch["responses"] and "429" in paths["/client.js"]["get"]["responses"]
    assert "X-Statekit-Tab" in {p["name"] for p in patch["parameters"]}
    # Writes are described as the server checks them: under the writable pointers only.
    ops = {v["properties"]["op"]["const"]: v for v in body["items"]["oneOf"]}
    write = re.compile(ops["add"]["properties"]["path"]["pattern"])
    assert write.match("/n") and write.match("/n/x") and not write.match("/locked")
    assert not write.match("/nx") and not write.match("/n~2")
    assert re.match(ops["test"]["properties"]["path"]["pattern"], "/locked")  # reads anywhere
    # The store with a pydantic schema describes its snapshot with it.
    snapshot = paths["/stores/profile"]["get"]["responses"]["200"]["content"]["application/json"]
    value = snapshot["schema"]["properties"]["value"]
    assert value["required"] == ["age", "name"] and value["properties"]["age"]["type"] == "integer"
    # Only the user-scoped store can be out of reach (404) for a visitor.
    assert "404" in paths["/stores/todos"]["get"]["responses"]
    assert "404" not in paths["/stores/counter"]["get"]["responses"]
    # Without a rate limit there is no 429 to declare.
    assert "429" not in make_server().openapi()["paths"]["/stores"]["get"]["responses"]
    # A name that is not served is a 404 on the event stream, user stores or not.
    events = SyncServer([counter], secret=SECRET).openapi()["paths"]["/events"]["get"]
    assert events["responses"]["404"]["content"]["application/json"]["schema"]["properties"][
        "error"
    ] == {"type": "string", "enum": ["unknown_store"]}


def test_served_document_is_cached_and_names_the_mount_prefix() -> None:
    server = make_server()
    with running(server) as url:
        first = httpx.get(f"{url}/openapi.json", timeout=10)
        second = httpx.get(f"{url}/openapi.json", timeout=10)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert first.content == second.content and first.headers["etag"] == second.headers["etag"]
    assert first.json() == server.openapi() and first.json()["servers"] == [{"url": "/"}]
    with running(Starlette(routes=[Mount("/sk", app=server)])) as url:
        mounted = httpx.get(f"{url}/sk/openapi.json", timeout=10)
    assert mounted.status_code == 200 and mounted.json()["servers"] == [{"url": "/sk"}]
    assert mounted.json()["paths"] == first.json()["paths"]


def test_an_action_whose_types_have_no_json_schema_is_still_described() -> None:
    # Found while fuzzing configurations: pydantic validates a Callable argument but
    # cannot describe it, which made GET openapi.json answer 400 request_failed.
    def apply(fn: Callable[[int], int], times: int = 1) -> None:
        counter.update("n", lambda n: fn(n) * times)

    server = SyncServer([counter], secret=SECRET, actions={"counter": [apply]})
    with running(server) as url:
        response = httpx.get(f"{url}/openapi.json", timeout=10)
    assert response.status_code == 200, response.text
    doc = response.json()
    openapi_spec_validator.validate(doc)
    body = doc["paths"]["/stores/counter/actions/apply"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "type": "object",
        "properties": {"fn": {}, "times": {}},
        "required": ["fn"],
        "additionalProperties": False,
    }


class Item(pydantic.BaseModel):
    title: str = pydantic.Field(min_length=1, max_length=40)
    qty: int = pydantic.Field(1, ge=0, le=1000)


class Cart(pydantic.BaseModel):
    items: list[Item]
    note: str | None = None


cart = sk.Store(
    {"items": [], "note": None},
    name="cart",
    scope="session",
    schema=Cart,
    writable=["/items", "/note"],
)


def add_item(item: Item, times: int = 1) -> list[str]:
    """An argument that is a model (its schema is hoisted into the components)."""
    if not 0 < times <= 3:
        raise ValueError("times is 1 to 3")
    for _ in range(times):
        cart.add("items/-", item.model_dump())
    return [entry["title"] for entry in cart.get("items")]


def fuzz_server() -> SyncServer:
    """The fixture stores, a schema'd session store with a model-taking action, tabs, a rate."""
    return SyncServer(
        [counter, todos, draft, items, profile, cart],
        secret=SECRET,
        identify=identify,
        actions={"counter": [bump, fail_after_write], "todos": [add], "cart": [add_item]},
        session_per_tab=True,
        # A rate limit (so 429 is declared) that the run stays under.
        limits=Limits(rate=10_000.0, burst=100_000),
        heartbeat=60.0,
    )


def test_schemathesis_finds_no_5xx_and_no_mismatch() -> None:
    server = fuzz_server()
    openapi_spec_validator.validate(server.openapi())
    with running(server) as url:
        schema, session, cookie, tab = _connect(url)
        sent: dict[str, int] = {}
        statuses: dict[int, int] = {}
        unnegatable: set[str] = set()

        def send(case: Any, mode: schemathesis.GenerationMode) -> None:
            number = sum(sent.values())
            # Every other request is a logged-in user's, reaching the user-scoped store.
            headers = {"x-test-user": "alice"} if number % 2 else {}
            # The session is added to every request, except where the case is
            # about its absence (a negated cookie): then the server must refuse.
            cookies = {} if _negates(case, ParameterLocation.COOKIE) else {SESSION_COOKIE: cookie}
            if mode is mode.POSITIVE:
                # A generated tab token is a random string (401): send the real one.
                if case.headers and TAB_HEADER in case.headers:
                    case.headers[TAB_HEADER] = tab
                if case.query and "tab" in case.query:
                    case.query["tab"] = tab
            response = case.call(base_url=url, session=session, headers=headers, cookies=cookies)
            sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            checks = [*CHECKS, negative_data_rejection] if mode is mode.NEGATIVE else CHECKS
            case.validate_response(response, checks=checks)

        for result in schema.get_all_operations():
            operation = result.ok()
            for mode, examples in EXAMPLES.items():
                try:
                    _fuzz(operation, mode, examples, send)
                except hypothesis.errors.Unsatisfiable:
                    # Only optional string headers and no body: no invalid request exists.
                    assert mode is mode.NEGATIVE, operation.label
                    unnegatable.add(operation.label)
    writes = {label for label in sent if not label.startswith("GET ")}
    assert not unnegatable & writes, unnegatable
    total = sum(sent.values())
    assert total >= 1000, (total, sent)
    assert set(sent) >= {f"PATCH /stores/{name}" for name in server.stores}
    # Many requests reached the real handlers and succeeded, not only refusals.
    assert statuses.get(200, 0) >= 300, statuses


def test_schemathesis_stateful_chains_versions_through_the_links() -> None:
    """Scenarios that follow the links: a response's ETag becomes the next If-Match."""
    server = fuzz_server()
    with running(server) as url:
        schema, session, cookie, tab = _connect(url)
        chained: list[int] = []  # statuses of PATCHes sent with an If-Match from a link
        revalidated: list[int] = []  # statuses of GETs sent with an If-None-Match from a link
        steps: list[int] = []

        class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                if case.headers and TAB_HEADER in case.headers:
                    case.headers[TAB_HEADER] = tab
                return {
                    "base_url": url,
                    "session": session,
                    "cookies": {SESSION_COOKIE: cookie},
                    "headers": {"x-test-user": "alice"},
                }

            def setup(self) -> None:
                self.etags: dict[str, set[str]] = {}  # per store: the ETags seen so far

            def validate_response(self, response: Any, case: Any, *args: Any, **kw: Any) -> None:
                steps.append(response.status_code)
                store = case.path.split("/")[2] if case.path.startswith("/stores/") else ""
                seen = self.etags.setdefault(store, set())
                sent = response.request.headers
                # Version 0 is also what a generator may guess; a later one came from a link.
                if case.method == "PATCH" and sent.get("If-Match") in seen - {'"0"'}:
                    chained.append(response.status_code)
                if case.method == "GET" and sent.get("If-None-Match") in seen - {'"0"'}:
                    revalidated.append(response.status_code)
                if "etag" in response.headers:
                    seen.add(response.headers["etag"][0])
                case.validate_response(response, checks=CHECKS)

        Scenarios.run(
            settings=hypothesis.settings(
                max_examples=25,
                stateful_step_count=8,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
        )
    assert len(steps) >= 100, len(steps)
    # Links were followed: PATCHes carried an If-Match taken from an ETag, and
    # revalidations an If-None-Match that was current (304).
    assert chained and 304 in revalidated, (chained, revalidated)


def _connect(url: str) -> tuple[Any, requests.Session, str, str]:
    """The schema as served, a keep-alive session without a cookie jar, a session and tab."""
    config = schemathesis.Config.from_dict(
        {
            "max-stream-events": 1,
            "request-timeout": 5,
            # Invalid requests the server refuses with the status RFC 9110 gives:
            # a malformed If-Match is 412, too many ops 413.
            "checks": {"negative_data_rejection": {"expected-statuses": NEGATIVE_STATUSES}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    cookie = requests.get(f"{url}/stores", timeout=10).cookies[SESSION_COOKIE]
    tab = requests.post(
        f"{url}/session/tab",
        headers={"X-Statekit": "1"},
        cookies={SESSION_COOKIE: cookie},
        timeout=10,
    ).json()["tab"]
    session = requests.Session()  # each request says who it is: no cookie jar
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return schema, session, cookie, tab


def _negates(case: Any, location: ParameterLocation) -> bool:
    meta = case.meta
    component = meta.components.get(location) if meta is not None else None
    return component is not None and component.mode.is_negative


def _fuzz(operation: Any, mode: schemathesis.GenerationMode, examples: int, send: Any) -> None:
    """Send up to ``examples`` generated cases of one operation (deterministic)."""

    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        send(case, mode)

    run()
