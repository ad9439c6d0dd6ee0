"""Is every backend answering? One real round trip each, concurrently, each bounded.

Used by ``GET /readyz`` and by the dashboard's live feed. A backend is ``up`` when it
answered its protocol's question within ``WEB_HEALTH_TIMEOUT``: tcp-echo and udp-echo
echo ``ping``, the resolver answers ``GET /healthz``, dns answers ``www.polyloop.test``.

Try it: curl -s http://127.0.0.1:8080/readyz
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.web.errors import Problem
from services.web.keys import BACKENDS, CONFIG

PROBE = b"ping"


async def check_backends(app: web.Application) -> dict[str, dict]:
    """``{"tcp-echo": {"state": "up"|"down", "latency_ms": float|None, "error": str|None,
    "replicas": {"count", "up", "replicas": [{"address", "state", ...}]}}, ...}``
    for tcp-echo, udp-echo, resolver and dns, in that order."""
    backends = app[BACKENDS]
    timeout = app[CONFIG].health_timeout
    probes: dict[str, Callable[[], Awaitable[object]]] = {
        "tcp-echo": lambda: backends.echo_tcp(PROBE, timeout),
        "udp-echo": lambda: backends.echo_udp(PROBE, timeout),
        "resolver": lambda: backends.ping_resolver(timeout),
        "dns": lambda: backends.query_dns(timeout),
    }
    results = await asyncio.gather(*(_probe(probe) for probe in probes.values()))
    checks = dict(zip(probes, results, strict=True))
    for name, check in checks.items():
        # every replica the name resolves to, and what the front knows of each
        check["replicas"] = backends.replicas[name].snapshot()
    return checks


async def _probe(probe: Callable[[], Awaitable[object]]) -> dict:
    start = time.perf_counter()
    try:
        await probe()
    except Problem as problem:
        return {"state": "down", "latency_ms": None, "error": problem.detail}
    latency_ms = round((time.perf_counter() - start) * 1000, 2)
    return {"state": "up", "latency_ms": latency_ms, "error": None}
