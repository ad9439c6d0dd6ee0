"""The front's fault API: what is broken on purpose, for every service.

- ``GET /api/faults``: each service's active faults and their remaining time (read from
  each service's own ``GET /faults`` on its metrics port, concurrently, bounded by
  ``WEB_HEALTH_TIMEOUT``; a service that does not answer is shown as ``"down"``).
- ``PUT /api/faults/{service}`` (a JSON fault spec, see ``services.common.faults``) and
  ``DELETE /api/faults/{service}``, ``service`` in tcp-echo, udp-echo, dns, resolver, web.
  The front validates (422 naming the field), then passes the spec to the service's
  metrics port with ``POLYLOOP_ADMIN_TOKEN`` (the compose network or 127.0.0.1, never a
  published port). ``web`` is the front itself: applied here, to its own API routes
  (``own_faults``, awaited by the front's middleware), its own loop for a block.

Who may: whoever reaches the front, so the API is off (403) when the front is published
beyond loopback (``POLYLOOP_BIND`` other than 127.0.0.1) unless ``WEB_FAULTS=1``; and
``WEB_FAULTS=0`` turns it off anywhere. ``GET /api/faults`` says which (``enabled``).

Try it:
  curl -s -X PUT -d '{"latency_ms": 500}' http://127.0.0.1:8080/api/faults/resolver
  curl -s http://127.0.0.1:8080/api/faults
  curl -s -X DELETE http://127.0.0.1:8080/api/faults/resolver
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from services.common import catalogue
from services.common.catalogue import NAMES
from services.common.faults import FaultError, Faults, parse_spec
from services.web.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadBackendReply,
    BodyTooLarge,
    FaultsOff,
    InjectedFailure,
    InvalidField,
    NotFound,
    Problem,
)
from services.web.keys import CONFIG, FAULT_SESSION, FAULTS
from services.web.metrics import PING, SERVED_PREFIXES
from services.web.operations import json_answer, operation
from services.web.scrape import control_url

log = logging.getLogger(__name__)

SERVICES = NAMES  # the front itself included: "web" is its own faults
# the front's own routes a fault of "web" applies to: the ones that serve the demo's
# clients, and the steady client's ping that measures them (never /api/faults or
# /api/experiments, so a fault of the front can always be cleared)
FAULTY_PREFIXES = (*SERVED_PREFIXES, PING)

# the path parameter of PUT and DELETE, and what changing a service's faults can raise
SERVICE = {"service": {"enum": list(SERVICES)}}
CHANGE_PROBLEMS = (FaultsOff, NotFound, BadBackendReply, BackendUnavailable, BackendTimeout)


def setup_faults(app: web.Application, faults: Faults) -> None:
    """The front's own ``faults`` (its loop's hooks set at startup) and the client session."""
    app[FAULTS] = faults
    app.cleanup_ctx.append(_faults_ctx)


async def _faults_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=app[CONFIG].health_timeout)
    # no cookies, no proxies from the environment: only the services' own metrics ports
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
        app[FAULT_SESSION] = session
        yield
    app[FAULTS].clear()


async def own_faults(request: web.Request, faults: Faults) -> None:
    """The front's own faults on its client-facing API routes (the front's middleware awaits
    this only while ``faults.active``): fail at once, or wait their latency."""
    if request.path.startswith(FAULTY_PREFIXES):
        spec = faults.current()
        if spec is not None and faults.should_fail(spec):
            raise InjectedFailure("web: failed on purpose (a fail-X % fault of the front)")
        if spec is not None and spec.latency_ms:
            await asyncio.sleep(spec.latency_s)  # this request waits; the loop serves others


def ensure_enabled(app: web.Application) -> None:
    """Raise ``FaultsOff`` (403) unless this front may change faults (``WEB_FAULTS``)."""
    if not app[CONFIG].faults_enabled:
        raise FaultsOff(
            "the front is published beyond loopback (POLYLOOP_BIND): set WEB_FAULTS=1 to allow"
            " fault injection from it"
        )


def _service(request: web.Request) -> str:
    service = request.match_info["service"]
    if service not in SERVICES:
        raise NotFound(f"no service {service[:64]!r}; one of {', '.join(SERVICES)}")
    return service


async def _call(app: web.Application, service: str, method: str, body: Any = None) -> dict:
    """``method`` on ``service``'s ``/faults`` with the token; its answer, or a Problem."""
    config = app[CONFIG]
    url = control_url(config, service, "/faults")
    headers = {}
    if method != "GET" and config.metrics.admin_token:
        headers["Authorization"] = f"Bearer {config.metrics.admin_token}"
    try:
        async with app[FAULT_SESSION].request(
            method, url, json=body, headers=headers, allow_redirects=False
        ) as response:
            data = await response.read()
            if len(data) > 65536:
                raise BadBackendReply(service, "its /faults answer is too large")
            status = response.status
    except TimeoutError:
        raise BackendTimeout(service, config.health_timeout) from None
    except aiohttp.ClientError as exc:
        raise BackendUnavailable(service, f"its metrics port does not answer ({exc})") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise BadBackendReply(service, f"its /faults answered {status}, not JSON") from None
    if status in (401, 403):
        # the service refused the front's token: the stack's secret is not shared right
        raise BadBackendReply(service, f"refused the front's token ({status}): {answer}")
    if status != 200 or not isinstance(answer, dict):
        raise BadBackendReply(service, f"its /faults answered {status}")
    return answer


