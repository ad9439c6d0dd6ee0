"""The dns service's UDP receive side: a buffer sized for the resolver's bursts, and the
kernel's own count of what it dropped there (services/dns/receive.py).

Real sockets on 127.0.0.1 and the real ``python -m services.dns``; no stack needed.
Run: .venv/bin/pytest tests/unit/test_dns_receive.py
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import Process, free_port, start, stop
from services.dns import receive

RMEM_MAX = Path("/proc/sys/net/core/rmem_max")
pytestmark = pytest.mark.skipif(not RMEM_MAX.exists(), reason="Linux's /proc needed")


def test_drops_counts_what_a_full_buffer_lost() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        receive.size_buffer(server, 4096)  # room for a few small datagrams only
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert receive.drops(port) == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for _ in range(200):  # never read: most of them cannot fit
                client.sendto(b"q" * 40, ("127.0.0.1", port))
        assert receive.drops(port) > 100
    assert receive.drops(port) is None  # closed: no such socket any more


def test_a_burst_of_512_small_queries_fits_the_default_buffer() -> None:
    # the resolver's largest burst (256 names, A and AAAA), none of it read meanwhile
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        given = receive.size_buffer(server, 1 << 20)
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for _ in range(512):
                client.sendto(b"q" * 40, ("127.0.0.1", port))
        assert receive.drops(port) == 0, f"a {given}-byte buffer dropped part of the burst"


def test_drops_reads_the_kernels_table_for_its_port(tmp_path: Path) -> None:
    def row(local: str, drops: int) -> str:
        return f"  7: {local} 00000000:0000 07 00000000:00000000 00:00000000 0 0 0 1 2 0 {drops}"

    (tmp_path / "udp").write_text(
        "  sl  local_address ... drops\n" + row("0100007F:0035", 24) + "\n" + row("0:1", 9)
    )
    (tmp_path / "udp6").write_text("  sl  local_address ... drops\n")
    assert receive.drops(0x35, tmp_path) == 24
    assert receive.drops(0x36, tmp_path) is None
    assert receive.drops(0x35, tmp_path / "nowhere") is None


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[Process]:
    env = {"LOG_LEVEL": "INFO", "DNS_METRICS_PORT": str(free_port())}
    process = start("dns", env, log=tmp_path / "dns.log")
    try:
        yield process
    finally:
        stop(process)


def test_the_dns_service_sizes_its_buffer_and_reports_its_drops(dns: Process) -> None:
    rmem_max = int(RMEM_MAX.read_text())
    records = [json.loads(line) for line in dns.log_lines()]
    (serving,) = [r for r in records if r["msg"] == "serving polyloop.test"]
    assert serving["udp_receive_buffer"] == 2 * min(1 << 20, rmem_max)
    metrics_port = dns.env["DNS_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
    assert float(samples["polyloop_dns_udp_drops_total"]) == 0
    assert float(samples["polyloop_dns_udp_receive_buffer_bytes"]) == 2 * min(1 << 20, rmem_max)
