"""Sets the ``LOAD_FAULTS`` schedule through the front while a run lasts (issue 11).

On the master (or a local runner), never on a worker: one greenlet waits for each entry's
start, ``PUT /api/faults/{service}`` on the run's host (the front), and at the run's end
``DELETE``s every service it touched (each fault also expires by itself). A bad schedule
stops Locust at init, before any load. See ``_fault_schedule`` for the syntax.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request

import gevent
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtest._fault_schedule import ScheduledFault, parse_schedule

log = logging.getLogger(__name__)

SCHEDULE = parse_schedule(os.environ.get("LOAD_FAULTS", ""))
_state: dict[str, object] = {}


def _call(host: str, method: str, service: str, body: dict | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{host.rstrip('/')}/api/faults/{service}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except OSError as exc:  # HTTPError included: logged, the run goes on
        log.warning("LOAD_FAULTS: %s %s failed: %s", method, service, exc)
        return 0


def _run(host: str, schedule: list[ScheduledFault]) -> None:
    started = time.monotonic()
    for fault in schedule:
        gevent.sleep(max(0.0, started + fault.start - time.monotonic()))
        status = _call(host, "PUT", fault.service, fault.body())
        log.info(
            "LOAD_FAULTS: %s set at %.0f s (%s): %s",
            fault.service,
            fault.start,
            status,
            fault.body(),
        )


@events.test_start.add_listener
def _start(environment: Environment, **_kwargs) -> None:
    if not SCHEDULE or isinstance(environment.runner, WorkerRunner) or not environment.host:
        return
    _state["greenlet"] = gevent.spawn(_run, environment.host, SCHEDULE)


@events.test_stop.add_listener
def _stop(environment: Environment, **_kwargs) -> None:
    greenlet = _state.pop("greenlet", None)
    if greenlet is None:
        return
    greenlet.kill(block=False)
    for service in sorted({fault.service for fault in SCHEDULE}):
        _call(environment.host, "DELETE", service)
