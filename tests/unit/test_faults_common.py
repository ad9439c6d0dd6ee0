"""The shared fault state (services/common/faults.py) and its /faults route on the control
port (services/common/control.py)."""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.common.control import ControlSettings, check_token, new_registry, serve
from services.common.faults import (
    FaultError,
    Faults,
    FaultSpec,
    LoopHooks,
    block_with_cpu,
    parse_spec,
)
from tests.clock import FakeClock

TOKEN = secrets.token_urlsafe(16)  # a fresh one per run, as make up makes


def test_faults_are_off_and_empty_at_start() -> None:
    faults = Faults()
    assert faults.active is False
    assert faults.current() is None
    assert faults.describe() == {"active": False, "faults": {}, "remaining_s": 0.0}


def test_a_fault_expires_by_itself_with_its_remaining_time_shown() -> None:
    clock = FakeClock()
    faults = Faults(clock=clock)
    faults.apply(FaultSpec(latency_ms=500, fail_percent=10, duration_s=30))
    assert faults.active
    clock.now += 10
    described = faults.describe()
    assert described["active"] is True
    assert described["remaining_s"] == pytest.approx(20)
    assert described["faults"] == {"latency": {"ms": 500}, "fail": {"percent": 10}}
    clock.now += 20
    assert faults.current() is None
    assert faults.active is False  # the hot path's one check is False again


def test_the_default_duration_is_60_seconds() -> None:
    clock = FakeClock()
    faults = Faults(clock=clock)
    faults.apply(parse_spec({"latency_ms": 1}))
    clock.now += 59.9
    assert faults.current() is not None
    clock.now += 0.1
    assert faults.current() is None


def test_clear_and_an_empty_spec_turn_everything_off() -> None:
    faults = Faults()
    faults.apply(FaultSpec(latency_ms=5))
    faults.clear()
    assert not faults.active and faults.current() is None
    faults.apply(FaultSpec(latency_ms=5))
    faults.apply(FaultSpec())
    assert not faults.active


def test_the_failure_ratio_follows_the_random_draw() -> None:
    draws = iter([0.05, 0.2, 0.0999, 0.1])
    faults = Faults(rng=lambda: next(draws))
    spec = FaultSpec(fail_percent=10)
    assert [faults.should_fail(spec) for _ in range(4)] == [True, False, True, False]
    assert faults.failed == 2
    assert not Faults(rng=lambda: 0.0).should_fail(FaultSpec(latency_ms=1))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"block_ms": 2001}, "block_ms"),
        ({"block_ms": -1}, "block_ms"),
        ({"block_ms": 1.5}, "block_ms"),
        ({"latency_ms": 5001}, "latency_ms"),
        ({"latency_ms": "5"}, "latency_ms"),
        ({"fail_percent": 100.1}, "fail_percent"),
        ({"fail_percent": True}, "fail_percent"),
        ({"fail_percent": float("nan")}, "fail_percent"),
        ({"block_ms": float("nan")}, "block_ms"),
        ({"latency_ms": float("inf")}, "latency_ms"),
        ({"block_ms": float("-inf")}, "block_ms"),
        ({"duration_s": float("inf")}, "duration_s"),
        ({"duration_s": 601}, "duration_s"),
        ({"duration_s": 0}, "duration_s"),
        ({"block_every_second": 1}, "block_every_second"),
        ({"latncy_ms": 5}, "latncy_ms"),
        ({"block_ms": 5, "block_kind": "nap"}, "block_kind"),
        ({"block_ms": 5, "block_kind": 1}, "block_kind"),
        ({"block_ms": 5, "block_kind": "sync_dns"}, "block_kind"),  # the resolver's only
        ([1], "body"),
    ],
)
def test_a_bad_value_names_its_field(body: Any, field: str) -> None:
    with pytest.raises(FaultError) as caught:
        parse_spec(body)
    assert caught.value.field == field


def test_the_bounds_themselves_are_accepted() -> None:
    spec = parse_spec(
        {
            "block_ms": 2000,
            "block_every_second": True,
            "latency_ms": 5000,
            "fail_percent": 100,
            "duration_s": 600,
        }
    )
    assert spec == FaultSpec(2000, True, 5000, 100.0, 600.0)


