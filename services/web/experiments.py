"""One-click experiments: a fault for a fixed time, the live picture each second, a verdict.

An experiment takes one service and runs in three steps, one experiment at a time:

1. *before*: ``WEB_EXPERIMENT_BASELINE`` seconds (default 3) of the stack as it is;
2. *during*: ``WEB_EXPERIMENT_SECONDS`` (default 20) under the experiment's fault, set with
   the fault API's own ``apply_fault`` (same validation, same expiry: the fault is set for
   the run plus a margin, so it ends even if the front dies), or, for ``resolve_contrast``,
   the same slow names resolved concurrently, then sequentially;
3. the fault cleared (``clear_fault``), and a verdict in words computed from what the run
   recorded: the steady client's round trips (``steady.py``), each service's loop lag p99
   and "blocked now" and what it served to others (``scrape.py``), before and during.

Nothing in a verdict is written in advance: every figure is the run's, and every word that
judges a figure is chosen by comparing it with the stall the experiment is made of (its
500 ms, a name's 100 ms): under a fifth of it is "far below", from four fifths up it is
"felt" (``FAR_BELOW``, ``NEAR``). Stopping early
(``DELETE /api/experiments/current``) clears the fault and gives the verdict of what ran;
a service that cannot be reached ends the run ``failed`` with the reason, faults cleared.

Who may: exactly who may use the fault API (``WEB_FAULTS``; 403 when it is off).

The experiments (``EXPERIMENTS``): ``block`` (the loop blocked 500 ms every second by a
sleeping call), ``block_cpu`` (the same by pure-Python work), ``block_sync_dns`` (the
resolver only: a lookup through the un-patched socket module), ``latency`` (every answer
500 ms late), ``fail`` (30 % of the work fails) on any service, and ``resolve_contrast``
(the resolver: 200 names that each answer in 100 ms, concurrently, then one after another).

Try it (docs/experiments.md says more)::

    curl -s -d '{"experiment": "block", "service": "tcp-echo"}' 127.0.0.1:8080/api/experiments
    curl -s 127.0.0.1:8080/api/experiments/current | python -m json.tool
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from services.common.catalogue import NAMES
from services.web import faults, validation
from services.web.errors import ExperimentRunning, FaultsOff, InvalidField, NotFound, Problem
from services.web.keys import CLIENTS, CONFIG
from services.web.live import services_picture
from services.web.operations import json_answer, operation
from services.web.scrape import SCRAPER, Sample, increase, quantile
from services.web.steady import STEADY, summary

log = logging.getLogger(__name__)

BLOCK_MS = 500
LATENCY_MS = 500
FAIL_PERCENT = 30
CONTRAST_NAMES = 200
CONTRAST_DELAY_MS = 100
# the fault is set for the run plus this, so that it ends by itself if the front dies
FAULT_MARGIN_S = 5.0
# each clear of the fault at the end is bounded (the fault expires alone anyway)
CLEAR_TIMEOUT = 3.0
# a figure is judged against the stall the experiment is made of (500 ms, 100 ms): below
# FAR_BELOW of it the loop or the client did not feel it; from NEAR of it up, it did
FAR_BELOW = 0.2
NEAR = 0.8

REQUEST_FIELDS = ("experiment", "service", "duration_s")
# bounds of a run's duration_s (WEB_EXPERIMENT_SECONDS is the default)
MIN_SECONDS, MAX_SECONDS = 2.0, 300.0


@dataclass(frozen=True)
class Experiment:
    """One kind of experiment: what it sets, on which services, what to watch for."""

    id: str
    title: str
    watch_for: str
    services: tuple[str, ...]
    fault: dict[str, Any] | None = None  # the fault spec, or None (resolve_contrast)

    def describe(self, duration_s: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "watch_for": self.watch_for,
            "services": list(self.services),
            "duration_s": duration_s,
        }


def _block(kind: str, how: str, services: tuple[str, ...] = NAMES) -> Experiment:
    return Experiment(
        id="block" if kind == "sleep" else f"block_{kind}",
        title=f"Block the loop {BLOCK_MS} ms every second ({how})",
        watch_for=(
            f"the steady client's round trip to this service jumps to about {BLOCK_MS} ms "
            "while the other services' stay low; its loop lag p99 and 'blocked now' read "
            f"about {BLOCK_MS} ms: everyone on a blocked loop waits"
        ),
        services=services,
        fault={"block_ms": BLOCK_MS, "block_every_second": True, "block_kind": kind},
    )


EXPERIMENTS: dict[str, Experiment] = {
    e.id: e
    for e in (
        _block("sleep", "a sleeping call"),
        _block("cpu", "pure-Python work"),
        _block("sync_dns", "a lookup through the un-patched socket module", ("resolver",)),
        Experiment(
            id="latency",
            title=f"Add {LATENCY_MS} ms to every answer",
            watch_for=(
                f"the steady client's round trip to this service rises by {LATENCY_MS} ms "
                "while its loop lag stays where it was: waiting on a timer costs the loop "
                "nothing, it serves everyone else meanwhile"
            ),
            services=NAMES,
            fault={"latency_ms": LATENCY_MS},
        ),
        Experiment(
            id="fail",
            title=f"Fail {FAIL_PERCENT} % of the work",
            watch_for=(
                f"about {FAIL_PERCENT} % of the steady client's calls to this service fail, "
                "fast, while its loop lag stays where it was"
            ),
            services=NAMES,
            fault={"fail_percent": FAIL_PERCENT},
        ),
        Experiment(
            id="resolve_contrast",
            title=(
                f"{CONTRAST_NAMES} names of {CONTRAST_DELAY_MS} ms each: concurrently, "
                "then one after another"
            ),
            watch_for=(
                f"concurrently the {CONTRAST_NAMES} names take about {CONTRAST_DELAY_MS} ms "
                "in all; one after another they take that long each, and the run's time "
                "runs out first; the gevent hub's loop lag stays low in both: waiting is "
                "not blocking"
            ),
            services=("resolver",),
        ),
    )
}


@dataclass
class Run:
    """One experiment's run, as ``GET /api/experiments/current`` shows it."""

    run: int
    experiment: Experiment
    service: str
    duration_s: float
    baseline_s: float
    started_at: float = field(default_factory=time.time)  # unix seconds
    started: float = field(default_factory=time.monotonic)
    state: str = "running"  # running, done, stopped, failed
    phase: str = "before"  # before, during, after
    verdict: str | None = None
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=lambda: {"before": {}, "during": {}})
    seconds: list[dict[str, Any]] = field(default_factory=list)  # the live picture, each second
    # phase boundaries (monotonic) and each service's last scrape at them
    marks: dict[str, float] = field(default_factory=dict)
    samples: dict[str, dict[str, Sample | None]] = field(default_factory=dict)
    contrast: dict[str, Any] = field(default_factory=dict)

    @property
    def ends_at(self) -> float:
        return self.started_at + self.baseline_s + self.duration_s

    def describe(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "experiment": self.experiment.id,
            "service": self.service,
            "title": self.experiment.title,
            "watch_for": self.experiment.watch_for,
            "state": self.state,
            "phase": self.phase,
            "started_at": round(self.started_at, 3),
            "ends_at": round(self.ends_at, 3),
            "duration_s": self.duration_s,
            "baseline_s": self.baseline_s,
            "verdict": self.verdict,
            "reason": self.reason,
            "figures": self.figures,
        }


