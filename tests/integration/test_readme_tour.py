"""The README's five-minute tour, run as written against the running stack (`make up`,
containers or local processes; the front's fault API on, as `make up` leaves it on
loopback).

Every command of the tour's ```sh blocks runs with bash from the repo root, in order,
with the README's default ports replaced by the stack's (WEB_PORT, RESOLVER_PORT, ...).
Each must exit 0 and print something that is not an error (a traceback, curl's own error,
a problem+json). Where the tour says to wait ("Once the run is over"), the test polls the
experiment until it has ended, as the reader waits. After the tour, the experiment it
started has run to its end on the resolver, and what the commands printed is what the
front says: the run's verdict, and the culprit of the resolver's last stall.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.catalogue import SERVICES
from tests.stack import ROOT, Stack, call

TOUR = "## A five-minute tour"
WAIT = "Once the run is over"  # the tour's words before the commands that read the verdict
COMMAND_TIMEOUT = 60.0
DEADLINE = 60.0  # for the tour's experiment to end: its baseline, its seconds, a margin
ERRORS = re.compile(r"Traceback|^curl: \(\d+\)|\"status\": [45]\d\d|urn:polyloop:problem", re.M)


def tour_blocks(readme: str) -> list[tuple[str, list[str]]]:
    """(the prose before it, its commands) for each ```sh block of the tour, in order."""
    tour = readme.split(TOUR, 1)[1].split("\n## ", 1)[0]
    blocks = []
    for prose, body in re.findall(r"(.*?)^```sh\n(.*?)^```", tour, re.M | re.S):
        body = body.replace("\\\n", " ")  # a command continued on the next line
        commands = [line for line in body.splitlines() if line.strip() and line[0] != "#"]
        blocks.append((prose, commands))
    return blocks


def with_stack_ports(command: str, stack: Stack) -> str:
    """The README's default ports (127.0.0.1:8080, -p 1053...) replaced by the stack's."""
    ports = {s.port: getattr(stack, f"{s.package}_port") for s in SERVICES}

    def replace(match: re.Match[str]) -> str:
        port = int(match.group(2))
        return f"{match.group(1)}{ports.get(port, port)}"

    command = re.sub(r"(127\.0\.0\.1[: ]|-p )(\d+)\b", replace, command)
    return command.replace("127.0.0.1", stack.host)


def wait_until_no_experiment_runs(stack: Stack) -> dict[str, Any] | None:
    """Poll until no experiment runs (deadline DEADLINE); the last run, if any."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status, current = call(stack, "GET", "/api/experiments/current")
        if status == 404 or current["state"] != "running":
            return current if status == 200 else None
        assert time.monotonic() < deadline, f"the experiment did not end: {current}"
        time.sleep(0.5)


@pytest.fixture
def quiet_front(stack: Stack) -> Iterator[None]:
    """Experiments are on, none runs; whatever runs at the end is stopped."""
    status, listed = call(stack, "GET", "/api/experiments")
    assert status == 200, listed
    if not listed["enabled"]:
        pytest.skip("the front's fault API is off here (POLYLOOP_BIND beyond loopback)")
    wait_until_no_experiment_runs(stack)
    try:
        yield
    finally:
        call(stack, "DELETE", "/api/experiments/current")


def test_the_tour_is_found_and_ported() -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2, "the tour's shell part has gone: this test runs it"
    assert any(WAIT in prose for prose, _ in blocks), f"the tour no longer says {WAIT!r}"
    stack = Stack(web_port=28080, resolver_port=28053, dns_port=28153)
    assert (
        with_stack_ports("curl http://127.0.0.1:8080/x", stack) == "curl http://127.0.0.1:28080/x"
    )
    assert with_stack_ports("dig @127.0.0.1 -p 1053 a", stack) == "dig @127.0.0.1 -p 28153 a"
    assert with_stack_ports("curl 127.0.0.1:8053/resolve", stack) == "curl 127.0.0.1:28053/resolve"


def test_every_command_of_the_readme_tour_works_as_written(stack: Stack, quiet_front: None) -> None:
    printed: dict[str, str] = {}
    for prose, commands in tour_blocks((ROOT / "README.md").read_text()):
        if WAIT in prose:
            wait_until_no_experiment_runs(stack)
        for command in commands:
            ported = with_stack_ports(command, stack)
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", ported],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
            said = f"{ported}\n-> exit {done.returncode}\n{done.stdout}{done.stderr}"
            assert done.returncode == 0, said
            assert done.stdout.strip(), f"printed nothing: {said}"
            assert not ERRORS.search(done.stdout + done.stderr), said
            printed[command] = done.stdout

    run = wait_until_no_experiment_runs(stack)
    assert run is not None, "the tour started no experiment"
    assert (run["experiment"], run["service"], run["state"]) == ("block", "resolver", "done")
    assert run["verdict"] and run["verdict"].startswith("resolver blocked 500 ms every second")
    verdicts = [out for command, out in printed.items() if "/api/experiments/current" in command]
    assert [out.strip() for out in verdicts] == [run["verdict"]]
    status, stalls = call(stack, "GET", "/api/stalls")
    assert status == 200
    culprit = stalls["services"]["resolver"]["events"][-1]["stack"][-1]
    shown = [out for command, out in printed.items() if "/api/stalls" in command]
    assert len(shown) == 1 and shown[0].splitlines()[-1] == culprit
    assert "block_with_sleep" in culprit
