"""``LOAD_FAULTS``: a schedule of faults a load run sets through the front while it lasts.

A ``;``-separated list of ``service@start+duration:field=value,field=value``, seconds from
the run's start, e.g.::

    LOAD_FAULTS="resolver@10+20:block_ms=500,block_every_second=true;dns@40+10:fail_percent=30"

``service`` is one of the stack catalogue's (tcp-echo, udp-echo, resolver, dns, web); the
fields are ``PUT /api/faults/{service}``'s, validated here by the same code the services use.

The front is the one ``WebUser`` loads: ``-H/--host`` when given, else ``WEB_HOST``/``WEB_PORT``.
On the master (or a local runner), never on a worker: at Locust's ``init`` a schedule that
cannot run stops Locust with one line saying why (a typo, a front that does not answer, or
its fault API off), before any load; at the test's start one greenlet waits for each entry's
start and ``PUT``s it; at the stop it ``DELETE``s every service it touched (each fault also
expires by itself). Locust and gevent are imported only inside the hooks, so tests import
this module.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from loadtest._targets import TargetError, Targets, front_url
from services.common.catalogue import NAMES
from services.common.faults import MAX_DURATION_S, FaultError, FaultSpec, parse_spec

log = logging.getLogger("loadtest.faults")

SERVICES = NAMES
MAX_ENTRIES = 32  # a schedule longer than this is a mistake, not a test plan
CALL_TIMEOUT = 5.0  # seconds, each call to the front


@dataclass(frozen=True)
class ScheduledFault:
    service: str
    start: float  # seconds after the run's start
    spec: FaultSpec  # its duration_s is the entry's duration

    def body(self) -> dict:
        """The JSON of ``PUT /api/faults/{service}``."""
        spec = self.spec
        return {
            "block_ms": spec.block_ms,
            "block_every_second": spec.block_every_second,
            "latency_ms": spec.latency_ms,
            "fail_percent": spec.fail_percent,
            "duration_s": spec.duration_s,
        }


def parse_schedule(text: str) -> list[ScheduledFault]:
    """The schedule, in start order; ``ValueError`` names the entry and what is wrong."""
    entries = [part.strip() for part in text.split(";") if part.strip()]
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"LOAD_FAULTS: at most {MAX_ENTRIES} entries")
    schedule = [_entry(entry) for entry in entries]
    return sorted(schedule, key=lambda fault: fault.start)


def _entry(entry: str) -> ScheduledFault:
    head, _, fields = entry.partition(":")
    service, _, when = head.partition("@")
    start_text, _, duration_text = when.partition("+")
    service = service.strip()
    if service not in SERVICES:
        raise ValueError(f"LOAD_FAULTS {entry!r}: service must be one of {', '.join(SERVICES)}")
    try:
        start = float(start_text)
        duration = float(duration_text)
    except ValueError:
        raise ValueError(f"LOAD_FAULTS {entry!r}: expected service@start+duration:...") from None
    if not 0 <= start <= 86400 or not 1 <= duration <= MAX_DURATION_S:
        raise ValueError(f"LOAD_FAULTS {entry!r}: start 0..86400 s, duration 1..600 s")
    data: dict[str, object] = {"duration_s": duration}
    for pair in filter(None, (p.strip() for p in fields.split(","))):
        name, _, value = pair.partition("=")
        data[name.strip()] = _value(value.strip())
    try:
        spec = parse_spec(data)
    except FaultError as exc:
        raise ValueError(f"LOAD_FAULTS {entry!r}: {exc}") from None
    if spec.empty:
        raise ValueError(f"LOAD_FAULTS {entry!r}: no fault (block_ms, latency_ms, fail_percent)")
    return ScheduledFault(service, start, spec)


def _value(text: str) -> object:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # parse_spec names the field that wanted a number


class ScheduleError(ValueError):
    """The schedule cannot run: the message is the one line Locust stops with."""


def _call(front: str, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
    """``method`` on the front's ``path``: its status and decoded JSON (None if not JSON)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{front}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as response:
            status, raw = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        with exc:  # its socket, closed here
            status, raw = exc.code, exc.read(65536)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def check_front(front: str) -> None:
    """Raise ``ScheduleError`` unless the front at ``front`` answers with its fault API on."""
    try:
        status, answer = _call(front, "GET", "/api/faults")
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise ScheduleError(
            f"LOAD_FAULTS: the front at {front} does not answer GET /api/faults ({reason});"
            " start the stack (make up) or point WEB_HOST/WEB_PORT or --host at it"
        ) from None
    if status != 200 or not isinstance(answer, dict):
        raise ScheduleError(f"LOAD_FAULTS: GET {front}/api/faults answered {status}, not the API")
    if not answer.get("enabled"):
        raise ScheduleError(
            f"LOAD_FAULTS: fault injection is off at {front} (WEB_FAULTS; see GET /api/faults)"
        )