class Experiments:
    """The one experiment running (at most), the last one, and the task that runs it."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.current: Run | None = None
        self.last: Run | None = None
        self._task: asyncio.Task[None] | None = None
        self._runs = 0

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.state == "running"

    def start(self, experiment: Experiment, service: str, duration_s: float | None = None) -> Run:
        if self.running:
            assert self.current is not None
            raise ExperimentRunning(
                f"{self.current.experiment.id} on {self.current.service} is running until"
                f" {self.current.ends_at:.0f}; stop it first (DELETE /api/experiments/current)"
            )
        if self._task is not None and not self._task.done():
            raise ExperimentRunning("the last run is still clearing its fault: try again")
        config = self.app[CONFIG]
        self._runs += 1
        run = Run(
            self._runs,
            experiment,
            service,
            duration_s=config.experiment_seconds if duration_s is None else duration_s,
            baseline_s=config.experiment_baseline,
        )
        if self.current is not None:
            self.last = self.current
        self.current = run
        self._task = asyncio.create_task(self._conduct(run), name=f"experiment-{run.run}")
        log.warning(
            "experiment started",
            extra={"experiment": experiment.id, "service": service, "run": run.run},
        )
        return run

    async def stop(self) -> Run:
        """Stop the running experiment now: its fault cleared, its verdict what ran."""
        if not self.running or self._task is None:
            raise NotFound("no experiment is running")
        assert self.current is not None
        run = self.current
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return run

    def finished(self) -> Run | None:
        """The last run that ended (the current one once it has)."""
        if self.current is not None and not self.running:
            return self.current
        return self.last

    async def _conduct(self, run: Run) -> None:
        applied = False
        steady = self.app.get(STEADY)
        if steady is not None:  # measured closely, baseline included
            steady.focus(run.service)
        try:
            self._check_up(run)
            run.marks["start"] = time.monotonic()
            # a read from before the start may miss what ran just before the run (the
            # previous run's last block, its late tick counted after that read)
            await self.app[SCRAPER].read_now(run.baseline_s / 2)
            run.samples["start"] = self._samples()
            await self._record(run, "before", run.started + run.baseline_s)
            run.marks["before_end"] = time.monotonic()
            run.samples["before_end"] = self._samples()
            run.figures["before"] = self._figures(run, "start", "before_end")
            self._check_up(run)
            run.phase = "during"
            if run.experiment.fault is None:
                await self._contrast(run)
            else:
                spec = {**run.experiment.fault, "duration_s": run.duration_s + FAULT_MARGIN_S}
                applied = True  # from here on, whatever happens, it is cleared
                await faults.apply_fault(self.app, run.service, spec)
                await self._record(run, "during", run.marks["before_end"] + run.duration_s)
            self._end_during(run)
            run.state = "done"
        except asyncio.CancelledError:
            run.state = "stopped"
            if run.phase == "during":
                self._end_during(run)
            raise
        except Problem as problem:
            run.state = "failed"
            run.reason = problem.detail
        except Exception as exc:  # a bug: logged, and the run still ends with faults cleared
            log.exception("experiment failed", extra={"run": run.run})
            run.state = "failed"
            run.reason = f"unexpected error: {type(exc).__name__}"
        finally:
            run.phase = "after"
            if steady is not None:
                steady.focus(None)
            # with its state, before any wait: a reader never sees it ended without one
            run.verdict = self._verdict(run)
            if applied:
                await self._clear(run)
            log.warning(
                "experiment ended",
                extra={"run": run.run, "state": run.state, "reason": run.reason},
            )

    def _check_up(self, run: Run) -> None:
        picture = self.app[SCRAPER].series[run.service].picture()
        if picture["state"] != "up":
            raise ExperimentFailed(f"{run.service} is down: {picture['error']}")

    async def _record(self, run: Run, phase: str, until: float) -> None:
        """The live picture once a second until ``until`` (monotonic), on a fixed schedule."""
        next_tick = time.monotonic()
        while True:
            # a fixed schedule; after a stall of this loop (a block of web), the next tick
            next_tick = max(next_tick + 1.0, time.monotonic())
            wait = min(next_tick, until) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._snapshot(run, phase)
            if phase == "during" and run.experiment.fault is not None:
                # the figures so far, so that a client polling the run sees them grow
                run.figures["during"] = self._figures(run, "before_end", None)
            if time.monotonic() >= until:
                return

    def _snapshot(self, run: Run, phase: str) -> None:
        services = services_picture(self.app)
        run.seconds.append(
            {
                "t": round(time.monotonic() - run.started, 1),
                "phase": phase,
                "services": {
                    name: {
                        key: services[name][key]
                        for key in ("state", "rate", "lag_p99_ms", "blocked_ms")
                    }
                    for name in services
                },
            }
        )

    def _samples(self) -> dict[str, Sample | None]:
        series = self.app[SCRAPER].series
        return {name: s.samples[-1] if s.samples else None for name, s in series.items()}

    def _end_during(self, run: Run) -> None:
        if "before_end" not in run.marks:
            return
        run.marks["end"] = time.monotonic()
        run.samples["end"] = self._samples()
        figures = self._figures(run, "before_end", "end")
        figures.update(run.contrast)
        run.figures["during"] = figures

    def _figures(self, run: Run, start: str, end: str | None) -> dict[str, Any]:
        """Each service's figures between two marks (``end`` None: until now)."""
        t0 = run.marks[start]
        t1 = run.marks[end] if end is not None else time.monotonic()
        phase = "before" if start == "start" else "during"
        seconds = [s for s in run.seconds if s["phase"] == phase]
        first = run.samples.get(start, {})
        last = run.samples.get(end, {}) if end is not None else self._samples()
        steady = self.app.get(STEADY)
        services = {}
        for name in self.app[SCRAPER].series:
            calls = summary(steady.calls(name, t0, t1) if steady is not None else [])
            del calls["in_flight_ms"]
            services[name] = {
                **{f"steady_{key}": value for key, value in calls.items()},
                **_scraped(first.get(name), last.get(name)),
                "blocked_max_ms": max(
                    (s["services"][name]["blocked_ms"] for s in seconds), default=None
                ),
                "down_seconds": sum(s["services"][name]["state"] != "up" for s in seconds),
            }
        return {"seconds": round(t1 - t0, 1), "services": services}

    async def _contrast(self, run: Run) -> None:
        """The same slow names concurrently, then sequentially in what is left of the run."""
        config = self.app[CONFIG]
        resolve = self.app[CLIENTS].resolve
        names = [f"x{i}.delay-{CONTRAST_DELAY_MS}.polyloop.test" for i in range(CONTRAST_NAMES)]
        end = run.marks["before_end"] + run.duration_s
        recorder = asyncio.create_task(self._record(run, "during", end))
        try:
            for mode in ("concurrent", "sequential"):
                # the resolver answers at its timeout; the front waits 1 s more for it
                left = end - time.monotonic() - 1.5
                timeout = min(left, config.resolver_max_timeout)
                if timeout <= 0.1:
                    break
                request = {"names": names, "timeout": round(timeout, 3), "mode": mode}
                started = time.monotonic()
                answer = await resolve(request)
                run.contrast[mode] = _contrast_figures(answer, time.monotonic() - started)
            await recorder
        finally:
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder

    async def _clear(self, run: Run) -> None:
        try:
            await asyncio.wait_for(faults.clear_fault(self.app, run.service), CLEAR_TIMEOUT)
        except (Problem, TimeoutError) as exc:
            # it expires by itself FAULT_MARGIN_S after the run's end
            log.warning(
                "experiment's fault not cleared", extra={"run": run.run, "error": repr(exc)}
            )

    def _verdict(self, run: Run) -> str | None:
        if run.state == "failed":
            return f"Failed: {run.reason}."
        before = run.figures["before"].get("services")
        during = run.figures["during"].get("services")
        if not before or not during:
            return None  # stopped before the fault was set
        words = verdict(run.experiment, run.service, run.figures)
        if run.state == "stopped":
            words = f"Stopped after {run.figures['during']['seconds']:g} s. " + words
        return words


