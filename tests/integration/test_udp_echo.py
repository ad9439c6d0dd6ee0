"""udp-echo as it runs in the stack, through real UDP sockets over loopback.

Needs the running udp-echo at stack.host:stack.udp_echo_port (UDP_ECHO_PORT, default
9999): `make up`, or `python -m services.udp_echo` for this service alone. The oversize
test reads the server's cap from UDP_ECHO_MAX_DATAGRAM (default 4096), like the service.
The privileged-source-port guard is tested from 127.0.0.1 with local processes (needs
root to bind a port below 1024), and from inside the compose network in docker mode
(the host's docker-proxy rewrites UDP source ports, so a host-side test would prove
nothing there).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.udp_echo import probe
from services.udp_echo.healthcheck import check as udp_echo_check
from tests.sockets import privileged_udp_socket
from tests.stack import ROOT, Stack, stack_mode, unavailable

MAX_DATAGRAM = int(os.environ.get("UDP_ECHO_MAX_DATAGRAM", "").strip() or "4096")
PROBE_SOURCE = Path(probe.__file__).read_text()
# compose.yaml pins the in-network port; UDP_ECHO_PORT on the host moves only the published one
IN_NETWORK_PORT = 9999


@pytest.fixture(scope="module", autouse=True)
def udp_echo(stack: Stack) -> None:
    if udp_echo_check(stack.udp_echo_port, stack.host) is not None:
        unavailable(f"udp-echo at {stack.host}:{stack.udp_echo_port}/udp")


@contextlib.contextmanager
def connected(stack: Stack, source: tuple[str, int] = ("127.0.0.1", 0)) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(source)
        sock.connect((stack.host, stack.udp_echo_port))
        sock.settimeout(2.0)
        yield sock


def assert_silent(sock: socket.socket, grace: float = 0.3) -> None:
    sock.settimeout(grace)
    with pytest.raises(TimeoutError):
        sock.recv(65535)


def test_many_datagrams_come_back_without_loss(stack: Stack) -> None:
    # a window of outstanding datagrams keeps the rate modest: loopback must lose none
    count, window = 2000, 32
    rng = random.Random(9999)
    expected = {n: b"%06d:" % n + rng.randbytes(rng.randint(0, 512)) for n in range(count)}
    back: dict[int, bytes] = {}
    deadline = time.monotonic() + 60
    with connected(stack) as sock:
        sent = 0
        while len(back) < count:
            while sent < count and sent - len(back) < window:
                sock.send(expected[sent])
                sent += 1
            assert time.monotonic() < deadline, f"{len(back)} of {count} back before deadline"
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                missing = sorted(set(range(sent)) - set(back))
                pytest.fail(f"lost {len(missing)} datagrams, first {missing[:10]}")
            seq = int(reply[:6])
            assert seq not in back, f"datagram {seq} echoed twice"
            back[seq] = reply
    assert back == expected


def test_a_datagram_of_the_maximum_size_is_echoed(stack: Stack) -> None:
    payload = os.urandom(MAX_DATAGRAM)
    with connected(stack) as sock:
        sock.send(payload)
        assert sock.recv(65535) == payload


def test_an_oversize_datagram_gets_no_reply_the_next_one_does(stack: Stack) -> None:
    with connected(stack) as sock:
        sock.send(b"x" * (MAX_DATAGRAM + 1))
        sock.send(b"after the oversize one")
        # served in order: an echo of the oversize datagram would arrive first
        assert sock.recv(65535) == b"after the oversize one"
        assert_silent(sock)


def probe_in_network(source_port: int) -> dict:
    """Run services/udp_echo/probe.py inside the resolver container against udp-echo.

    The probe is piped on stdin (`python -`), so the resolver image needs only Python.
    `tests.stack.compose()` has no `input=`, hence this same `docker compose` call.
    """
    args = ["udp-echo", str(IN_NETWORK_PORT), "--source-port", str(source_port)]
    done = subprocess.run(
        ["docker", "compose", "exec", "-T", "resolver", "python", "-", *args],
        input=PROBE_SOURCE,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"probe failed: {done.stdout} {done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] is None, result
    assert result["sent"] is True, result
    assert result["source_port"] == source_port, result
    return result


def test_no_reply_to_a_privileged_source_port(stack: Stack) -> None:
    """In containers the probe runs inside the compose network (the host's docker-proxy
    rewrites UDP source ports); with local processes it runs from the host."""
    if stack_mode() == "docker":
        # the control first: the same probe from an ordinary port is answered, so a silent
        # privileged probe means the guard, not a broken probe or network
        assert probe_in_network(40999)["replied"] is True
        assert probe_in_network(999)["replied"] is False
        assert probe_in_network(7)["replied"] is False
        return
    with privileged_udp_socket() as guarded, connected(stack) as normal:
        guarded.connect((stack.host, stack.udp_echo_port))
        guarded.send(b"from a system port")
        normal.send(b"from an ephemeral port")
        # served in order: once the later one is echoed, the earlier one was decided
        assert normal.recv(65535) == b"from an ephemeral port"
        assert_silent(guarded)
