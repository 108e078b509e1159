"""The server's OpenAPI document: valid OpenAPI 3.1, complete, and following the configuration."""

from __future__ import annotations

import httpx
import openapi_spec_validator
from starlette.applications import Starlette
from starlette.routing import Mount

from _server_fixtures import make_server, running
from statekit.server import Limits


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


def test_document_follows_the_configuration() -> None:
    server = make_server(session_per_tab=True, limits=Limits(rate=5.0, ops=7))
    doc = server.openapi()
    openapi_spec_validator.validate(doc)
    paths = doc["paths"]
    assert "/session/tab" in paths
    patch = paths["/stores/counter"]["patch"]
    assert patch["requestBody"]["content"]["application/json-patch+json"]["schema"]["maxItems"] == 7
    assert "429" in patch["responses"] and "429" in paths["/client.js"]["get"]["responses"]
    assert "X-Statekit-Tab" in {p["name"] for p in patch["parameters"]}
    # The store with a pydantic schema describes its snapshot with it.
    snapshot = paths["/stores/profile"]["get"]["responses"]["200"]["content"]["application/json"]
    value = snapshot["schema"]["properties"]["value"]
    assert value["required"] == ["age", "name"] and value["properties"]["age"]["type"] == "integer"
    # Only the user-scoped store can be out of reach (404) for a visitor.
    assert "404" in paths["/stores/todos"]["get"]["responses"]
    assert "404" not in paths["/stores/counter"]["get"]["responses"]
    # Without a rate limit there is no 429 to declare.
    assert "429" not in make_server().openapi()["paths"]["/stores"]["get"]["responses"]


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