class ExperimentFailed(Problem):
    """The experiment cannot run: a service it needs is down."""

    status = 503


def _scraped(first: Sample | None, last: Sample | None) -> dict[str, Any]:
    """Loop lag p99 and the rate served to others between two scrapes of one service."""
    if first is None or last is None or last.at <= first.at:
        return {"lag_p99_ms": None, "rate": None}
    lag = quantile(0.99, first.lag_buckets, last.lag_buckets)
    rate = None
    if first.requests is not None and last.requests is not None:
        rate = round(increase(first.requests, last.requests) / (last.at - first.at), 3)
    return {"lag_p99_ms": None if lag is None else round(lag * 1000, 3), "rate": rate}


def _contrast_figures(answer: dict[str, Any], elapsed: float) -> dict[str, Any]:
    results = answer.get("results") or []
    resolved = [r for r in results if isinstance(r, dict) and r.get("error") is None]
    return {
        "names": len(results),
        "resolved": len(resolved),
        "elapsed_ms": round(elapsed * 1000, 1),
        "resolver_elapsed_ms": answer.get("elapsed_ms"),
    }


# ---- the verdict, in words, from the figures -------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms"


def _lag(before: float | None, during: float | None) -> str:
    return f"{_ms(during)} ({_ms(before)} before)"


