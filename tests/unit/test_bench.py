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

WITHOUT = "bench/servers/web_without.py"

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


# -- the CPU part (bench/cpu.py) -------------------------------------------------------

WRK_OUT = """Running 1s test @ http://127.0.0.1:27080/api/echo/tcp
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    27.52ms   10.71ms  75.13ms   71.70%
    Req/Sec   580.00     87.51   707.00     70.00%
  5806 requests in 1.01s, 1.44MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   5748.51
Transfer/sec:      1.42MB
"""

DNSPERF_OUT = """Statistics:

  Queries sent:         4627
  Queries completed:    4620 (99.85%)
  Queries lost:         7 (0.15%)

  Run time (s):         1.035093
  Queries per second:   4463.367
"""


def test_parse_stat_counts_fields_after_the_command_name() -> None:
    from bench.cpu import parse_stat

    # a command name may hold spaces and parentheses: fields are counted after the last ")"
    fields = ["S", *["0"] * 10, "250", "50", *["0"] * 30]
    text = "1234 (tricky ) name) " + " ".join(fields)
    assert parse_stat(text, ticks_per_second=100) == 3.0


def test_cpu_seconds_of_this_process_grows_with_work() -> None:
    import os
    import time

    from bench.cpu import cpu_seconds

    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    assert 0.05 <= cpu_seconds(os.getpid()) - before <= 1.0