async def _describe(app: web.Application, service: str) -> dict[str, Any]:
    if service == "web":
        return app[FAULTS].describe()
    try:
        return await _call(app, service, "GET")
    except Problem as problem:
        return {"state": "down", "detail": problem.detail}


@operation(
    "Every service's active faults with their remaining time",
    {200: json_answer("Each service's faults", "Faults")},
)
async def list_faults(request: web.Request) -> web.Response:
    """Every service's active faults with their remaining time, and whether the API is on."""
    app = request.app
    described = await asyncio.gather(*(_describe(app, service) for service in SERVICES))
    body = {
        "enabled": app[CONFIG].faults_enabled,
        "services": dict(zip(SERVICES, described, strict=True)),
    }
    return web.json_response(body)


@operation(
    "Set a service's faults (block, latency, fail); they expire alone",
    {200: json_answer("What is active now", "FaultState")},
    body="FaultSpec",
    problems=(*CHANGE_PROBLEMS, InvalidField, BodyTooLarge),
    parameters=SERVICE,
)
async def set_fault(request: web.Request) -> web.Response:
    """Set ``service``'s faults (replacing what it had); 422 names a bad field."""
    ensure_enabled(request.app)
    service = _service(request)
    try:
        data = await request.json()  # over WEB_MAX_BODY: aiohttp's 413 (as BodyTooLarge)
    except ValueError:
        raise InvalidField("body", "not valid JSON") from None
    log.warning("fault requested", extra={"service": service, "remote": request.remote})
    return web.json_response(await apply_fault(request.app, service, data))


@operation(
    "Clear a service's faults",
    {200: json_answer("Nothing active", "FaultState")},
    problems=CHANGE_PROBLEMS,
    parameters=SERVICE,
)
async def delete_fault(request: web.Request) -> web.Response:
    """Clear every fault of ``service``."""
    ensure_enabled(request.app)
    return web.json_response(await clear_fault(request.app, _service(request)))


async def apply_fault(app: web.Application, service: str, spec: object) -> dict[str, Any]:
    """Set ``service``'s faults to ``spec`` (a fault spec as decoded JSON), as
    ``PUT /api/faults/{service}`` does: validated (``InvalidField`` naming the field), then
    applied to the front's own or passed to the service's control port with the token.
    What is active now; a Problem when the service cannot be reached. The caller checks
    who may (``ensure_enabled``)."""
    try:
        parsed = parse_spec(spec, catalogue.service(service).block_kinds)
    except FaultError as exc:
        raise InvalidField(exc.field, exc.message) from None
    if service == "web":
        app[FAULTS].apply(parsed)
        return app[FAULTS].describe()
    return await _call(app, service, "PUT", spec)


async def clear_fault(app: web.Application, service: str) -> dict[str, Any]:
    """Clear every fault of ``service``; what is active now (nothing), or a Problem."""
    if service == "web":
        app[FAULTS].clear()
        return app[FAULTS].describe()
    return await _call(app, service, "DELETE")
