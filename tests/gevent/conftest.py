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
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from io import BytesIO  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from devstack import start, stop  # noqa: E402
from services.resolver.api import ResolverApp  # noqa: E402
from services.resolver.request import Limits  # noqa: E402
from services.resolver.resolve import Resolver  # noqa: E402
from services.resolver.server import ResolverServer  # noqa: E402


@pytest.fixture(scope="session")
def dns_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The stack's real dns service (python -m services.dns) on a free port."""
    log = tmp_path_factory.mktemp("dns") / "dns.log"
    process = start("dns", {"LOG_LEVEL": "WARNING"}, log=log)
    try:
        yield process.port
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