def test_parse_wrk_reads_the_count_the_rate_and_errors() -> None:
    from bench.cpu import parse_wrk

    result = parse_wrk(WRK_OUT)
    assert (result.requests, result.rate) == (5806, 5748.51)
    assert result.note == "3 non-2xx answers"
    with pytest.raises(RuntimeError, match="no request count"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_parse_dnsperf_reads_completed_queries_and_losses() -> None:
    from bench.cpu import parse_dnsperf

    result = parse_dnsperf(DNSPERF_OUT)
    assert (result.requests, result.rate, result.note) == (4620, 4463.367, "7 lost")


def test_cpu_rows_divide_cpu_by_requests_and_compare_with_their_base() -> None:
    from bench.cpu import CpuPart, Row, Run, goal_lines, section

    healthz = Row("healthz", "web GET /healthz", "web", ("web",), "wrk /healthz")
    healthz.runs = [Run(10_000, 5000.0, {"web": 0.5}), Run(20_000, 6000.0, {"web": 1.2})]
    fanout = Row("fanout", "web POST /api/fanout", "web", ("web", "resolver"), "wrk", "healthz")
    fanout.runs = [Run(1000, 900.0, {"web": 0.21, "resolver": 0.1})]
    resolver = Row("resolver", "resolver", "resolver", ("resolver",), "wrk", base="pywsgi")
    assert healthz.us() == {"web": 55.0}  # median of 50 and 60 µs
    assert healthz.rate == 5500.0
    assert fanout.us() == pytest.approx({"web": 210.0, "resolver": 100.0})
    part = CpuPart([healthz, fanout, resolver], delay_runs=[0.25, 0.31, 0.28], delay_cpu=[0.2])
    goals = goal_lines(part)
    route = "- front POST /api/fanout (tcp + udp + 2 names) web CPU ≤ 1.15x minimal aiohttp"
    assert f"{route}: not measured" in goals
    assert "- resolver CPU/request ≤ 1.3x minimal pywsgi: not measured" in goals
    assert (
        "- resolver 200 x delay-100 concurrent ≤ 0.3 s: 0.280 s, resolver CPU 0.200 s — reached"
        in goals
    )
    text = "\n".join(section(part))
    assert "| web POST /api/fanout | 900 | 0.16x | web 210, resolver 100 | 3.82x | — |  |" in text
    assert "fanout: wrk" in text


def test_front_routes_are_judged_against_the_minimal_aiohttp_program_and_uvloop() -> None:
    from bench.cpu import CpuPart, Row, Run, goal_lines, section

    def row(key: str, main: str, us: float, peer: str = "") -> Row:
        made = Row(key, f"{main} {key}", main, (main,), "wrk", peer=peer)
        made.runs = [Run(1000, 1000.0, {main: us / 1e6 * 1000})]
        return made

    part = CpuPart(
        [
            row("aiohttp-echo-tcp", "aiohttp", 80.0),
            row("echo-tcp", "web", 116.0, peer="aiohttp-echo-tcp"),
            row("uvloop-echo-tcp", "web_uvloop", 80.0, peer="aiohttp-echo-tcp"),
            row("aiohttp-healthz", "aiohttp", 50.0),
            row("healthz", "web", 55.0, peer="aiohttp-healthz"),
        ]
    )
    goals = goal_lines(part)
    assert (
        "- front POST /api/echo/tcp web CPU ≤ 1.15x minimal aiohttp: 1.45x — NOT reached" in goals
    )
    assert "- front GET /healthz web CPU ≤ 1.15x minimal aiohttp: 1.10x — reached" in goals
    text = "\n".join(section(part))
    assert "| POST /api/echo/tcp | 116 | 80 | 1.45x |" in text  # asyncio's µs / uvloop's
    assert "| GET /healthz" not in text  # no uvloop row for it: no line


def test_minimal_pywsgi_program_answers_the_resolvers_shape(tmp_path: Path) -> None:
    import sys

    from bench.stack import post_json

    port = free_port()
    with Servers(tmp_path / "logs") as servers:
        servers.start("pywsgi", [sys.executable, "bench/servers/pywsgi_resolve.py", str(port)])
        servers.wait_until("pywsgi", lambda: tcp_ready(port), timeout=15)
        url = f"http://127.0.0.1:{port}/resolve"
        answer = post_json(url, {"names": ["www.polyloop.test", "nope.polyloop.test"]}, 5)
    assert answer["mode"] == "concurrent"
    www, nope = answer["results"]
    assert www == {
        "name": "www.polyloop.test",
        "addresses": ["192.0.2.10", "2001:db8::10"],
        "error": None,
        "elapsed_ms": 0,
    }
    assert (nope["addresses"], nope["error"]) == ([], "not_found")


def test_minimal_twisted_names_serves_the_zone_file(tmp_path: Path) -> None:
    import sys

    from bench.cpu import dns_answers

    port = free_port()
    with Servers(tmp_path / "logs") as servers:
        servers.start("names", [sys.executable, "bench/servers/twisted_names.py", str(port)])
        servers.wait_until("names", lambda: dns_answers(port), timeout=15)


def test_profile_sums_own_time_by_library() -> None:
    from bench.profile import by_group

    class FakeStats:
        stats = {
            ("/v/site-packages/aiohttp/client_reqrep.py", 1, "send"): (1, 1, 0.3, 0.5, {}),
            ("/v/site-packages/aiohttp/web_protocol.py", 2, "start"): (1, 1, 0.2, 0.9, {}),
            ("/repo/services/dns/delay.py", 3, "delay_of"): (1, 1, 0.1, 0.1, {}),
            ("/v/site-packages/dns/name.py", 4, "from_text"): (1, 1, 0.05, 0.1, {}),
            ("~", 0, "<method 'send' of '_socket.socket' objects>"): (1, 1, 0.25, 0.25, {}),
            ("~", 0, "<built-in method builtins.len>"): (1, 1, 0.1, 0.1, {}),
        }

    groups = dict(by_group(FakeStats()))  # type: ignore[arg-type]
    assert groups == pytest.approx(
        {
            "aiohttp client": 0.3,
            "aiohttp server": 0.2,
            "services (polyloop's own code)": 0.1,
            "dnspython": 0.05,
            "system calls (socket send/recv, epoll)": 0.25,
            "C built-ins (len, isinstance, str methods, ...)": 0.1,
        }
    )
    assert next(iter(by_group(FakeStats()))) == ("aiohttp client", 0.3)  # type: ignore[arg-type]


# -- the regression guard (bench/guard.py) ---------------------------------------------


def _part(web_us: float, minimal_us: float):
    from bench.cpu import CpuPart, Row, Run

    minimal = Row("aiohttp-echo-tcp", "minimal aiohttp", "aiohttp", ("aiohttp",), "wrk")
    minimal.runs = [Run(1000, 1000.0, {"aiohttp": minimal_us / 1000})]
    web = Row("echo-tcp", "web POST /api/echo/tcp", "web", ("web",), "wrk", peer=minimal.key)
    web.runs = [Run(1000, 1000.0, {"web": web_us / 1000})]
    return CpuPart([minimal, web])


def test_guard_flags_a_row_whose_ratio_grew_past_the_threshold(tmp_path: Path) -> None:
    from bench import guard

    kept = guard.path_for(tmp_path, quick=False)
    assert guard.load(kept) is None
    first = guard.snapshot(_part(web_us=120, minimal_us=100), {"date": "day 1"})
    assert guard.flag_lines(guard.compare(first, None), None)[2].startswith("No previous run")
    guard.save(kept, first)
    # the machine got 10 % slower for everything (no flag), then the route alone 30 % dearer
    slower = guard.compare(guard.snapshot(_part(132, 110), {"date": "day 2"}), guard.load(kept))
    assert not any(c.flagged for c in slower)
    dearer = guard.compare(guard.snapshot(_part(156, 100), {"date": "day 3"}), guard.load(kept))
    web = next(c for c in dearer if c.key == "echo-tcp")
    assert web.flagged and web.change == pytest.approx(0.30)
    top = "\n".join(guard.flag_lines(dearer, guard.load(kept)))
    assert "**1 row(s) more than 15% dearer**" in top
    assert "web POST /api/echo/tcp**: 1.20x → 1.56x of aiohttp-echo-tcp (+30%" in top
    table = "\n".join(guard.table(dearer, guard.load(kept)))
    assert "| minimal aiohttp | — | — | — | — | 100 | 100 | +0% |" in table
    assert "| +30% **flagged** |" in table


def test_guard_never_flags_the_yardsticks_themselves(tmp_path: Path) -> None:
    from bench import guard

    before = guard.snapshot(_part(120, 100), {"date": "day 1"})
    changes = guard.compare(guard.snapshot(_part(240, 200), {"date": "day 2"}), before)
    minimal = next(c for c in changes if c.key == "aiohttp-echo-tcp")
    assert minimal.change == pytest.approx(1.0) and not minimal.flagged


def test_report_puts_the_guard_on_top(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    markdown = report.write({}, {"date": "now"}, [], tmp_path, guard_top=["## Regression guard"])
    assert markdown.index("## Regression guard") < 200


# -- the resolver's bursts (bench/burst.py) --------------------------------------------


def test_burst_judges_its_phases() -> None:
    from bench import burst

    assert burst.rcvbuf_errors_in("Udp: InDatagrams RcvbufErrors\nUdp: 10 88\n") == 88
    quiet = burst.Phase("quiet", 0.35, 2, [burst.Request(0.2, 0, 150, 180)] * 2, drops=0)
    loaded = burst.Phase("loaded", 0.5, 2, [burst.Request(0.3, 0, 200, 250)] * 2, drops=3)
    late = burst.Phase("late", 0.5, 2, [burst.Request(5.0, 4, 200, 5000, {"timeout": 4})] * 2)
    assert quiet.reached and not loaded.reached and not late.reached
    text = "\n".join(burst.section([quiet, loaded, late]))
    assert "| quiet | 2/2 ≤ 0.35 s | 0.200 | 0.200 | 0.200 | 0 | 150 / 180 | 0 | — |  |" in text
    assert "- burst, loaded: 2/2 within 0.5 s (≥ 2 wanted), 3 dropped at the dns socket" in text
    assert "- burst, late: 0/2 within 0.5 s (≥ 2 wanted) — NOT reached" in text


def test_front_parts_prices_each_behaviour_against_the_line_above() -> None:
    from bench.cpu import Run
    from bench.front_parts import TAKEN, steps, table
    from bench.servers.web_without import PARTS

    rows = steps()
    assert [r.name for r in rows] == ["shipped", *PARTS, "minimal"]
    assert rows[3].removed == PARTS[:3]  # cumulative: each step takes one more away
    for step, us in zip(rows, (62, 61, 60, 60, 50, 43, 41, 40), strict=True):
        # the median is kept (seconds of CPU for 1000 requests: µs per request)
        step.row("healthz").runs = [
            Run(1000, 1.0, {step.name: u / 1000}) for u in (us + 1, us, us - 1)
        ]

    def cells() -> dict[str, list[str]]:
        lines = [line.split("|")[1:-1] for line in table("healthz", rows)[4:-1]]
        return {line[0].strip(): [cell.strip() for cell in line[1:]] for line in lines}

    assert cells()["the front as shipped"] == ["62.0", "", "1.55x"]
    assert cells()[f"- {TAKEN['work']}"] == ["50.0", "-10.0", "1.25x"]
    assert cells()[f"route's own work → {rows[-1].label}"] == ["40.0", "-1.0", "1.00x"]
    rows[2].rows.clear()  # a step that measured nothing says so; the next compares with the last
    assert cells()[f"- {TAKEN['watch']}"] == ["—", "", ""]
    assert cells()[f"- {TAKEN['guard']}"] == ["60.0", "-1.0", "1.50x"]


def test_web_without_refuses_a_part_it_does_not_know() -> None:
    from bench.servers.web_without import remove

    with pytest.raises(SystemExit, match=r"unknown part.*'metrics'.*known: background, watch"):
        remove(["metrics"])


def test_web_without_takes_the_named_behaviours_away(tmp_path: Path) -> None:
    """The front as shipped beside three fronts with one behaviour taken away each: without
    its watch it has no control port, without the middleware's work no security headers,
    without its serving layer it answers a malformed request as aiohttp does (not as
    problem+json)."""
    import socket
    import sys
    import urllib.request

    from bench.stack import Ports

    env = Ports.free().env()  # backends nobody serves: the fronts only start
    fronts = ("", "watch", "work", "server")
    ports = {name: (free_port(), free_port()) for name in fronts}

    def healthz(name: str) -> dict[str, str] | None:
        try:
            url = f"http://127.0.0.1:{ports[name][0]}/healthz"
            with urllib.request.urlopen(url, timeout=1) as answer:
                return dict(answer.headers)
        except OSError:
            return None

    def malformed(name: str) -> bytes:
        with socket.create_connection(("127.0.0.1", ports[name][0]), timeout=5) as sock:
            sock.sendall(b"POST /api/echo/tcp HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
            return sock.recv(65536).split(b"\r\n\r\n")[0]

    with Servers(tmp_path / "logs") as servers:
        for name in fronts:
            web, control = ports[name]
            own = {**env, "WEB_PORT": str(web), "WEB_METRICS_PORT": str(control)}
            servers.start(name or "shipped", [sys.executable, WITHOUT, name], own)
        for name in fronts:
            servers.wait_until(name or "shipped", lambda name=name: healthz(name), timeout=20)
        secured = {name: "Content-Security-Policy" in healthz(name) for name in fronts}
        problems = {name: b"application/problem+json" in malformed(name) for name in fronts}
        controlled = {name: tcp_ready(ports[name][1]) for name in fronts}
    assert secured == {"": True, "watch": True, "work": False, "server": True}
    assert problems == {"": True, "watch": True, "work": True, "server": False}
    assert controlled == {"": True, "watch": False, "work": True, "server": True}


def test_idle_cpu_measures_its_yardstick_beside_the_stack_and_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bare timer loop runs for the window (its CPU is counted apart from the readers')
    and is gone after it."""
    import os
    import subprocess
    import time

    from bench import idle_cpu

    started: list[int] = []
    real_popen = subprocess.Popen  # idle_cpu's subprocess is this module: patched below

    def popen(*args: object, **kwargs: object) -> subprocess.Popen:
        process = real_popen(*args, **kwargs)
        started.append(process.pid)
        return process

    monkeypatch.setattr(idle_cpu.subprocess, "Popen", popen)
    shares, bare = idle_cpu.with_yardstick({"me": time.process_time}, 1.0, 0.001)
    monkeypatch.undo()
    assert set(shares) == {"me"}
    assert bare > 0  # woken a thousand times a second: CPU in whole clock ticks
    [pid] = started
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