def _far_below(value: float | None, stall: float) -> bool:
    return value is not None and value < FAR_BELOW * stall


def _felt(value: float | None, stall: float) -> bool:
    return value is not None and value >= NEAR * stall


def verdict(experiment: Experiment, service: str, figures: dict[str, Any]) -> str:
    """The verdict of a run in words, every figure from ``figures`` (``Run.figures``)."""
    if experiment.fault is None:
        return _contrast_verdict(service, figures)
    fault = experiment.fault
    before = figures["before"]["services"][service]
    during = figures["during"]["services"][service]
    lag = _lag(before["lag_p99_ms"], during["lag_p99_ms"])
    seconds = figures["during"]["seconds"]
    steady_on = bool(during["steady_calls"] or before["steady_calls"])
    parts: list[str] = []
    if fault.get("block_ms"):
        stall = fault["block_ms"]
        parts.append(
            f"{service} blocked {stall} ms every second ({fault['block_kind']}) for {seconds:g} s."
        )
        if steady_on:
            parts.append(
                f"The steady client's worst round trip on {service} was "
                f"{_lag(before['steady_max_ms'], during['steady_max_ms'])}, its median "
                f"{_lag(before['steady_p50_ms'], during['steady_p50_ms'])}."
            )
        parts.append(
            f"{service}'s loop lag p99 was {lag}; 'blocked now' read up to "
            f"{_ms(during['blocked_max_ms'])}."
        )
        parts.append(_throughput(service, before, during))
        if steady_on:
            parts.append(_others(service, figures, stall))
    elif fault.get("latency_ms"):
        stall = fault["latency_ms"]
        parts.append(f"Every answer of {service} {stall} ms late for {seconds:g} s.")
        if steady_on:
            parts.append(
                f"The steady client's median round trip on {service} was "
                f"{_lag(before['steady_p50_ms'], during['steady_p50_ms'])}."
            )
        if _far_below(during["lag_p99_ms"], stall):
            parts.append(
                f"{service}'s loop lag p99 was {lag}, far below the {stall} ms each answer "
                "waited: a slow answer cost the loop nothing, it served the others meanwhile."
            )
        elif _felt(during["lag_p99_ms"], stall):
            parts.append(
                f"{service}'s loop lag p99 was {lag}, as long as the wait itself: something "
                "blocked the loop while the answers waited."
            )
        else:
            parts.append(f"{service}'s loop lag p99 was {lag}.")
    else:
        parts.append(
            f"{fault['fail_percent']:g} % of {service}'s work failed on purpose for {seconds:g} s."
        )
        if steady_on:
            calls = during["steady_calls"]
            share = 100 * during["steady_errors"] / calls if calls else 0.0
            last = f", the last: {during['steady_last_error']}" if during["steady_errors"] else ""
            parts.append(
                f"{during['steady_errors']} of {calls} steady calls failed ({share:.0f} %; "
                f"{before['steady_errors']} of {before['steady_calls']} before){last}."
            )
        parts.append(f"{service}'s loop lag p99 was {lag}.")
    if not steady_on:
        parts.append("The steady client is off (WEB_STEADY=0): no round trip was measured.")
    return " ".join(p for p in parts if p)


