"""The OpenAPI document is valid OpenAPI 3.1, describes exactly the app's routes, and lists
every status they answer."""

from __future__ import annotations

import re
from typing import Any

from openapi_spec_validator import validate

from services.common import hostname
from services.web.app import create_app
from services.web.config import WebConfig
from services.web.faults import FAULTY_PREFIXES
from services.web.openapi import openapi_document
from services.web.origin import UNSAFE
from tests.sockets import closed_port
from tests.unit.web_fakes import MakeClient


def _app_routes() -> set[tuple[str, str]]:
    app = create_app(WebConfig())
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/static") or route.method == "HEAD":
            continue  # static files are not API; HEAD is GET's automatic twin
        routes.add((route.method.lower(), path))
    return routes


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document(WebConfig())
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_route_is_documented_and_nothing_else() -> None:
    """Both ways, the WebSocket under x-websockets: a route added anywhere without its
    @operation, or a path documented but not routed, fails here."""
    document = openapi_document(WebConfig())
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    websockets = {("get", path) for path in document["x-websockets"]}
    assert documented.isdisjoint(websockets)
    assert documented | websockets == _app_routes()


def test_every_operation_lists_405_and_500_and_the_fronts_own_fault() -> None:
    for path, item in openapi_document(WebConfig())["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"405", "500"} <= responses.keys(), (method, path)
            if path.startswith(FAULTY_PREFIXES):
                types = responses["503"]["content"]["application/problem+json"]["schema"]
                assert "urn:polyloop:problem:injected-fault" in str(types), (method, path)


async def test_what_the_front_answers_is_documented(front: MakeClient) -> None:
    """Statuses answered in-process, each looked up in its route's operation (and the
    problem's type in the ones it lists)."""
    client = await front(tcp_echo_port=closed_port(), max_body=2048)
    document = openapi_document(WebConfig())
    fanout = {"message": "hi", "names": ["www.polyloop.test"]}
    etag = (await client.get("/")).headers["ETag"]
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        ("GET", "/", "/", {"headers": {"Range": "bytes=0-9"}}),
        ("GET", "/", "/", {"headers": {"If-None-Match": etag}}),
        ("GET", "/", "/", {"headers": {"Range": "bytes=999999-"}}),
        ("POST", "/api/echo/tcp", "/api/echo/tcp", {"data": b"{"}),
        ("POST", "/api/echo/tcp", "/api/echo/tcp", {"json": {"message": "x"}}),
        ("POST", "/api/echo/udp", "/api/echo/udp", {"json": {"message": ""}}),
        ("PUT", "/api/faults/nope", "/api/faults/{service}", {"json": {}}),
        ("PUT", "/api/faults/web", "/api/faults/{service}", {"data": b" " * 4096}),
        ("PUT", "/api/faults/web", "/api/faults/{service}", {"json": {"block_ms": -1}}),
        ("PUT", "/api/faults/web", "/api/faults/{service}", {"json": {"fail_percent": 100}}),
        ("POST", "/api/fanout", "/api/fanout", {"json": fanout}),
        ("POST", "/api/resolve", "/api/resolve", {"json": {"names": ["a.polyloop.test"]}}),
        ("PUT", "/api/faults/web", "/api/faults/{service}", {"data": b"{"}),
        ("PUT", "/api/faults/web", "/api/faults/{service}", {"data": b"[" * 3000 + b"]" * 3000}),
        ("PUT", "/api/faults/web", "/api/faults/{service}", {"data": b'{"latency_ms": NaN}'}),
        ("DELETE", "/api/faults/web", "/api/faults/{service}", {"headers": {"Host": "evil"}}),
        ("PUT", "/api/faults/web", "/api/faults/{service}", {"headers": {"Origin": "http://e"}}),
        ("POST", "/api/echo/tcp", "/api/echo/tcp", {"headers": {"Host": "evil.example:80"}}),
        ("POST", "/api/fanout", "/api/fanout", {"headers": {"Origin": "null"}}),
        ("DELETE", "/api/faults/web", "/api/faults/{service}", {}),
    ]
    seen = set()
    for method, url, path, options in cases:
        async with client.request(method, url, **options) as response:
            status = str(response.status)
            seen.add(status)
            operation = document["paths"][path][method.lower()]
            assert status in operation["responses"], (method, url, status)
            if response.content_type == "application/problem+json":
                schema = operation["responses"][status]["content"][response.content_type]
                assert (await response.json())["type"] in str(schema["schema"]), (method, url)
    # the cases do reach what they are about
    assert {"206", "304", "416", "400", "403", "404", "413", "421", "422", "503"} <= seen, seen


def test_every_change_lists_the_origin_checks_refusals() -> None:
    for path, item in openapi_document(WebConfig())["paths"].items():
        for method, operation in item.items():
            if method.upper() in UNSAFE:
                assert {"403", "421"} <= operation["responses"].keys(), (method, path)
            else:
                assert "421" not in operation["responses"], (method, path)


def test_every_api_error_is_problem_json() -> None:
    document = openapi_document(WebConfig())
    for path in ["/api/echo/tcp", "/api/echo/udp", "/api/resolve"]:
        responses = document["paths"][path]["post"]["responses"]
        for status in ["400", "408", "413", "422", "503", "504"]:
            assert "application/problem+json" in responses[status]["content"], (path, status)


def test_the_limits_follow_the_config() -> None:
    schemas = openapi_document(WebConfig(max_message=100))["components"]["schemas"]
    assert schemas["EchoRequest"]["properties"]["message"]["maxLength"] == 100
    big = openapi_document(WebConfig(max_message=10_000))["components"]["schemas"]
    assert big["UdpEchoRequest"]["properties"]["message"]["maxLength"] == 4096


async def test_the_document_is_served(aiohttp_client) -> None:
    client = await aiohttp_client(create_app(WebConfig()))
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    validate(await response.json())


def test_the_backend_limits_come_from_the_backends_variables() -> None:
    config = WebConfig(resolver_max_names=3, resolver_max_timeout=2.0, udp_max_datagram=100)
    schemas = openapi_document(config)["components"]["schemas"]
    resolve = schemas["ResolveRequest"]["properties"]
    assert resolve["names"]["maxItems"] == 3
    assert resolve["timeout"]["maximum"] == 2.0
    assert resolve["timeout"]["default"] == 2.0  # 5 s would be refused
    assert schemas["UdpEchoRequest"]["properties"]["message"]["maxLength"] == 100
    assert "over 100 bytes" in schemas["UdpEchoRequest"]["properties"]["message"]["description"]
    assert resolve["names"]["items"]["pattern"] == hostname.PATTERN


def test_the_published_host_name_pattern_is_the_one_enforced() -> None:
    pattern = re.compile(
        openapi_document(WebConfig())["components"]["schemas"]["ResolveRequest"]["properties"][
            "names"
        ]["items"]["pattern"]
    )
    for name in ["www.polyloop.test", "a", "host-1.polyloop.test.", "x" * 63, "-a", "a-", "a..b"]:
        assert bool(pattern.search(name)) == hostname.is_host_name(name), name


def test_the_websocket_is_described_apart_never_as_a_plain_get() -> None:
    document = openapi_document(WebConfig())
    assert "/ws/live" not in document["paths"]
    assert "WebSocket" in document["x-websockets"]["/ws/live"]["description"]
