"""Every service's own metrics, read while real clients talk to it straight (no front).

Needs the running stack (`make up`). Each service's metrics port is read
- in local-process mode on 127.0.0.1 at TCP_ECHO_METRICS_PORT, UDP_ECHO_METRICS_PORT,
  RESOLVER_METRICS_PORT, DNS_METRICS_PORT, WEB_METRICS_PORT (README defaults 9101-9105);
- in containers, where compose never publishes them, from inside the network: one
  long-lived `docker compose exec -T web python` fetches http://<service>:<port>/metrics
  for the test (the in-network ports are fixed, see compose.yaml).
The traffic goes straight to each service's published port, as Locust's protocol users do.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import dns.message
import dns.query
import pytest

from tests.scrape import Samples, names, parse, value
from tests.stack import ROOT, Stack, compose_env, stack_mode, unavailable

N = 20
ATTEMPTS = 5  # a healthcheck (every 3 s in compose) may land in a window: try again
# service -> (its port variable, README default = the in-network port)
METRICS_PORTS = {
    "tcp-echo": ("TCP_ECHO_METRICS_PORT", 9101),
    "udp-echo": ("UDP_ECHO_METRICS_PORT", 9102),
    "resolver": ("RESOLVER_METRICS_PORT", 9103),
    "dns": ("DNS_METRICS_PORT", 9104),
    "web": ("WEB_METRICS_PORT", 9105),
}
# run inside the web container: reads "host port" lines, answers each with one JSON line
IN_NETWORK_READER = """
import json, sys, urllib.request
for line in sys.stdin:
    host, port = line.split()
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as r:
            print(json.dumps({"text": r.read().decode()}), flush=True)
    except OSError as exc:
        print(json.dumps({"error": repr(exc)}), flush=True)
