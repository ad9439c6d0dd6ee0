"""The front's limits, attacked as the tester of issue 8 did, with real clients against the
running stack (`make up`; the front at WEB_PORT, the resolver at RESOLVER_PORT).

Resolve requests name only polyloop.test hosts, served by the stack's own dns.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
import urllib.request

import aiohttp
import pytest

from tests.stack import Stack, unavailable

DEADLINE = 5.0
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", autouse=True)
def front_up(stack: Stack) -> None:
    try:
        with urllib.request.urlopen(stack.web_url + "/healthz", timeout=DEADLINE):
            pass
    except OSError:
        unavailable(f"the web front at {stack.web_url}")


def exchange(stack: Stack, data: bytes, timeout: float = DEADLINE) -> tuple[str, dict, bytes]:
    """Send raw bytes, read until the front closes the connection (within `timeout`)."""
    with socket.create_connection((stack.host, stack.web_port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return lines[0], headers, body


def metric(stack: Stack, name: str, labels: str) -> float:
    with urllib.request.urlopen(stack.web_url + "/metrics", timeout=DEADLINE) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


def test_a_saturated_front_leaves_the_resolvers_healthcheck_a_slot(stack: Stack) -> None:
    # issue 8 item 2: the front's pool to the resolver was as wide as the resolver's
    # RESOLVER_MAX_CONNECTIONS (100); 100 slow /api/resolve calls starved its /healthz
    async def attack() -> list[float]:
        # names of 3 s hold every pooled connection for 3 s: long enough that a pool as
        # wide as the resolver's slots keeps /healthz waiting (the last wave may pass the
        # front's bound for a resolve, 5 s + a margin, and get a 504)
        body = {"names": ["slot.delay-3000.polyloop.test"], "timeout": 5}
        timeout = aiohttp.ClientTimeout(total=20)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def resolve() -> int:
                async with session.post(stack.web_url + "/api/resolve", json=body) as reply:
                    await reply.read()
                    return reply.status

            async def resolves_in_flight() -> float:
                async with session.get(stack.web_url + "/metrics") as reply:
                    text = await reply.text()
                found = re.search(
                    r'^polyloop_web_backend_in_flight\{backend="resolver"\} (\S+)$', text, re.M
                )
                assert found, "no resolver in-flight gauge in /metrics"
                return float(found.group(1))

            calls = [asyncio.create_task(resolve()) for _ in range(150)]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            while await resolves_in_flight() < 100:
                assert loop.time() < deadline, "the front never had 100 resolves in flight"
                await asyncio.sleep(0.05)
            latencies = []
            for _ in range(5):  # the resolver's own healthcheck, straight to it
                start = loop.time()
                probe = aiohttp.ClientTimeout(total=DEADLINE)
                async with session.get(stack.resolver_url + "/healthz", timeout=probe) as reply:
                    assert reply.status == 200
                latencies.append(loop.time() - start)
            statuses = await asyncio.gather(*calls)
        assert set(statuses) <= {200, 504}, statuses
        return latencies

    latencies = asyncio.run(attack())
    assert max(latencies) < 1.0, latencies


def test_a_slow_body_is_cut_at_the_body_deadline(stack: Stack) -> None:
    # issue 8 item 8: a body at one byte per 10 s held its connection forever
    body_timeout = float(os.environ.get("WEB_BODY_TIMEOUT", "10"))
    head = (
        b"POST /api/echo/tcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"m'
    )
    socks = [socket.create_connection((stack.host, stack.web_port), timeout=DEADLINE)]
    for _ in range(19):
        socks.append(socket.create_connection((stack.host, stack.web_port), timeout=DEADLINE))
    start = time.monotonic()
    try:
        for sock in socks:
            sock.sendall(head)
            sock.settimeout(body_timeout + DEADLINE)
        for sock in socks:
            chunks = []
            while chunk := sock.recv(65536):  # until the front closes
                chunks.append(chunk)
            assert b"".join(chunks).startswith(b"HTTP/1.1 408 "), chunks[:1]
    finally:
        for sock in socks:
            sock.close()
    assert time.monotonic() - start < body_timeout + 3


def test_a_content_length_over_the_limit_is_413_at_once(stack: Stack) -> None:
    start = time.monotonic()
    status, headers, body = exchange(
        stack,
        b"POST /api/echo/tcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\n\r\n",
    )
    assert status.startswith("HTTP/1.1 413 ")
    assert headers["content-type"].startswith(PROBLEM)
    assert json.loads(body)["status"] == 413
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: f\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: f\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: f\r\n" + b"X-H: v\r\n" * 200 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: f\r\nContent-Length: 1x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: f\r\nX-Fold: a\r\n folded\r\n\r\n", 400),
    ],
    ids=["url", "header", "headers", "content-length", "obs-fold"],
)
def test_parser_errors_are_problems(stack: Stack, request_bytes: bytes, status: int) -> None:
    # issue 8 item 9: these were aiohttp's text/plain 400, echoing the offending bytes
    status_line, headers, body = exchange(stack, request_bytes)
    assert int(status_line.split()[1]) == status, status_line
    assert headers["content-type"].startswith(PROBLEM)
    assert json.loads(body)["status"] == status
    assert b"aaaa" not in body and b"folded" not in body
    assert "object-src 'none'" in headers["content-security-policy"]


def test_readiness_probes_are_counted_apart_from_traffic(stack: Stack) -> None:
    # issue 9 item 13: an idle dashboard showed ~0.5 req/s per backend, its own probes
    probes = 'backend="dns",outcome="ok"'
    before = metric(stack, "polyloop_web_backend_probes_total", probes)
    calls_before = metric(stack, "polyloop_web_backend_calls_total", probes)
    for _ in range(3):
        with urllib.request.urlopen(stack.web_url + "/readyz", timeout=DEADLINE) as response:
            assert response.status == 200
    assert metric(stack, "polyloop_web_backend_probes_total", probes) >= before + 3
    assert metric(stack, "polyloop_web_backend_calls_total", probes) == calls_before
