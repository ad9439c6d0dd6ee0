"""The front's fault API: what is broken on purpose, for every service and every replica.

- ``GET /api/faults``: each service's active faults and their remaining time, per replica,
  from the once-a-second read of every replica's control port (``services.web.scrape``:
  no request of its own, however many clients ask) and from each change made since; and
  whether faults can be changed at all (``enabled``, ``token``).
- ``PUT /api/faults/{service}`` (a JSON fault spec, see ``services.common.faults``; the
  front's body rules: 413, 408, 400, then 422 naming the field) and ``DELETE
  /api/faults/{service}``, ``service`` in tcp-echo, udp-echo, dns, resolver, web. The front
  resolves the service's name again and passes the change to EVERY replica's control port
  with ``POLYLOOP_ADMIN_TOKEN`` (the network or 127.0.0.1, never a published port),
  concurrently; the answer lists each replica, and a replica that did not take it makes
  the whole answer its problem (502, 503 or 504), naming which replicas did. ``web`` is
  the front itself: applied here, to its own API routes (``own_faults``, awaited by the
  front's middleware), its own
  loop for a block.

Who may: whoever reaches the front, so the API (the front's own faults included) is on by
default only where the front is reachable from loopback alone: its ``LISTEN_HOST``, or in a
container the address compose publishes it on (``WEB_PUBLISHED_HOST``); ``WEB_FAULTS=1``
turns it on anywhere, ``WEB_FAULTS=0`` off (403). A change must also name the front in
``Host`` and come from its own pages (``services.web.origin``).

``apply_fault(app, service, spec)``, ``clear_fault(app, service)`` and
``fault_states(app)`` are the same for the front's own code (the experiments): the same
switch, the same checks, the same answers.

Try it:
  curl -s -X PUT -d '{"latency_ms": 500}' http://127.0.0.1:8080/api/faults/resolver
  curl -s http://127.0.0.1:8080/api/faults
  curl -s -X DELETE http://127.0.0.1:8080/api/faults/resolver
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from services.common import catalogue
from services.common.catalogue import NAMES
from services.common.faults import FaultError, Faults, parse_spec
from services.common.throttle import LogThrottle
from services.web import validation
from services.web.backends import Backend
from services.web.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadBackendReply,
    FaultsOff,
    InjectedFailure,
    InvalidField,
    NotFound,
    Problem,
)
from services.web.keys import CLIENTS, CONFIG, FAULT_SESSION, FAULTS
from services.web.metrics import PING, SERVED_PREFIXES
from services.web.operations import json_answer, operation
from services.web.scrape import SCRAPER, FaultRead, Target, read_at_most

log = logging.getLogger(__name__)

SERVICES = NAMES  # the front itself included: "web" is its own faults
# the front's own routes a fault of "web" applies to: the ones that serve the demo's
# clients, and the steady client's ping that measures them (never /api/faults or
# /api/experiments, so a fault of the front can always be cleared)
FAULTY_PREFIXES = (*SERVED_PREFIXES, PING)
MAX_ANSWER = 65536  # bytes of a control port's /faults answer

# the path parameter of PUT and DELETE, and what changing a service's faults can raise
SERVICE = {"service": {"enum": list(SERVICES)}}
CHANGE_PROBLEMS = (FaultsOff, NotFound, BadBackendReply, BackendUnavailable, BackendTimeout)

FAULT_LOG = web.AppKey("fault_log", LogThrottle)


def setup_faults(app: web.Application, faults: Faults) -> None:
    """The front's own ``faults`` (its loop's hooks set at startup) and the client session."""
    app[FAULTS] = faults
    app.cleanup_ctx.append(_faults_ctx)


async def _faults_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=app[CONFIG].health_timeout)
    app[FAULT_LOG] = LogThrottle(log, app[CONFIG].log_interval)
    # no cookies, no proxies from the environment: only the services' own control ports
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


# ---- for the front's own code (the experiments) and the handlers below


async def apply_fault(app: web.Application, service: str, spec: object) -> dict:
    """Set ``service``'s faults on every replica (replacing what each had); its state.

    Raises ``FaultsOff``, ``NotFound``, ``InvalidField`` (naming the field) or, when a
    replica did not take it, that replica's ``BackendProblem`` with ``replicas``.
    """
    ensure_enabled(app)
    _known(service)
    try:
        parsed = parse_spec(spec, catalogue.service(service).block_kinds)
    except FaultError as exc:
        raise InvalidField(exc.field, exc.message) from None
    if service == "web":
        app[FAULTS].apply(parsed)
        return _own_state(app)
    return await _change(app, service, "PUT", spec)


async def clear_fault(app: web.Application, service: str) -> dict:
    """Clear every fault of ``service`` on every replica; its state (as ``apply_fault``)."""
    ensure_enabled(app)
    _known(service)
    if service == "web":
        app[FAULTS].clear()
        return _own_state(app)
    return await _change(app, service, "DELETE")


def fault_states(app: web.Application) -> dict[str, Any]:
    """What ``GET /api/faults`` answers, from what the front last read or changed (no
    request of its own): ``{"enabled", "token": {"state", "detail"}, "services": {name:
    {"active", "faults", "remaining_s", "replicas": [...]} or {"state": "down", ...}}}``."""
    scraper = app[SCRAPER]
    now = time.monotonic()
    services: dict[str, Any] = {}
    for name in SERVICES:
        reads = scraper.services[name].faults if name in scraper.services else {}
        if name == "web":
            services[name] = _own_state(app)
        else:
            services[name] = _service_state(name, reads, now)
    return {
        "enabled": app[CONFIG].faults_enabled,
        "token": _token(app),
        "services": services,
    }


# ---- the HTTP handlers (routes.py registers them)


@operation(
    "Every service's active faults, per replica, and whether they can be changed",
    {200: json_answer("Each service's faults", "Faults")},
)
async def list_faults(request: web.Request) -> web.Response:
    """Every service's active faults with their remaining time, and whether the API is on
    and the services hold the token."""
    return web.json_response(fault_states(request.app))


@operation(
    "Set a service's faults on every replica (block, latency, fail); they expire alone",
    {200: json_answer("What is active now, per replica", "FaultState")},
    body="FaultSpec",
    problems=(*CHANGE_PROBLEMS, *validation.PROBLEMS),
    parameters=SERVICE,
)
async def put_fault(request: web.Request) -> web.Response:
    """Set ``service``'s faults (replacing what it had); 422 names a bad field."""
    app = request.app
    ensure_enabled(app)
    service = _known(request.match_info["service"])
    body = await validation.json_object(request, app[CONFIG])
    app[FAULT_LOG].log(
        f"requested {service}",
        logging.WARNING,
        "fault requested",
        service=service,
        remote=request.remote,
    )
    return web.json_response(await apply_fault(app, service, body))