"""


class MetricsReader:
    """The text of a service's /metrics, from the host or from inside the network."""

    def __init__(self, stack: Stack) -> None:
        self.host = stack.host
        self._exec: subprocess.Popen | None = None

    def local_port(self, service: str) -> int:
        variable, default = METRICS_PORTS[service]
        return int(os.environ.get(variable, "").strip() or default)

    def text(self, service: str) -> str:
        if self._exec is None:
            try:
                url = f"http://{self.host}:{self.local_port(service)}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.read().decode()
            except OSError:
                if stack_mode() != "docker":
                    unavailable(f"{service}'s metrics port on {self.host}")
                self._start_exec()
        return self._in_network(service)

    def _start_exec(self) -> None:
        self._exec = subprocess.Popen(
            ["docker", "compose", "exec", "-T", "web", "python", "-u", "-c", IN_NETWORK_READER],
            cwd=ROOT,
            env=compose_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _in_network(self, service: str) -> str:
        assert self._exec is not None and self._exec.stdin and self._exec.stdout
        self._exec.stdin.write(f"{service} {METRICS_PORTS[service][1]}\n")
        self._exec.stdin.flush()
        line = self._exec.stdout.readline()
        assert line, "docker compose exec web ended"
        answer = json.loads(line)
        assert "text" in answer, f"{service}'s metrics port from web: {answer['error']}"
        return answer["text"]

    def samples(self, service: str) -> Samples:
        return parse(self.text(service))

    def close(self) -> None:
        if self._exec is not None:
            self._exec.stdin.close()  # type: ignore[union-attr]
            self._exec.wait(timeout=10)
            self._exec.stdout.close()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def reader(stack: Stack) -> Iterator[MetricsReader]:
    metrics = MetricsReader(stack)
    yield metrics
    metrics.close()


def counts_exactly(
    reader: MetricsReader, service: str, metric: str, n: int, traffic: Callable[[], None]
) -> None:
    """``traffic()`` sends ``n`` units; ``metric`` must grow by exactly ``n``, in at least
    one of a few tries (never less in any: a healthcheck can only add)."""
    deltas = []
    for _ in range(ATTEMPTS):
        before = value(reader.samples(service), metric)
        traffic()
        delta = value(reader.samples(service), metric) - before
        assert delta >= n, f"{service}: {n} sent, {metric} grew by {delta}"
        deltas.append(delta)
        if delta == n:
            return
    pytest.fail(f"{service}: {metric} never grew by exactly {n}: {deltas}")


def test_tcp_echo_counts_each_echo(reader: MetricsReader, stack: Stack) -> None:
    def echoes() -> None:
        with socket.create_connection((stack.host, stack.tcp_echo_port), timeout=5) as client:
            for i in range(N):
                client.sendall(b"metrics %d" % i)
                assert client.recv(100) == b"metrics %d" % i

    counts_exactly(reader, "tcp-echo", "polyloop_requests_total", N, echoes)
    counts_exactly(reader, "tcp-echo", "polyloop_tcp_echo_connections_accepted_total", 1, echoes)


def test_udp_echo_counts_each_datagram(reader: MetricsReader, stack: Stack) -> None:
    def datagrams() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(2)
            for i in range(N):
                client.sendto(b"metrics %d" % i, (stack.host, stack.udp_echo_port))
                assert client.recv(100) == b"metrics %d" % i

    counts_exactly(reader, "udp-echo", "polyloop_requests_total", N, datagrams)


def test_dns_counts_each_query(reader: MetricsReader, stack: Stack) -> None:
    def queries() -> None:
        for i in range(N):
            query = dns.message.make_query(f"host-{i + 1}.polyloop.test", "AAAA")
            dns.query.udp(query, stack.host, port=stack.dns_port, timeout=2)

    counts_exactly(reader, "dns", "polyloop_requests_total", N, queries)


def test_resolver_counts_each_resolve(reader: MetricsReader, stack: Stack) -> None:
    body = json.dumps({"names": ["www.polyloop.test"]}).encode()

    def resolves() -> None:
        for _ in range(N):
            request = urllib.request.Request(f"{stack.resolver_url}/resolve", data=body)
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200

    counts_exactly(reader, "resolver", "polyloop_requests_total", N, resolves)


def test_web_counts_each_request_to_its_demo_routes(reader: MetricsReader, stack: Stack) -> None:
    """What the front serves: its demo routes, whatever the answer (here a 422, so that no
    backend is called); the dashboard's reads and the steady client's pings are not."""

    def requests() -> None:
        for _ in range(N):
            request = urllib.request.Request(f"{stack.web_url}/api/echo/tcp", data=b"{}")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            with refused.value as answer:
                assert answer.code == 422
            with urllib.request.urlopen(f"{stack.web_url}/api/openapi.json", timeout=5) as r:
                assert r.status == 200

    counts_exactly(reader, "web", "polyloop_requests_total", N, requests)


def readme_metrics() -> list[tuple[str, list[str]]]:
    """(metric, services) of every row of the Metrics table (docs/metrics.md)."""
    page = (ROOT / "docs" / "metrics.md").read_text()
    table = page.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| \w+ \| [^|]+ \| ([a-z, -]+) \|", table, re.MULTILINE)
    assert len(rows) >= 15, "the Metrics table of docs/metrics.md was not found"
    return [(name, [s.strip() for s in where.split(",")]) for name, where in rows]


def test_every_metric_in_the_readme_exists_on_its_services(reader: MetricsReader) -> None:
    exposed = {service: names(reader.text(service)) for service in METRICS_PORTS}
    missing = []
    for metric, where in readme_metrics():
        for service in METRICS_PORTS if where == ["all"] else where:
            if metric not in exposed[service] and f"{metric}_count" not in exposed[service]:
                missing.append(f"{metric} on {service}")
    assert missing == []


def test_every_loop_reports_its_lag(reader: MetricsReader) -> None:
    for service in METRICS_PORTS:
        samples = reader.samples(service)
        assert value(samples, "polyloop_event_loop_lag_seconds_count") > 0, service
        assert value(samples, "polyloop_event_loop_blocked_seconds") < 1.0, service
