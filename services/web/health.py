"""Is every backend answering? One real round trip each, concurrently, each bounded.

Used by ``GET /readyz`` and by the dashboard's live feed. A backend is ``up`` when it
answered its protocol's question within ``WEB_HEALTH_TIMEOUT``: tcp-echo and udp-echo
echo ``ping``, the resolver answers ``GET /healthz``, dns answers ``www.polyloop.test``.

Try it: curl -s http://127.0.0.1:8080/readyz
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from services.web.backends import Backend
from services.web.backends.clients import BackendClients
from services.web.errors import Problem
from services.web.keys import CLIENTS, CONFIG


async def check_backends(app: web.Application) -> dict[Backend, dict]:
    """``{"tcp-echo": {"state": "up"|"down", "latency_ms": float|None, "error": str|None,
    "replicas": {"count", "up", "replicas": [{"address", "state", ...}]}}, ...}``
    for every ``Backend``, in its order. Probes are not traffic: they stay out of the
    live stats (``BackendClients.probe``)."""
    clients = app[CLIENTS]
    timeout = app[CONFIG].health_timeout
    results = await asyncio.gather(*(_probe(clients, backend, timeout) for backend in Backend))
    checks = dict(zip(Backend, results, strict=True))
    for backend, check in checks.items():
        # every replica the name resolves to, and what the front knows of each
        check["replicas"] = clients.replicas[backend].snapshot()
    return checks


async def _probe(clients: BackendClients, backend: Backend, timeout: float) -> dict:
    start = time.perf_counter()
    try:
        await clients.probe(backend, timeout)
    except Problem as problem:
        return {"state": "down", "latency_ms": None, "error": problem.detail}
    latency_ms = round((time.perf_counter() - start) * 1000, 2)
    return {"state": "up", "latency_ms": latency_ms, "error": None}