def _throughput(service: str, before: dict[str, Any], during: dict[str, Any]) -> str:
    rate_before, rate_during = before["rate"], during["rate"]
    if rate_before is None or rate_during is None:
        return ""
    if rate_before < 1.0:
        return (
            f"Nobody else was calling {service} ({rate_before:.1f} requests/s before): "
            "under load (make load) its throughput would show the block too."
        )
    change = 100 * (rate_during - rate_before) / rate_before
    return (
        f"It served {rate_during:.0f} requests/s to others ({rate_before:.0f} before, "
        f"{change:+.0f} %)."
    )


def _others(service: str, figures: dict[str, Any], stall: float) -> str:
    """The worst round trip on every other service, and what that says."""
    during = figures["during"]["services"]
    others = {
        name: f["steady_max_ms"]
        for name, f in during.items()
        if name != service and f["steady_max_ms"] is not None
    }
    if not others:
        return ""
    name, worst = max(others.items(), key=lambda item: item[1])
    text = f"Meanwhile the worst round trip on the other services was {_ms(worst)} ({name})"
    if _felt(during[service]["steady_max_ms"], stall) and not _felt(worst, stall):
        return text + ": a blocked loop stalls its own clients, nobody else's."
    if _felt(worst, stall):
        return text + f": {name} waited as long ({name} needs {service}, or shares its CPU)."
    return text + "."


def _contrast_verdict(service: str, figures: dict[str, Any]) -> str:
    during = figures["during"]
    concurrent, sequential = during.get("concurrent"), during.get("sequential")
    lag_before = figures["before"]["services"][service]["lag_p99_ms"]
    lag_during = during["services"][service]["lag_p99_ms"]
    parts = []
    if concurrent:
        parts.append(
            f"{concurrent['names']} names of {CONTRAST_DELAY_MS} ms each, asked concurrently: "
            f"{concurrent['resolved']} resolved in {_ms(concurrent['elapsed_ms'])}."
        )
    if sequential:
        per_name = (
            sequential["elapsed_ms"] / sequential["resolved"] if sequential["resolved"] else None
        )
        parts.append(
            f"The same names one after another: {sequential['resolved']} of "
            f"{sequential['names']} resolved in {_ms(sequential['elapsed_ms'])} before the "
            f"run's time ran out, {_ms(per_name)} each."
        )
        if per_name and concurrent and concurrent["resolved"]:
            ratio = per_name / (concurrent["elapsed_ms"] / concurrent["resolved"])
            parts.append(f"Asked concurrently, a name cost {ratio:.0f} times less time.")
    text = f"The gevent hub's loop lag p99 was {_lag(lag_before, lag_during)}"
    if lag_during is not None and lag_during < CONTRAST_DELAY_MS:
        text += (
            f", below the {CONTRAST_DELAY_MS} ms each name waited: waiting is not blocking, "
            "the hub served every name's wait at once"
        )
    parts.append(text + ".")
    return " ".join(parts)


