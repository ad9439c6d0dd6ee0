"""Smoke tests of the bench harness pieces (``python -m bench``), no stack needed.

The C client and server are compiled with gcc into a temporary directory and the client
measures the server for one second over TCP and UDP on 127.0.0.1. Run with:
    .venv/bin/pytest tests/unit/test_bench.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import build, report
from bench.echo import Cell, run_client
from bench.loadtools import query_file
from bench.procs import Servers, free_port, tcp_ready, udp_echo_ready

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build.compile_c(tmp_path_factory.mktemp("bench"))


@pytest.fixture
def c_server(binaries: tuple[Path, Path], tmp_path: Path):
    port = free_port()
    with Servers(tmp_path / "logs") as servers:
        proc = servers.start("c", [str(binaries[1]), str(port)])
        servers.wait_until("c", lambda: tcp_ready(port) and udp_echo_ready(port), timeout=10)
        yield port
    assert proc.poll() is not None, "the Servers block must stop what it started"


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_c_client_measures_the_c_server(binaries, c_server: int, udp: bool) -> None:
    result = run_client(binaries[0], c_server, conns=4, duration=1.0, warmup=0.1, udp=udp)
    assert result["mode"] == ("udp" if udp else "tcp")
    assert result["errors"] == 0
    assert result["roundtrips"] > 100
    assert 0.9 <= result["seconds"] <= 2.0


def test_client_fails_loudly_without_a_server(binaries) -> None:
    with pytest.raises(RuntimeError, match="echo_client failed"):
        run_client(binaries[0], free_port(), conns=1, duration=0.2, warmup=0.0)


def test_query_file_is_a_fixed_mix_of_the_zone(tmp_path: Path) -> None:
    lines = query_file(tmp_path / "q.txt").read_text().splitlines()
    assert lines == query_file(tmp_path / "again.txt").read_text().splitlines()
    names = {line.split()[0] for line in lines}
    assert all(name.endswith(".polyloop.test") for name in names)
    assert {line.split()[1] for line in lines} == {"A", "AAAA"}
    assert "www.polyloop.test" in names
    assert any(name.startswith("missing-") for name in names)


def test_report_has_ratios_goals_and_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    tcp = [
        Cell("tcp", key, key, n, runs=[rate * n, rate * n * 1.1, rate * n * 0.9])
        for key, rate in (("shipped", 96.0), ("book", 100.0), ("c", 400.0))
        for n in (1, 10)
    ]
    resolver = [Cell("resolver", "dnspython-concurrent", "concurrent", 200, runs=[0.2])]
    markdown = report.write({"tcp": tcp, "resolver": resolver}, {"date": "now"}, [], tmp_path)
    assert "| shipped | 96.00 | 0.96x | 0.24x |" in markdown
    assert "tcp-echo ≥ 0.95x book echo at 10 conn: 0.96x — reached" in markdown
    assert "concurrent < 0.5 s: 0.200 s — reached" in markdown
    assert (tmp_path / "report.md").read_text() == markdown
    assert (tmp_path / "echo.png").read_bytes()[:4] == b"\x89PNG"


def test_pypy_warmup_crossing_reads_when_pypy_beats_cpython() -> None:
    from bench.pypy import crossing

    series = {
        "cpython": {"ready_after": 0.3, "rates": [100.0] * 8, "ends": [0.8 + i for i in range(8)]},
        "pypy": {
            "ready_after": 0.6,
            "rates": [50.0, 90.0, 150.0, 200.0, 200.0, 200.0, 200.0, 200.0],
            "ends": [1.0 + i for i in range(8)],
        },
    }
    text = crossing(series, "rt/s")
    assert "beats CPython from window 3 (by 3.0 s, about 145 requests served)" in text
    assert "plateau by 4.0 s" in text
    assert crossing({"cpython": series["cpython"]}, "rt/s") == "not measured"