def test_each_service_takes_its_own_block_kinds() -> None:
    assert Faults().kinds == ("sleep", "cpu")
    resolver = Faults(blockers={"sync_dns": lambda seconds: None})
    assert resolver.kinds == ("sleep", "cpu", "sync_dns")
    assert parse_spec({"block_ms": 5, "block_kind": "cpu"}).block_kind == "cpu"
    assert parse_spec({"block_ms": 5}).block_kind == "sleep"
    spec = parse_spec({"block_ms": 5, "block_kind": "sync_dns"}, resolver.kinds)
    assert spec.block_kind == "sync_dns"
    with pytest.raises(FaultError, match="resolver"):
        parse_spec({"block_ms": 5, "block_kind": "sync_dns"})


class ManualLoop:
    """LoopHooks that record what the fault asks of the loop, run by the test."""

    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []
        self.later: list[tuple[float, Callable[[], None]]] = []
        self.slept: list[float] = []
        self.hooks = LoopHooks(self.soon.append, self._later, self.slept.append)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        self.later.append((delay, fn))


def test_a_block_once_sleeps_on_the_loop_once() -> None:
    loop = ManualLoop()
    faults = Faults(loop.hooks)
    faults.apply(FaultSpec(block_ms=500))
    assert loop.slept == []  # nothing from the metrics thread itself
    loop.soon.pop()()
    assert loop.slept == [0.5] and loop.later == []
    assert faults.blocks == 1


def test_a_block_every_second_repeats_until_expiry_or_clear() -> None:
    clock = FakeClock()
    loop = ManualLoop()
    faults = Faults(loop.hooks, clock=clock)
    faults.apply(FaultSpec(block_ms=200, block_every_second=True, duration_s=3))
    loop.soon.pop()()
    for _ in range(2):
        delay, step = loop.later.pop()
        assert delay == 1.0
        clock.now += 1
        step()
    assert loop.slept == [0.2, 0.2, 0.2]
    _, step = loop.later.pop()
    clock.now += 1  # 3 s: expired
    step()
    assert loop.slept == [0.2, 0.2, 0.2] and loop.later == []
    faults.apply(FaultSpec(block_ms=100, block_every_second=True))
    loop.soon.pop()()
    faults.clear()
    loop.later.pop()[1]()
    assert loop.slept[-1] == 0.1 and len(loop.slept) == 4 and loop.later == []


