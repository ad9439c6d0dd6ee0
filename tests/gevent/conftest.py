"""gevent tests: their own pytest process, monkey-patched before anything else.

Run from the repo root (the repo's pyproject settings: filterwarnings=error, timeouts)::

    .venv/bin/pytest tests/gevent -p no:cacheprovider

The main test process is never patched: ``tests/gevent`` is in pyproject's norecursedirs.
"""

import os

os.environ.setdefault("GEVENT_RESOLVER", "dnspython")  # as services.resolver.__main__ does

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from io import BytesIO  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import dns.exception  # noqa: E402
import dns.resolver  # noqa: E402
import pytest  # noqa: E402

from services.resolver.api import ResolverApp  # noqa: E402
from services.resolver.request import Limits  # noqa: E402
from services.resolver.resolve import Resolver  # noqa: E402
from services.resolver.server import ResolverServer  # noqa: E402
from tests.stack import METRICS_ON_ANY_PORT, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE = 20.0


def dns_answers(port: int) -> bool:
    probe = dns.resolver.Resolver(configure=False)
    probe.nameservers = ["127.0.0.1"]
    probe.port = port
    try:
        probe.resolve("www.polyloop.test", "A", lifetime=0.5)
    except (dns.exception.DNSException, OSError):
        return False
    return True


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def start(
    module: str, env: dict[str, str | None], log_path: Path, ready: Callable[[], bool], what: str
) -> subprocess.Popen:
    """`python -m module` with its output in `log_path`, polled until `ready()` holds.

    `env` is added to this process's environment; a None value removes the variable."""
    merged = {**os.environ, **METRICS_ON_ANY_PORT, "LISTEN_HOST": "127.0.0.1", **env}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={name: value for name, value in merged.items() if value is not None},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTUP_DEADLINE
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"{what} did not start: {log_path.read_text()}")
        time.sleep(0.1)  # polling interval, not synchronisation
    return process


@pytest.fixture(scope="session")
def dns_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The stack's real dns service (python -m services.dns) on a free port."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("dns") / "dns.log"
    env = {"DNS_PORT": str(port), "LOG_LEVEL": "WARNING"}
    process = start("services.dns", env, log_path, lambda: dns_answers(port), "the dns service")
    try:
        yield port
    finally:
        stop(process)


@pytest.fixture
def resolver(dns_port: int) -> Resolver:
    return Resolver("127.0.0.1", dns_port, backend="dnspython", pool_size=256)


@pytest.fixture
def app(resolver: Resolver) -> ResolverApp:
    return ResolverApp(resolver, Limits(max_names=256, max_timeout=30.0, default_timeout=5.0))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: ResolverApp,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    content_length: int | None = None,
) -> Reply:
    """Call the WSGI app in-process, as a WSGI server would."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body) if content_length is None else content_length),
        "wsgi.input": BytesIO(body),
    }
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        started["status"] = int(status.split()[0])
        started["headers"] = {name.lower(): value for name, value in headers}

    chunks = app(environ, start_response)
    return Reply(started["status"], started["headers"], b"".join(chunks))


def post_resolve(app: ResolverApp, document: Any) -> Reply:
    return call(app, "POST", "/resolve", json.dumps(document).encode())


@pytest.fixture
def server(app: ResolverApp) -> Iterator[str]:
    """The app behind a real gevent.pywsgi server on a free port; yields its base URL."""
    wsgi = ResolverServer(("127.0.0.1", 0), app, max_connections=10, client_timeout=2.0)
    wsgi.start()
    try:
        yield f"http://127.0.0.1:{wsgi.server_port}"
    finally:
        wsgi.stop(timeout=1)
