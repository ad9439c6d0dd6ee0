"""Runtime faults (issue 11) through the front's API only: inject, observe, clear, recovered.

Needs the running stack (`make up`, containers or local processes; `make up` made the
token). Every fault is set with ``PUT /api/faults/{service}`` on the front; a real client
talks to the service's own published port meanwhile (the front's own routes for ``web``);
``DELETE`` clears it and the same client is served at once again. Each test clears what it
set, whatever happens. The only time bounds are the faults' own (a round trip is ≥ the
block or the latency set) and a generous "recovered: answered in under a second".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.stack import ROOT, Stack, call, compose_env, stack_mode

FAULT_MS = 500
SERVICES = ("tcp-echo", "udp-echo", "dns", "resolver", "web")


@pytest.fixture
def faults(stack: Stack) -> Iterator[Callable[[str, dict], dict]]:
    """``set(service, spec)`` through the front; every service cleared afterwards."""
    status, listed = call(stack, "GET", "/api/faults")
    assert status == 200
    if not listed["enabled"]:
        pytest.skip("the front's fault API is off here (POLYLOOP_BIND beyond loopback)")
    touched: set[str] = set()

    def set_fault(service: str, spec: dict) -> dict:
        touched.add(service)
        status, body = call(stack, "PUT", f"/api/faults/{service}", spec)
        assert status == 200, body
        return body

    try:
        yield set_fault
    finally:
        for service in touched:
            call(stack, "DELETE", f"/api/faults/{service}")


def clear(stack: Stack, service: str) -> None:
    status, body = call(stack, "DELETE", f"/api/faults/{service}")
    assert status == 200 and body["active"] is False, body


# -- one real client per service: True when answered normally ---------------------------


def tcp_echo(stack: Stack) -> bool:
    # a failed chunk closes the connection: the read gets b"" (or a reset), not the echo
    try:
        with socket.create_connection((stack.host, stack.tcp_echo_port), timeout=5) as client:
            client.sendall(b"ping")
            return client.recv(100) == b"ping"
    except ConnectionError:
        return False


def udp_echo(stack: Stack) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2)
        client.sendto(b"ping", (stack.host, stack.udp_echo_port))
        try:
            return client.recv(100) == b"ping"
        except TimeoutError:
            return False


def dns_query(stack: Stack) -> bool:
    query = dns.message.make_query("www.polyloop.test", "A")
    answer = dns.query.udp(query, stack.host, port=stack.dns_port, timeout=5)
    return answer.rcode() == dns.rcode.NOERROR


def resolver(stack: Stack) -> bool:
    body = json.dumps({"names": ["www.polyloop.test"]}).encode()
    request = urllib.request.Request(f"{stack.resolver_url}/resolve", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["results"][0]["error"] is None


def web(stack: Stack) -> bool:
    status, body = call(stack, "POST", "/api/echo/udp", {"message": "ping"})
    return status == 200 and body.get("echo") == "ping"


CLIENTS: dict[str, Callable[[Stack], bool]] = {
    "tcp-echo": tcp_echo,
    "udp-echo": udp_echo,
    "dns": dns_query,
    "resolver": resolver,
    "web": web,
}


def timed(client: Callable[[Stack], bool], stack: Stack) -> tuple[bool, float]:
    started = time.monotonic()
    ok = client(stack)
    return ok, time.monotonic() - started


def assert_recovered(stack: Stack, service: str) -> None:
    ok, seconds = timed(CLIENTS[service], stack)
    assert ok and seconds < 1.0, (service, ok, seconds)


@pytest.mark.parametrize("service", SERVICES)
def test_fail_100_percent_then_clear(stack: Stack, faults, service: str) -> None:
    assert CLIENTS[service](stack)
    faults(service, {"fail_percent": 100, "duration_s": 30})
    assert not CLIENTS[service](stack)
    clear(stack, service)
    assert_recovered(stack, service)


@pytest.mark.parametrize("service", SERVICES)
def test_latency_then_clear(stack: Stack, faults, service: str) -> None:
    body = faults(service, {"latency_ms": FAULT_MS, "duration_s": 30})
    assert body["faults"] == {"latency": {"ms": FAULT_MS}}
    ok, seconds = timed(CLIENTS[service], stack)
    assert ok and seconds >= FAULT_MS / 1000, (ok, seconds)
    _, listed = call(stack, "GET", "/api/faults")
    assert 0 < listed["services"][service]["remaining_s"] <= 30
    clear(stack, service)
    assert_recovered(stack, service)


@pytest.mark.parametrize("service", SERVICES)
def test_block_stalls_a_client_then_clear(stack: Stack, faults, service: str) -> None:
    assert CLIENTS[service](stack)
    faults(service, {"block_ms": FAULT_MS, "duration_s": 30})
    # the block runs on the loop once the control thread's call reaches it: a call already
    # waiting there may be answered just before it, the next one then waits out the block
    slowest, deadline = 0.0, time.monotonic() + 5
    while slowest < FAULT_MS / 2000 and time.monotonic() < deadline:
        ok, seconds = timed(CLIENTS[service], stack)
        assert ok, service
        slowest = max(slowest, seconds)
    assert slowest >= FAULT_MS / 2000, (service, slowest)
    clear(stack, service)
    assert_recovered(stack, service)


def test_a_bad_value_is_refused_naming_the_field(stack: Stack) -> None:
    status, body = call(stack, "PUT", "/api/faults/dns", {"latency_ms": 5001})
    assert status == 422 and body["field"] == "latency_ms"
    _, listed = call(stack, "GET", "/api/faults")
    assert listed["services"]["dns"]["active"] is False


# (service, its metrics port variable, the port in the network and the README's default)
METRICS_PORTS = [
    ("tcp-echo", "TCP_ECHO_METRICS_PORT", 9101),
    ("udp-echo", "UDP_ECHO_METRICS_PORT", 9102),
    ("resolver", "RESOLVER_METRICS_PORT", 9103),
    ("dns", "DNS_METRICS_PORT", 9104),
    ("web", "WEB_METRICS_PORT", 9105),
]

# PUT /faults without the token, then with a wrong one, to every "host port" given on stdin;
# prints the two statuses per line. Run on the host (local mode) or inside the compose
# network (`docker compose exec -T web python -c ...`), where the metrics ports live.
UNAUTHORISED_PUTS = """
import sys, urllib.error, urllib.request
for line in sys.stdin:
    host, port = line.split()
    codes = []
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        request = urllib.request.Request(
            f"http://{host}:{port}/faults", data=b'{"fail_percent": 100}',
            method="PUT", headers=headers)
        try:
            urllib.request.urlopen(request, timeout=5).close()
            codes.append("200")
        except urllib.error.HTTPError as exc:
            codes.append(str(exc.code))
            exc.close()
    print(host, *codes, flush=True)