# ---- the HTTP API (registered in routes.py) --------------------------------------------

EXPERIMENTS_KEY = web.AppKey("experiments", Experiments)


def setup_experiments(app: web.Application) -> None:
    app.cleanup_ctx.append(_experiments_ctx)


async def _experiments_ctx(app: web.Application) -> AsyncIterator[None]:
    app[EXPERIMENTS_KEY] = experiments = Experiments(app)
    yield
    if experiments.running:  # the front is stopping: the fault goes with the run
        with contextlib.suppress(NotFound):
            await experiments.stop()


def _available(app: web.Application) -> list[dict[str, Any]]:
    duration = app[CONFIG].experiment_seconds
    return [e.describe(duration) for e in EXPERIMENTS.values()]


def _describe(run: Run | None) -> dict[str, Any] | None:
    return None if run is None else run.describe()


@operation(
    "The experiments: what can run, what runs now, the last verdict",
    {200: json_answer("The experiments", "Experiments")},
)
async def list_experiments(request: web.Request) -> web.Response:
    """What can run (each experiment with its services), the run in progress, the last one."""
    app = request.app
    experiments = app[EXPERIMENTS_KEY]
    return web.json_response(
        {
            "enabled": app[CONFIG].faults_enabled,
            "available": _available(app),
            "current": _describe(experiments.current if experiments.running else None),
            "last": _describe(experiments.finished()),
        }
    )


@operation(
    "Start an experiment on a service (one at a time; it ends by itself)",
    {202: json_answer("Started: poll /api/experiments/current", "Experiment")},
    body="ExperimentRequest",
    problems=(*validation.PROBLEMS, FaultsOff, ExperimentRunning),
)
async def start_experiment(request: web.Request) -> web.Response:
    """``{"experiment": id, "service": name}`` (and ``duration_s``, default
    ``WEB_EXPERIMENT_SECONDS``): 202 with the run; 409 while another runs."""
    app = request.app
    faults.ensure_enabled(app)
    body = await validation.json_object(request, app[CONFIG])
    for key in body:
        if key not in REQUEST_FIELDS:
            raise InvalidField(
                str(key)[:64], f"unknown field; expected {', '.join(REQUEST_FIELDS)}"
            )
    ident = body.get("experiment")
    if not isinstance(ident, str) or ident not in EXPERIMENTS:
        raise InvalidField("experiment", f"expected one of {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[ident]
    service = body.get("service")
    if not isinstance(service, str) or service not in experiment.services:
        raise InvalidField("service", f"{ident} runs on {', '.join(experiment.services)}")
    duration = body.get("duration_s")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not MIN_SECONDS <= duration <= MAX_SECONDS  # also refuses NaN
    ):
        raise InvalidField("duration_s", f"expected {MIN_SECONDS:g}..{MAX_SECONDS:g} seconds")
    run = app[EXPERIMENTS_KEY].start(experiment, service, duration)
    return web.json_response(run.describe(), status=202)


@operation(
    "The experiment running now, else the last one",
    {200: json_answer("The run", "Experiment")},
    problems=(NotFound,),
)
async def current_experiment(request: web.Request) -> web.Response:
    """The run in progress, or (none running) the last one, so a poller sees its verdict."""
    experiments = request.app[EXPERIMENTS_KEY]
    run = experiments.current if experiments.running else experiments.finished()
    if run is None:
        raise NotFound("no experiment has run yet")
    return web.json_response(run.describe())


@operation(
    "Stop the running experiment now (its fault cleared)",
    {200: json_answer("Stopped, with the verdict of what ran", "Experiment")},
    problems=(FaultsOff, NotFound),
)
async def stop_experiment(request: web.Request) -> web.Response:
    """Stop early: the fault is cleared, the verdict covers what ran; 404 when none runs."""
    faults.ensure_enabled(request.app)
    run = await request.app[EXPERIMENTS_KEY].stop()
    return web.json_response(run.describe())