class Runner:
    """One run's schedule against one front: armed at init, started and stopped with the test."""

    def __init__(self, schedule: list[ScheduledFault], targets: Targets) -> None:
        self.schedule = schedule
        self.targets = targets
        self.greenlet: Any = None
        self.front = ""

    def arm(self, environment: Any) -> bool:
        """Check at init that the schedule can run; False when there is nothing to run here."""
        from locust.runners import WorkerRunner

        if not self.schedule or isinstance(environment.runner, WorkerRunner):
            return False
        try:
            front = front_url(environment.host, self.targets)
        except TargetError as exc:
            raise ScheduleError(f"LOAD_FAULTS: {exc}") from None
        check_front(front)
        log.info("LOAD_FAULTS: %d fault(s) to set through %s", len(self.schedule), front)
        return True

    def start(self, environment: Any, **_kwargs: Any) -> None:
        import gevent

        # the host may have changed since init (the web UI's host field)
        self.front = front_url(environment.host, self.targets)
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        import gevent

        started = time.monotonic()
        for fault in self.schedule:
            gevent.sleep(max(0.0, started + fault.start - time.monotonic()))
            status = self._put(fault)
            log.info(
                "LOAD_FAULTS: %s set at %.0f s (%s): %s",
                fault.service,
                fault.start,
                status,
                fault.body(),
            )

    def _put(self, fault: ScheduledFault) -> int:
        try:
            status, answer = _call(self.front, "PUT", f"/api/faults/{fault.service}", fault.body())
        except OSError as exc:  # logged, the run goes on
            log.warning("LOAD_FAULTS: PUT %s failed: %s", fault.service, exc)
            return 0
        if status != 200:
            log.warning("LOAD_FAULTS: PUT %s answered %s: %.300s", fault.service, status, answer)
        return status

    def stop(self, environment: Any, **_kwargs: Any) -> None:
        greenlet, self.greenlet = self.greenlet, None
        if greenlet is None:
            return
        greenlet.kill(block=False)
        for service in sorted({fault.service for fault in self.schedule}):
            try:
                _call(self.front, "DELETE", f"/api/faults/{service}")
            except OSError as exc:
                log.warning("LOAD_FAULTS: DELETE %s failed: %s", service, exc)


def arm(environment: Any, targets: Targets, text: str | None = None) -> None:
    """Locust's ``init`` event: parse ``LOAD_FAULTS`` and check that it can run, else stop
    Locust with one line; when it can, hook its runner to the test's start and stop."""
    text = os.environ.get("LOAD_FAULTS", "") if text is None else text
    try:
        runner = Runner(parse_schedule(text), targets)
        armed = runner.arm(environment)
    except ValueError as exc:  # ScheduleError included
        raise SystemExit(str(exc)) from None
    if armed:
        environment.events.test_start.add_listener(runner.start)
        environment.events.test_stop.add_listener(runner.stop)
