"""The front's routes, in-process, against real loopback stand-ins for its backends
(see web_fakes): every route, the errors each can answer, security headers, metrics."""

from __future__ import annotations

import socket
import time

import pytest
from aiohttp import web

from services.web.app import SECURITY_HEADERS, create_app
from services.web.keys import STATS
from tests.sockets import closed_port
from tests.unit.web_fakes import FakeBackends, MakeClient

PROBLEM = "application/problem+json"


async def _problem(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body = await response.json(content_type=None)
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    assert "Traceback" not in body["detail"]
    return body


async def test_healthz(front: MakeClient) -> None:
    client = await front()
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


# spelled out, not imported: the test states what a browser must receive
EXPECTED_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _security_headers(response) -> dict[str, str]:
    return {name: response.headers.getone(name, None) for name in EXPECTED_SECURITY_HEADERS}


async def test_security_headers_on_every_kind_of_response(front: MakeClient) -> None:
    # a real client over a socket to the full app; each header exactly once
    client = await front(max_body=2048)
    requests = [
        ("GET", "/healthz", {}),
        ("GET", "/", {}),
        ("GET", "/static/app.js", {}),
        ("GET", "/nowhere", {}),
        ("PUT", "/", {}),
        ("POST", "/api/echo/tcp", {"data": b"{"}),
        ("POST", "/api/echo/tcp", {"data": b"x" * 4096}),
        ("GET", "/metrics", {}),
    ]
    for method, path, kwargs in requests:
        response = await client.request(method, path, **kwargs)
        assert _security_headers(response) == EXPECTED_SECURITY_HEADERS, (method, path)
        for name in EXPECTED_SECURITY_HEADERS:
            assert len(response.headers.getall(name)) == 1, (method, path, name)
    handshake = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with client.get("/ws/live", headers=handshake) as response:
        assert response.status == 101
        assert _security_headers(response) == EXPECTED_SECURITY_HEADERS
    assert SECURITY_HEADERS == EXPECTED_SECURITY_HEADERS


async def test_readyz_names_all_four_backends_up(front: MakeClient) -> None:
    client = await front()
    response = await client.get("/readyz")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["status"] == "ready"
    assert set(body["backends"]) == {"tcp-echo", "udp-echo", "resolver", "dns"}
    for check in body["backends"].values():
        assert check["state"] == "up"
        assert check["latency_ms"] >= 0
        assert check["error"] is None


async def test_readyz_503_names_the_backend_that_is_down(front: MakeClient) -> None:
    client = await front(tcp_echo_port=closed_port())
    response = await client.get("/readyz")
    assert response.status == 503
    checks = (await response.json())["backends"]
    assert checks["tcp-echo"]["state"] == "down"
    assert "refused" in checks["tcp-echo"]["error"]
    assert checks["tcp-echo"]["latency_ms"] is None
    assert checks["udp-echo"]["state"] == "up"


@pytest.mark.parametrize(
    ("address", "garbled", "error"),
    [("192.0.2.99", False, "not 192.0.2.10"), ("192.0.2.10", True, "unreadable")],
)
async def test_readyz_wants_the_zones_own_dns_answer(
    front: MakeClient, backends: FakeBackends, address: str, garbled: bool, error: str
) -> None:
    """www.polyloop.test must be 192.0.2.10, as the dns container's healthcheck wants it."""
    backends.dns.address, backends.dns.garbled = address, garbled
    client = await front()
    response = await client.get("/readyz")
    assert response.status == 503, await response.text()
    checks = (await response.json())["backends"]
    assert checks["dns"]["state"] == "down"
    assert error in checks["dns"]["error"]
    assert checks["tcp-echo"]["state"] == "up"


async def test_echo_tcp(front: MakeClient) -> None:
    client = await front()
    response = await client.post("/api/echo/tcp", json={"message": "héllo"})
    assert response.status == 200
    body = await response.json()
    assert body["echo"] == "héllo"
    assert body["bytes"] == len("héllo".encode())
    assert body["latency_ms"] >= 0


async def test_echo_udp(front: MakeClient, backends: FakeBackends) -> None:
    client = await front()
    response = await client.post("/api/echo/udp", json={"message": "ping over udp"})
    assert response.status == 200
    assert (await response.json())["echo"] == "ping over udp"
    assert backends.udp.received == 1


async def test_resolve_passes_the_request_and_the_answer_through(
    front: MakeClient, backends: FakeBackends
) -> None:
    client = await front()
    names = ["www.polyloop.test", "host-1.polyloop.test"]
    response = await client.post("/api/resolve", json={"names": names, "mode": "sequential"})
    assert response.status == 200
    body = await response.json()
    assert [r["name"] for r in body["results"]] == names
    assert body["mode"] == "sequential"
    assert backends.resolve_requests == [{"names": names, "timeout": 5.0, "mode": "sequential"}]


async def test_fanout_all_three_parts(front: MakeClient) -> None:
    client = await front()
    response = await client.post(
        "/api/fanout", json={"message": "fan", "names": ["www.polyloop.test"]}
    )
    assert response.status == 200
    body = await response.json()
    assert body["failed"] == []
    assert body["tcp"]["echo"] == body["udp"]["echo"] == "fan"
    assert body["resolve"]["results"][0]["addresses"] == ["192.0.2.1"]


async def test_fanout_reports_a_down_part_in_its_own_slot(front: MakeClient) -> None:
    client = await front(udp_echo_port=closed_port(socket.SOCK_DGRAM))
    response = await client.post(
        "/api/fanout", json={"message": "fan", "names": ["www.polyloop.test"]}
    )
    assert response.status == 200
    body = await response.json()
    assert body["failed"] == ["udp"]
    assert body["udp"]["status"] == 503
    assert body["udp"]["instance"] == "/api/fanout#udp"
    assert body["tcp"]["echo"] == "fan"
    assert body["resolve"]["results"][0]["name"] == "www.polyloop.test"


async def test_malformed_json_is_400(front: MakeClient) -> None:
    client = await front()
    for raw in [b"{", b"\xff\xfe", b""]:
        response = await client.post("/api/echo/tcp", data=raw)
        await _problem(response, 400)


async def test_wrong_shape_is_422_naming_the_field(front: MakeClient) -> None:
    client = await front(max_message=16)
    cases = [
        ("/api/echo/tcp", [1, 2], "body"),
        ("/api/echo/tcp", {}, "message"),
        ("/api/echo/tcp", {"message": 42}, "message"),
        ("/api/echo/tcp", {"message": ""}, "message"),
        ("/api/echo/tcp", {"message": "x" * 17}, "message"),
        ("/api/resolve", {"names": "www.polyloop.test"}, "names"),
        ("/api/resolve", {"names": ["ok.polyloop.test", "bad..name"]}, "names[1]"),
        ("/api/resolve", {"names": ["-x.polyloop.test"]}, "names[0]"),
        ("/api/resolve", {"names": ["a" * 64 + ".test"]}, "names[0]"),
        ("/api/resolve", {"names": [f"h{i}.polyloop.test" for i in range(257)]}, "names"),
        ("/api/resolve", {"names": ["www.polyloop.test"], "timeout": 31}, "timeout"),
        ("/api/resolve", {"names": ["www.polyloop.test"], "timeout": True}, "timeout"),
        ("/api/resolve", {"names": ["www.polyloop.test"], "mode": "parallel"}, "mode"),
        ("/api/fanout", {"message": "x"}, "names"),
    ]
    for path, payload, field in cases:
        body = await _problem(await client.post(path, json=payload), 422)
        assert body["field"] == field, (payload, body)


async def test_udp_message_limit_is_one_datagram(front: MakeClient) -> None:
    client = await front()
    body = await _problem(await client.post("/api/echo/udp", json={"message": "u" * 4097}), 422)
    assert "4096" in body["detail"]
    response = await client.post("/api/echo/udp", json={"message": "u" * 4096})
    assert response.status == 200


async def test_body_over_the_limit_is_413(front: MakeClient) -> None:
    client = await front(max_body=2048)
    response = await client.post("/api/echo/tcp", data=b'{"message": "' + b"x" * 4096 + b'"}')
    await _problem(response, 413)


async def test_unknown_route_is_404_and_wrong_method_405(front: MakeClient) -> None:
    client = await front()
    await _problem(await client.get("/api/nothing"), 404)
    response = await client.get("/api/echo/tcp")
    await _problem(response, 405)
    assert response.headers["Allow"] == "POST"


async def test_backend_down_is_503_at_once(front: MakeClient) -> None:
    # the timeout is long: a refused connection must not wait for it
    client = await front(tcp_echo_port=closed_port(), backend_timeout=30.0)
    start = time.monotonic()
    body = await _problem(await client.post("/api/echo/tcp", json={"message": "x"}), 503)
    assert time.monotonic() - start < 5.0
    assert body["backend"] == "tcp-echo"
    client = await front(udp_echo_port=closed_port(socket.SOCK_DGRAM), backend_timeout=30.0)
    start = time.monotonic()
    await _problem(await client.post("/api/echo/udp", json={"message": "x"}), 503)
    assert time.monotonic() - start < 5.0


async def test_backend_too_slow_is_504(front: MakeClient, backends: FakeBackends) -> None:
    backends.tcp.mute = True
    client = await front(backend_timeout=0.3)
    body = await _problem(await client.post("/api/echo/tcp", json={"message": "x"}), 504)
    assert body["backend"] == "tcp-echo"


async def test_unexpected_error_is_a_bare_500(backends: FakeBackends, aiohttp_client) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app = create_app(backends.config())
    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    body = await _problem(await client.get("/broken"), 500)
    assert "secret" not in await (await client.get("/broken")).text()
    assert body["type"] == "about:blank"


async def test_metrics_count_requests_and_backend_calls(front: MakeClient) -> None:
    client = await front(udp_echo_port=closed_port(socket.SOCK_DGRAM))
    assert (await client.post("/api/echo/tcp", json={"message": "m"})).status == 200
    assert (await client.post("/api/echo/udp", json={"message": "m"})).status == 503
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    for line in [
        'polyloop_web_requests_total{method="POST",route="/api/echo/tcp",status="200"} 1.0',
        'polyloop_web_backend_calls_total{backend="tcp-echo",outcome="ok"} 1.0',
        'polyloop_web_backend_errors_total{backend="udp-echo",kind="unavailable"} 1.0',
        'polyloop_web_backend_call_seconds_count{backend="tcp-echo"} 1.0',
        'polyloop_web_backend_in_flight{backend="tcp-echo"} 0.0',
        "polyloop_web_requests_in_flight 1.0",  # this very request
    ]:
        assert line in text, line


async def test_backend_calls_feed_the_live_stats(front: MakeClient) -> None:
    client = await front()
    assert (await client.post("/api/echo/tcp", json={"message": "s"})).status == 200
    snapshot = client.app[STATS].snapshot()
    assert snapshot["tcp-echo"]["total"] == 1
    assert snapshot["tcp-echo"]["errors_total"] == 0


async def test_lowered_backend_limits_are_refused_by_the_front_itself(
    front: MakeClient, backends: FakeBackends
) -> None:
    # before: the front passed these on; a resolver 422 came out as a 502, a dropped
    # datagram as a 504 after every retry
    client = await front(resolver_max_names=3, resolver_max_timeout=2.0, udp_max_datagram=100)
    names = [f"host-{i}.polyloop.test" for i in range(1, 5)]
    body = await _problem(await client.post("/api/resolve", json={"names": names}), 422)
    assert body["field"] == "names"
    assert "at most 3" in body["detail"]
    one = ["www.polyloop.test"]
    body = await _problem(
        await client.post("/api/resolve", json={"names": one, "timeout": 2.5}), 422
    )
    assert body["field"] == "timeout"
    body = await _problem(await client.post("/api/echo/udp", json={"message": "u" * 101}), 422)
    assert "100" in body["detail"]
    body = await _problem(
        await client.post("/api/fanout", json={"message": "u" * 101, "names": one}), 422
    )
    assert body["field"] == "message"
    assert backends.resolve_requests == []
    assert backends.udp.received == 0
    # within the limits all is passed on, and the default timeout respects the maximum
    assert (await client.post("/api/resolve", json={"names": names[:3]})).status == 200
    assert backends.resolve_requests[-1]["timeout"] == 2.0
    assert (await client.post("/api/echo/udp", json={"message": "u" * 100})).status == 200


async def test_request_metrics_stay_bounded_whatever_the_client_sends(front: MakeClient) -> None:
    from services.web.keys import METRICS

    client = await front()
    odd_methods = ("PROPFIND", "MKCOL", "LOCK", "UNLOCK", "TRACE", "PURGE", "REPORT", "MOVE")
    for i in range(40):  # odd paths and odd methods: one route label, one method label
        assert (await client.request(odd_methods[i % 8], f"/nowhere/{i}")).status == 404
        assert (await client.get(f"/nowhere-{i}")).status == 404
    for _ in range(3):
        assert (await client.get("/healthz")).status == 200
    text = await (await client.get("/metrics")).text()
    assert 'polyloop_web_requests_total{method="GET",route="/healthz",status="200"} 3.0' in text
    assert 'polyloop_web_requests_total{method="GET",route="unmatched",status="404"} 40.0' in text
    assert 'method="other",route="unmatched",status="404"} 40.0' in text
    assert "PROPFIND" not in text and "nowhere" not in text
    assert len(client.app[METRICS].requests) <= 4  # + /metrics itself, and "other"


def test_the_access_log_builds_no_record_below_info() -> None:
    import logging

    from services.web.access_log import JsonAccessLogger

    logger = logging.getLogger("tests.access")
    logger.setLevel(logging.WARNING)
    assert JsonAccessLogger(logger, "").enabled is False
    logger.setLevel(logging.INFO)
    assert JsonAccessLogger(logger, "").enabled is True


async def test_methods_outside_the_closed_set_share_one_label(front: MakeClient) -> None:
    # issue 8 item 1, the front's side: every label from a closed set. aiohttp's C parser
    # (llhttp) already refuses tokens it does not know; the ones it knows beyond the usual
    # seven (WebDAV's, PURGE, ...) were each becoming a label value of their own
    client = await front()
    odd = ["PURGE", "PROPFIND", "MKCOL", "LOCK", "UNLOCK", "REPORT", "SEARCH", "COPY"]
    for method in odd:
        assert (await client.request(method, "/healthz")).status == 405
    text = await (await client.get("/metrics")).text()
    assert not [method for method in odd if f'method="{method}"' in text]
    assert (
        f'polyloop_web_requests_total{{method="other",route="unmatched",status="405"}} {len(odd)}.0'
        in text
    )