@operation(
    "Clear a service's faults on every replica",
    {200: json_answer("Nothing active, per replica", "FaultState")},
    problems=CHANGE_PROBLEMS,
    parameters=SERVICE,
)
async def delete_fault(request: web.Request) -> web.Response:
    """Clear every fault of ``service``."""
    service = _known(request.match_info["service"])
    return web.json_response(await clear_fault(request.app, service))


# ---- how


def ensure_enabled(app: web.Application) -> None:
    """Raise ``FaultsOff`` (403) unless this front may change faults (``WEB_FAULTS``)."""
    if not app[CONFIG].faults_enabled:
        raise FaultsOff(
            "the front is reachable beyond loopback (LISTEN_HOST, WEB_PUBLISHED_HOST): set"
            " WEB_FAULTS=1 to allow fault injection from it"
        )


def _known(service: str) -> str:
    if service not in SERVICES:
        raise NotFound(f"no service {service[:64]!r}; one of {', '.join(SERVICES)}")
    return service


async def _addresses(app: web.Application, service: str) -> list[str]:
    """Every replica of ``service`` now: its name resolved again (a replica that joined a
    second ago gets the change too)."""
    replicas = app[CLIENTS].replicas[Backend(service)]
    await replicas.refresh()
    if not replicas.addresses:
        why = replicas.resolve_error or "no address"
        raise BackendUnavailable(service, f"its name resolves to no replica ({why})")
    return replicas.addresses


async def _change(app: web.Application, service: str, method: str, body: Any = None) -> dict:
    addresses = await _addresses(app, service)
    asked_at = time.monotonic()
    outcomes = await asyncio.gather(
        *(_call(app, service, address, method, body) for address in addresses),
        return_exceptions=True,
    )
    scraped = app[SCRAPER].services[service]
    scraped.follow(addresses)  # the replicas gone since the last read are forgotten now
    failed: list[tuple[str, Problem]] = []
    for address, outcome in zip(addresses, outcomes, strict=True):
        if isinstance(outcome, Problem):
            failed.append((address, outcome))
            scraped.record_faults(address, FaultRead(asked_at, None, outcome.detail))
        elif isinstance(outcome, BaseException):
            raise outcome  # a bug: the middleware's 500
        else:
            scraped.record_faults(address, FaultRead(asked_at, outcome))
    reads = {a: scraped.faults[a] for a in addresses if a in scraped.faults}
    state = _service_state(service, reads, time.monotonic())
    if not failed:
        return state
    # the first failure's problem (its status and type), saying what became of each
    _, problem = failed[0]
    done = len(addresses) - len(failed)
    problem.detail = (
        f"{len(failed)} of {len(addresses)} replicas did not take the change, {done} did;"
        f" {problem.detail}"
    )
    problem.extra["replicas"] = state["replicas"]
    raise problem