class TimedLoop(ManualLoop):
    """A ManualLoop whose blocking sleep takes the time it says (on the test's clock)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.hooks = LoopHooks(self.soon.append, self._later, self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.now += seconds


def test_every_second_is_one_second_start_to_start_whatever_the_block_lasts() -> None:
    clock = FakeClock()
    loop = TimedLoop(clock)
    faults = Faults(loop.hooks, clock=clock)
    faults.apply(FaultSpec(block_ms=300, block_every_second=True))
    starts = []
    loop.soon.pop()()
    starts.append(clock.now - 0.3)
    delays = []
    for _ in range(3):
        delay, step = loop.later.pop()
        delays.append(round(delay, 3))
        clock.now += delay + 0.01  # the loop runs it a little late
        step()
        starts.append(clock.now - 0.3)
    # the rest of the second, not another second; a late start is not carried over
    assert delays == [0.7, 0.69, 0.69]
    assert [round(b - a, 3) for a, b in itertools.pairwise(starts)] == [1.01, 1.0, 1.0]


def test_a_block_longer_than_the_second_is_followed_at_once() -> None:
    clock = FakeClock()
    loop = TimedLoop(clock)
    faults = Faults(loop.hooks, clock=clock)
    faults.apply(FaultSpec(block_ms=1500, block_every_second=True))
    loop.soon.pop()()
    delay, _ = loop.later.pop()
    assert delay == 0.0


def test_each_block_kind_runs_its_own_function() -> None:
    loop = ManualLoop()
    called: list[float] = []
    faults = Faults(loop.hooks, blockers={"sync_dns": called.append})
    faults.apply(FaultSpec(block_ms=30, block_kind="cpu"))
    started = time.monotonic()
    loop.soon.pop()()
    assert time.monotonic() - started >= 0.03  # it really ran on the "loop" that long
    assert loop.slept == []
    faults.apply(FaultSpec(block_ms=40, block_kind="sync_dns"))
    loop.soon.pop()()
    assert called == [0.04] and loop.slept == []
    faults.apply(FaultSpec(block_ms=50))
    loop.soon.pop()()
    assert loop.slept == [0.05]
    assert faults.describe()["faults"]["block"] == {
        "ms": 50,
        "every_second": False,
        "kind": "sleep",
    }


def test_the_cpu_block_works_until_its_deadline() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.001  # each look at the clock costs a millisecond of "work"
        return now[0]

    rounds = block_with_cpu(0.1, clock)
    assert 95 <= rounds <= 100
    assert now[0] >= 0.1


def test_a_newer_block_replaces_the_repeating_one() -> None:
    loop = ManualLoop()
    faults = Faults(loop.hooks)
    faults.apply(FaultSpec(block_ms=100, block_every_second=True))
    loop.soon.pop()()
    faults.apply(FaultSpec(block_ms=300))
    loop.later.pop()[1]()  # the old repetition: a stale generation, does nothing
    loop.soon.pop()()
    assert loop.slept == [0.1, 0.3]


@pytest.mark.parametrize(
    ("header", "token", "status"),
    [
        (f"Bearer {TOKEN}", TOKEN, None),
        (None, TOKEN, 401),
        ("Basic abc", TOKEN, 401),
        (f"bearer {TOKEN}", TOKEN, None),
        (f"BEARER  {TOKEN} ", TOKEN, None),
        ("Bearer", TOKEN, 401),
        ("Bearer nope", TOKEN, 403),
        (f"Bearer {TOKEN}", None, 403),
    ],
)
def test_the_token_check(header: str | None, token: str | None, status: int | None) -> None:
    assert check_token(header, token) == status


def _serve(faults: Faults, token: str | None) -> Any:
    settings = ControlSettings(admin_token=token)
    return serve(settings, "127.0.0.1", 0, new_registry(), faults=faults)


@pytest.fixture
def served() -> Iterator[tuple[Faults, int]]:
    faults = Faults()
    server = _serve(faults, TOKEN)
    yield faults, server.port
    server.close()


def _call(
    port: int, method: str, body: Any = None, token: str | None = TOKEN, raw: bytes | None = None
) -> tuple[int, dict, str]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{port}/faults", data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), exc.headers["Content-Type"]


def test_put_get_delete_over_the_metrics_port(served: tuple[Faults, int]) -> None:
    faults, port = served
    assert _call(port, "GET", token=None)[1]["active"] is False
    status, body, _ = _call(port, "PUT", {"latency_ms": 250, "duration_s": 30})
    assert status == 200 and body["faults"] == {"latency": {"ms": 250}}
    assert faults.active and faults.current() == FaultSpec(latency_ms=250, duration_s=30)
    status, body, _ = _call(port, "GET", token=None)
    assert body["active"] is True and 0 < body["remaining_s"] <= 30
    status, body, _ = _call(port, "DELETE")
    assert status == 200 and body["active"] is False and not faults.active


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong", 403)])
def test_without_the_right_token_nothing_changes(
    served: tuple[Faults, int], token: str | None, status: int
) -> None:
    faults, port = served
    assert _call(port, "PUT", {"latency_ms": 5}, token=token)[0] == status
    assert not faults.active
    faults.apply(FaultSpec(latency_ms=5))
    assert _call(port, "DELETE", token=token)[0] == status
    assert faults.active


def test_with_no_token_configured_changing_faults_is_refused() -> None:
    faults = Faults()
    server = _serve(faults, None)
    try:
        status, body, kind = _call(server.port, "PUT", {"latency_ms": 5}, token=TOKEN)
        assert status == 403 and "POLYLOOP_ADMIN_TOKEN" in body["detail"]
        assert kind == "application/problem+json"
        assert not faults.active
    finally:
        server.close()


def test_every_refusal_is_a_whole_problem_with_a_type(served: tuple[Faults, int]) -> None:
    """RFC 9457 with ``type`` on each, the field at fault typed as on the front."""
    _, port = served
    answers = {
        401: _call(port, "PUT", {"latency_ms": 5}, token=None),
        403: _call(port, "DELETE", token=TOKEN[::-1]),
        405: _call(port, "POST", {"latency_ms": 5}),
        413: _call(port, "PUT", raw=b"x" * 5000),
        422: _call(port, "PUT", {"fail_percent": 101}),
    }
    for status, (got, body, kind) in answers.items():
        assert (got, body["status"], kind) == (status, status, "application/problem+json")
        assert set(body) >= {"type", "title", "status", "detail"}, body
    assert answers[401][1]["type"] == "about:blank"
    assert answers[401][1]["title"] == "Unauthorized"
    assert answers[422][1]["type"] == "urn:polyloop:problem:invalid-field"
    assert answers[422][1]["field"] == "fail_percent"


def test_a_bad_body_is_a_422_naming_the_field(served: tuple[Faults, int]) -> None:
    faults, port = served
    status, body, kind = _call(port, "PUT", {"block_ms": 5000})
    assert (status, body["field"], kind) == (422, "block_ms", "application/problem+json")
    assert _call(port, "PUT", raw=b"{not json")[1]["field"] == "body"
    assert _call(port, "PUT", raw=b"x" * 5000)[0] == 413
    status, body, _ = _call(port, "PUT", {"block_ms": 5, "block_kind": "sync_dns"})
    assert (status, body["field"]) == (422, "block_kind")
    assert "resolver" in body["detail"]
    assert not faults.active


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"block_ms": NaN}', "block_ms"),
        (b'{"latency_ms": Infinity}', "latency_ms"),
        (b'{"latency_ms": 1e400}', "latency_ms"),
        (b'{"block_ms": -Infinity}', "block_ms"),
        (b'{"block_ms": ' + b"[" * 2000 + b"]" * 2000 + b"}", "body"),
        (b"", "body"),
    ],
)
def test_numbers_json_should_not_hold_are_422s_naming_the_field(
    served: tuple[Faults, int], raw: bytes, field: str
) -> None:
    """What Python's json reads but no fault can be: a 422 naming the field, never a 500.
    An empty body is no way to clear (DELETE is)."""
    faults, port = served
    faults.apply(FaultSpec(latency_ms=5))
    status, body, kind = _call(port, "PUT", raw=raw)
    assert (status, body.get("field"), kind) == (422, field, "application/problem+json")
    assert faults.current() == FaultSpec(latency_ms=5)


def test_a_chunked_put_is_refused_and_changes_nothing(served: tuple[Faults, int]) -> None:
    faults, port = served
    faults.apply(FaultSpec(latency_ms=300))
    body = b'{"latency_ms": 50}'
    request = (
        b"PUT /faults HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.split(b"\r\n")[0].split(b" ")[1] == b"411", answer[:100]
    assert faults.current() == FaultSpec(latency_ms=300)


def test_get_says_whether_the_service_holds_the_token(served: tuple[Faults, int]) -> None:
    _, port = served
    assert _call(port, "GET", token=None)[1]["token"] == "configured"
    assert _call(port, "GET")[1]["token"] == "accepted"
    assert _call(port, "GET", token="wrong")[1]["token"] == "refused"
    faults = Faults()
    server = _serve(faults, None)
    try:
        assert _call(server.port, "GET")[1]["token"] == "missing"
    finally:
        server.close()


def test_a_flood_of_changes_logs_one_line_per_interval(caplog) -> None:
    """A PUT per request at a thousand a second must not cost a log line each: the first
    is written, the rest counted in the next line of that kind."""
    clock = FakeClock()
    faults = Faults(clock=clock)
    with caplog.at_level(logging.WARNING, logger="services.common.faults"):
        for ms in range(1, 401):
            faults.apply(FaultSpec(latency_ms=ms))
            faults.clear()
        clock.now += 60
        faults.apply(FaultSpec(latency_ms=1))
    lines = [r for r in caplog.records if r.name == "services.common.faults"]
    assert [r.message for r in lines] == ["fault set", "faults cleared", "fault set"]
    assert lines[-1].suppressed == 399
