"""Faults against the stack in containers: a backend stopped, paused, crashed, stopped by SIGTERM.

Needs the stack in containers (`make up` with a Docker engine). These tests disturb the
stack, so they run last (see tests/conftest.py) and each one puts it back as it found it:
every service healthy again. Recovery times are printed (`pytest -s`) for the closing note;
the only time bounds asserted are the contract's: a 503 "fast, not hung" (well under the
front's backend timeout) and a SIGTERM stop well within the stop grace period.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.stack import Stack, compose

pytestmark = [pytest.mark.compose, pytest.mark.disruptive]

CORE = {"dns", "tcp-echo", "udp-echo", "resolver", "web"}
BACKEND_TIMEOUT = 5.0  # the front's WEB_BACKEND_TIMEOUT default
STOP_GRACE = 10.0  # compose.yaml stop_grace_period


def call(stack: Stack, method: str, path: str, body: dict | None = None, timeout: float = 15):
    """(status, json body, seconds) of one request to the front."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        stack.web_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, ctype = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, raw, ctype = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(raw or b"null"), time.monotonic() - started, ctype


def poll(condition: Callable[[], bool], deadline: float, what: str, every: float = 0.2) -> float:
    """Seconds until `condition()` holds; fails after `deadline` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    pytest.fail(f"{what}: not within {deadline} s")


def inspect(service: str) -> dict:
    cid = compose("ps", "--all", "--quiet", service).stdout.split()[0]
    out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def all_healthy() -> bool:
    rows = [json.loads(line) for line in compose("ps", "--format", "json").stdout.splitlines()]
    return {row["Service"] for row in rows if row.get("Health") == "healthy"} >= CORE


@pytest.fixture(autouse=True)
def restore_stack(in_containers: str) -> Iterator[None]:
    yield
    paused = compose("ps", "--status", "paused", "--services").stdout.split()
    if paused:
        compose("unpause", *paused)
    stopped = compose("ps", "--all", "--status", "exited", "--services").stdout.split()
    if stopped:
        compose("start", *stopped, timeout=180)
    # not `up --wait`: it gives up at once on a container still marked unhealthy from before
    poll(all_healthy, 120, "every service healthy again", every=0.5)


PARTS = {
    "tcp-echo": ("/api/echo/tcp", {"message": "hello"}),
    "udp-echo": ("/api/echo/udp", {"message": "hello"}),
    "resolver": ("/api/resolve", {"names": ["www.polyloop.test"], "timeout": 2.0}),
}


@pytest.mark.parametrize("backend", sorted(PARTS))
def test_stopped_backend_gives_fast_503_and_recovers_without_restarting_the_front(
    stack: Stack, backend: str
) -> None:
    path, body = PARTS[backend]
    assert call(stack, "POST", path, body)[0] == 200
    web_started = inspect("web")["State"]["StartedAt"]

    compose("stop", backend)
    status, problem, seconds, ctype = call(stack, "POST", path, body)
    assert status == 503, problem
    assert ctype.startswith("application/problem+json")
    assert problem["status"] == 503
    assert seconds < BACKEND_TIMEOUT / 2, f"503 took {seconds:.2f} s: that is a hang, not fast"
    print(f"\n{backend} stopped: 503 in {seconds:.2f} s")

    # the other parts keep working, and readiness names the one that is down
    for other, (other_path, other_body) in PARTS.items():
        if other != backend:
            assert call(stack, "POST", other_path, other_body)[0] == 200, other
    status, ready, _, _ = call(stack, "GET", "/readyz")
    assert status == 503
    assert backend in json.dumps(ready)
    fanout = call(stack, "POST", "/api/fanout", {"message": "hi", "names": ["www.polyloop.test"]})
    assert fanout[0] == 200

    compose("start", backend)
    recovery = poll(lambda: call(stack, "POST", path, body)[0] == 200, 60, f"{backend} recovery")
    print(f"\n{backend}: front recovered {recovery:.1f} s after `docker compose start`")
    assert inspect("web")["State"]["StartedAt"] == web_started, "the front was restarted"
    poll(lambda: call(stack, "GET", "/readyz")[0] == 200, 30, "readyz back to 200")


def test_paused_backend_gives_504_at_the_fronts_timeout(stack: Stack) -> None:
    compose("pause", "tcp-echo")
    status, problem, seconds, _ = call(stack, "POST", "/api/echo/tcp", {"message": "x"})
    assert status == 504, problem
    assert seconds < BACKEND_TIMEOUT + 3
    print(f"\npaused tcp-echo: 504 after {seconds:.2f} s")


def test_a_slow_name_times_out_at_the_front_with_504(stack: Stack) -> None:
    """The resolver is paused: the front stops waiting after the request's timeout."""
    compose("pause", "resolver")
    body = {"names": ["host-1.polyloop.test"], "timeout": 1.0}
    status, problem, seconds, _ = call(stack, "POST", "/api/resolve", body)
    assert status == 504, problem
    assert seconds < BACKEND_TIMEOUT + 3


@pytest.mark.parametrize("service", ["tcp-echo", "udp-echo", "dns", "resolver", "web"])
def test_a_crashed_service_is_restarted_and_unhealthy_until_it_answers(service: str) -> None:
    before = inspect(service)
    restarts = before["RestartCount"]
    # a real crash: SIGKILL from the host (not a `docker stop`, which the restart policy honours)
    subprocess.run(["kill", "-KILL", str(before["State"]["Pid"])], check=True)
    seen: set[str] = set()

    def healthy_again() -> bool:
        state = inspect(service)
        if state["RestartCount"] > restarts:
            seen.add(state["State"]["Health"]["Status"])
            return state["State"]["Health"]["Status"] == "healthy"
        return False

    seconds = poll(healthy_again, 60, f"{service} restarted and healthy", every=0.05)
    assert "starting" in seen or "unhealthy" in seen, f"health went straight to {seen}"
    print(f"\n{service}: restarted and healthy {seconds:.1f} s after SIGKILL")


@pytest.mark.parametrize("service", ["tcp-echo", "udp-echo", "dns", "resolver", "web"])
def test_sigterm_stops_each_service_cleanly_within_the_grace_period(service: str) -> None:
    started = time.monotonic()
    compose("stop", "--timeout", str(int(STOP_GRACE)), service)
    seconds = time.monotonic() - started
    state = inspect(service)["State"]
    print(f"\n{service}: stopped in {seconds:.2f} s, exit code {state['ExitCode']}")
    assert state["ExitCode"] == 0, f"{service} exited {state['ExitCode']} on SIGTERM"
    assert seconds < STOP_GRACE / 2, f"{service} took {seconds:.1f} s to stop"