async def _call(app: web.Application, service: str, address: str, method: str, body: Any) -> dict:
    """``method`` on one replica's ``/faults`` with the token; its answer, or a Problem."""
    config = app[CONFIG]
    url = Target(*config.control_address(service)).url(address, "/faults")
    headers = {}
    if config.admin_token:
        headers["Authorization"] = f"Bearer {config.admin_token}"
    try:
        async with app[FAULT_SESSION].request(
            method, url, json=body, headers=headers, allow_redirects=False
        ) as response:
            data = await read_at_most(response.content, MAX_ANSWER)
            if len(data) > MAX_ANSWER:
                raise BadBackendReply(service, f"{address}: its /faults answer is too large")
            status = response.status
    except TimeoutError:
        raise BackendTimeout(service, config.health_timeout) from None
    except aiohttp.ClientError as exc:
        raise BackendUnavailable(
            service, f"{address}: its control port does not answer ({exc})"
        ) from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise BadBackendReply(
            service, f"{address}: its /faults answered {status}, not JSON"
        ) from None
    if status in (401, 403):
        # the service refused the front's token: the stack's secret is not shared right
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        raise BadBackendReply(service, f"{address} refused the front's token ({status}): {detail}")
    if status != 200 or not isinstance(answer, dict):
        raise BadBackendReply(service, f"{address}: its /faults answered {status}")
    return answer


def _replica_state(address: str, read: FaultRead, now: float) -> dict[str, Any]:
    if read.answer is None:
        return {"address": address, "state": "down", "detail": read.detail}
    answer = read.answer
    remaining = max(0.0, read.expires_at - now)
    active = bool(answer.get("active")) and remaining > 0
    return {
        "address": address,
        "state": "up",
        "active": active,
        "faults": answer.get("faults", {}) if active else {},
        "remaining_s": round(remaining, 3) if active else 0.0,
        "token": answer.get("token"),
    }


def _service_state(service: str, reads: Mapping[str, FaultRead], now: float) -> dict[str, Any]:
    """A service's faults as its replicas add up: active while one is, the longest
    remaining time; down (with the first reason) when none answered."""
    replicas = [_replica_state(address, read, now) for address, read in reads.items()]
    up = [r for r in replicas if r["state"] == "up"]
    if not up:
        detail = replicas[0]["detail"] if replicas else "not read yet"
        return {"state": "down", "detail": detail, "replicas": replicas}
    active = [r for r in up if r["active"]]
    return {
        "active": bool(active),
        "faults": active[0]["faults"] if active else {},
        "remaining_s": max((r["remaining_s"] for r in active), default=0.0),
        "replicas": replicas,
    }


def _own_state(app: web.Application) -> dict[str, Any]:
    """The front's own faults: it is one replica, read here and now (whether it holds the
    token: from its own control port's last read)."""
    state = app[FAULTS].describe()
    host, _ = app[CONFIG].control_address("web")
    reads = app[SCRAPER].services["web"].faults.values() if SCRAPER in app else ()
    token = next((r.answer.get("token") for r in reads if r.answer), None)
    return {**state, "replicas": [{"address": host, "state": "up", **state, "token": token}]}


def _token(app: web.Application) -> dict[str, str | None]:
    """Whether the front and every replica hold the same token: ``ok``, ``missing`` (the
    front or a service holds none: nothing can be changed), ``mismatch`` (a service holds
    another), ``unknown`` (nothing read yet)."""
    if not app[CONFIG].admin_token:
        return {
            "state": "missing",
            "detail": "the front holds no POLYLOOP_ADMIN_TOKEN: faults cannot be changed"
            " (make up writes one into .env; see docs/faults.md)",
        }
    missing, refused, seen = [], [], False
    for name, scraped in app[SCRAPER].services.items():
        for read in scraped.faults.values():
            said = (read.answer or {}).get("token")  # what the replica said of the token
            seen |= said is not None
            if said == "missing" and name not in missing:
                missing.append(name)
            elif said == "refused" and name not in refused:
                refused.append(name)
    if missing:
        return {
            "state": "missing",
            "detail": f"{', '.join(missing)} hold(s) no POLYLOOP_ADMIN_TOKEN: their faults"
            " cannot be changed (restart them with the stack's token; see docs/faults.md)",
        }
    if refused:
        return {
            "state": "mismatch",
            "detail": f"{', '.join(refused)} hold(s) another POLYLOOP_ADMIN_TOKEN than the"
            " front: their faults cannot be changed (see docs/faults.md)",
        }
    return {"state": "ok" if seen else "unknown", "detail": None}