"""


def test_the_token_is_enforced_on_each_services_metrics_port(stack: Stack) -> None:
    """Straight to every service's metrics port, without the token or with a wrong one:
    401, then 403, and no fault is set. Local mode: the ports on 127.0.0.1; containers:
    from inside the compose network (the ports are never published)."""
    if stack_mode() == "local":
        targets = "".join(
            f"127.0.0.1 {os.environ.get(var, '').strip() or default}\n"
            for _, var, default in METRICS_PORTS
        )
        command = [sys.executable, "-c", UNAUTHORISED_PUTS]
    else:
        targets = "".join(f"{name} {port}\n" for name, _, port in METRICS_PORTS)
        command = ["docker", "compose", "exec", "-T", "web", "python", "-c", UNAUTHORISED_PUTS]
    done = subprocess.run(
        command, input=targets, capture_output=True, text=True, timeout=60, check=True,
        cwd=ROOT, env=compose_env(),
    )  # fmt: skip
    answers = [line.split()[1:] for line in done.stdout.splitlines()]
    assert answers == [["401", "403"]] * len(METRICS_PORTS), done.stdout + done.stderr
    _, listed = call(stack, "GET", "/api/faults")
    assert [name for name, *_ in METRICS_PORTS if listed["services"][name]["active"]] == []
