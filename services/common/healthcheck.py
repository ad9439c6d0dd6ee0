"""The one contract of the five healthchecks (``python -m services.<name>.healthcheck``).

Each service's ``healthcheck.py`` exercises its real protocol (an echo round trip, a DNS
query, ``GET /healthz``) in one function::

    def check(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> str | None:
        '''None when healthy, else the reason it is not.'''

and ends with ``sys.exit(main("tcp-echo", check))``. ``main`` reads the service's port
variable (``TCP_ECHO_PORT``), calls ``check`` on 127.0.0.1 and exits 0 when it returns None;
otherwise it logs ONE JSON line (``"msg": "unhealthy"``, the ``reason``, the ``port``) and
exits 1, as compose and ``devstack`` expect. Runs on PyPy 3.9 too.

A fault must never get a service killed (Swarm and Kubernetes replace a container whose
checks fail): every check waits ``TIMEOUT`` for its answer, longer than the longest block a
fault can put on a loop (``services.common.faults.MAX_BLOCK_MS``, 2 s), and the
orchestrators longer than a check (``timeout: 10s``). Blocks of 2 s every second (start to
start) leave a loop one turn between them, too few to answer a protocol round trip in any
time; so a check that fails asks the service's control port, which answers from a thread
outside the loop, whether a fault is set (``GET /faults``): if one is, the service is
healthy, blocked on purpose and for a bounded time (a fault expires by itself). With no
fault set, the protocol's answer alone decides.

The checks use the standard library alone (sockets, no HTTP client, no Twisted, no
dnspython): each is a process of its own every interval, and those imports cost it up to
ten times the check itself.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

from services.common import settings
from services.common.catalogue import service
from services.common.settings import ConfigError

Check = Callable[[int], "str | None"]

# seconds a check waits for its answer: above MAX_BLOCK_MS (2 s), with room for a busy host
TIMEOUT = 5.0


def main(name: str, check: Check) -> int:
    """Run `check` against 127.0.0.1 on `name`'s port: exit code 0 if healthy, else 1 (logged)."""
    try:
        port = settings.port(service(name)).read()
    except ConfigError as exc:
        return unhealthy(name, {"reason": f"invalid configuration: {exc}"})
    reason = verdict(name, port, check)
    if reason is None:
        return 0
    return unhealthy(name, {"reason": reason, "port": port})


def unhealthy(name: str, fields: dict) -> int:
    """Log the one JSON line of a failed check; 1. The logging is set up here only: a check
    that passes never pays for it (it runs every interval, and that import is a third of it)."""
    import logging

    from services.common.logging import setup_logging

    setup_logging(f"{name}-healthcheck", "WARNING")
    logging.getLogger(f"{service(name).module}.healthcheck").error("unhealthy", extra=fields)
    return 1


def verdict(
    name: str, port: int, check: Check, host: str = "127.0.0.1", control: int | None = None
) -> str | None:
    """``check(port)``; when it fails, None still if a fault is set on ``name`` (its control
    port, ``control`` or ``<SERVICE>_METRICS_PORT``, says so from outside the loop the fault
    blocks)."""
    reason = check(port)
    if reason is None or not fault_set(name, host, control):
        return reason
    return None


def fault_set(
    name: str, host: str = "127.0.0.1", control: int | None = None, timeout: float = 2.0
) -> bool:
    """Whether ``name``'s control port (``control``, by default ``<SERVICE>_METRICS_PORT``)
    reports an active fault; False when it does not answer, or is off (POLYLOOP_METRICS=0:
    then no fault can be set)."""
    try:
        if control is None:
            control = settings.metrics_port(service(name)).read()
        answer = _get(host, control, "/faults", timeout)
    except (ConfigError, OSError, ValueError):
        return False
    return answer is not None and json.loads(answer).get("active") is True


def _get(host: str, port: int, path: str, timeout: float) -> bytes | None:
    """The body of ``GET path`` (HTTP/1.0, read to the server's close) when it answers 200,
    else None; ``OSError`` when it does not answer."""
    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 65536:
                raise ValueError("more than 64 KiB")
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return body if head.split(b" ", 2)[1:2] == [b"200"] else None


def check_healthz(host: str, port: int, timeout: float) -> str | None:
    """``GET http://host:port/healthz`` must answer 200 ``{"status": "ok"}`` within `timeout`
    (the resolver's and the web front's contract); None if it does, else why not.

    HTTP/1.0 over a plain socket: the answer is read to the server's close."""
    url = f"http://{host}:{port}/healthz"
    try:
        body = _get(host, port, "/healthz", timeout)
        if body is None:
            return f"{url} answered another status than 200"
        status = json.loads(body).get("status")
    except (OSError, ValueError, AttributeError) as exc:  # refused, timed out, not JSON
        return f"no answer from {url} within {timeout}s: {exc!r}"
    if status != "ok":
        return f"{url} says status={status!r}"
    return None
