"""Every replica's own ``/metrics`` and ``/faults``, read once a second: the picture behind
``GET /api/live`` and ``GET /api/faults``.

Each service (tcp-echo, udp-echo, resolver, dns and this front itself) serves Prometheus
text and its faults on its control port, from a thread outside its event loop. A service
may run several replicas (compose ``--scale``, Swarm, Kubernetes): its name then resolves
to each, and the front reads EVERY replica, each bounded by ``WEB_SCRAPE_TIMEOUT``, all
concurrently (the addresses are the ones the front's replica sets hold,
``backends/replicas.py``; the front itself is one). Each call carries the stack's token, so
the control port serves it in the slots kept for the front (``services.common.control``)
whatever outsiders do. prometheus-client's own parser reads the text; the last few scrapes
per replica give:

- ``rate``: ``polyloop_requests_total``'s increase per second between the last two scrapes
  (a counter that went down means the service restarted: its new value is the increase);
- ``lag_p99_ms``: the 99th percentile of ``polyloop_event_loop_lag_seconds`` over the last
  ``LAG_WINDOW`` scrapes, from the histogram's bucket deltas (``histogram_quantile``'s linear
  interpolation), ``None`` when the loop ticked not once in that window;
- ``blocked_ms``: ``polyloop_event_loop_blocked_max_seconds``: the longest the loop went
  without its timer in the last 2 s, or the stall in progress if longer. The window covers
  more than the scrape's second, so a 500 ms block every second reads about 500 ms
  whatever the phase of the read, and another reader (Prometheus) takes nothing from it;
- ``stalls``: where the loop blocked, from its ``GET /stalls`` (``compact_stalls``: the
  threshold, the stall in progress and the last ``LIVE_EVENTS`` stalls, each stack cut to
  its innermost ``LIVE_FRAMES`` frames); read again only when the service's
  ``polyloop_event_loop_stalls_total`` differs from the stalls its last ``/stalls``
  accounted for, or a stall is in progress, so an idle stack costs no request beyond the
  scrape;
- ``state``: ``down`` (with ``error``) when the last scrape failed, else ``up``;

and a service's picture adds its replicas up: the rates and the CPU are summed, the lag
p99 and "blocked" are the worst replica's (its ``stalls`` those of that replica), the
``metrics`` summed; it is ``up`` while one replica is, and ``replicas`` lists each one's
own. Each replica's ``GET /faults`` answer is kept too (``FaultRead``), for ``GET
/api/faults`` (``services.web.faults``).

``Scraper.stalls()`` reads every service's whole ``GET /stalls`` now (``GET /api/stalls``;
of a service with several replicas, its first).

Try it: curl -s http://127.0.0.1:8080/api/live | python -m json.tool
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from services.common.catalogue import NAMES
from services.web.backends import Backend
from services.web.backends.replicas import url_host
from services.web.config import WebConfig
from services.web.keys import CLIENTS, CONFIG

REQUESTS = "polyloop_requests_total"
LAG = "polyloop_event_loop_lag_seconds"
BLOCKED = "polyloop_event_loop_blocked_max_seconds"
BLOCKED_NOW = "polyloop_event_loop_blocked_seconds"
STALLS = "polyloop_event_loop_stalls_total"
CPU = "process_cpu_seconds_total"
SCRAPE_EVERY = 1.0
LAG_WINDOW = 5  # scrapes: the p99 is over the last five seconds
MAX_BYTES = 1 << 20  # a /metrics answer larger than this is a fault of that service
# a /stalls answer is at most POLYLOOP_STALL_EVENTS (1000) stacks of 30 frames
MAX_STALLS_BYTES = 4 << 20
LIVE_EVENTS = 3  # the last stalls of each service in /api/live and /ws/live
LIVE_FRAMES = 5  # the innermost frames of each of their stacks (the culprit and its callers)
MAX_FAULTS_BYTES = 65536  # a /faults answer is a few hundred bytes
MAX_EXTRAS = 64  # numbers passed through per service (its labels are from closed sets)
MAX_CONNECTIONS = 64  # the scraper's connections at once (two or three per replica and second)
# what is passed through as `metrics` besides the polyloop_* series
PROCESS = ("process_resident_memory_bytes", "process_open_fds")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One successful scrape of one service, reduced to what the picture needs."""

    at: float  # monotonic seconds
    requests: float | None
    lag_buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), sorted
    blocked: float | None
    cpu: float | None
    extras: dict[str, float]
    blocked_now: float | None = None
    stalls: float | None = None


def _wanted(line: str) -> bool:
    name = line.split("{", 1)[0].split(" ", 1)[0]
    if name in _NEEDED:
        return True
    return name.startswith(("polyloop_", *PROCESS)) and not name.endswith(_SKIPPED)


_NEEDED = frozenset({REQUESTS, f"{LAG}_bucket", BLOCKED, BLOCKED_NOW, STALLS, CPU})
_SKIPPED = ("_bucket", "_sum", "_count", "_created")


def parse(text: str, at: float) -> Sample:
    """Reduce a Prometheus text exposition to a `Sample`; raises ``ValueError`` if unparseable.

    Only the sample lines the picture uses reach prometheus-client's parser (a tenth of a
    service's exposition, none of its other histograms): parsing all of it took ~90 ms of the
    front's loop a second. Without their TYPE lines the samples keep their own names.
    """
    requests = blocked = blocked_now = stalls = cpu = None
    buckets: list[tuple[float, float]] = []
    extras: dict[str, float] = {}
    wanted = "\n".join(line for line in text.splitlines() if _wanted(line)) + "\n"
    for family in text_string_to_metric_families(wanted):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == REQUESTS:
                requests = value
            elif name == f"{LAG}_bucket":
                buckets.append((float(labels["le"]), value))
            elif name == BLOCKED:
                blocked = value
            elif name == CPU:
                cpu = value
            elif not name.startswith(LAG) and len(extras) < MAX_EXTRAS:
                extras[_key(name, labels)] = value
            if name == BLOCKED_NOW:
                blocked_now = value
            elif name == STALLS:
                stalls = value
    return Sample(at, requests, tuple(sorted(buckets)), blocked, cpu, extras, blocked_now, stalls)


def _key(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def increase(old: float, new: float) -> float:
    """A counter's increase from `old` to `new`; a drop is a restart (Prometheus' rule)."""
    return new - old if new >= old else new


def quantile(q: float, old: tuple[tuple[float, float], ...], new: tuple[tuple[float, float], ...]):
    """The `q` quantile of the observations made between two cumulative histograms, or None.

    Linear interpolation inside the bucket that holds the rank, as PromQL's
    ``histogram_quantile``; a rank in the +Inf bucket gives the largest finite bound.
    """
    before = dict(old)
    deltas = [(bound, increase(before.get(bound, 0.0), count)) for bound, count in new]
    if not deltas or deltas[-1][1] <= 0:
        return None
    rank = q * deltas[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in deltas:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


def compact_stalls(stalls: Mapping[str, Any]) -> dict[str, Any]:
    """A service's ``GET /stalls`` as the live feed carries it: the threshold, the stall in
    progress and the last ``LIVE_EVENTS`` stalls, each stack cut to its innermost
    ``LIVE_FRAMES`` frames (``frames`` says how many it had; ``GET /api/stalls`` has them
    all)."""

    def cut(stack: list[str]) -> dict[str, Any]:
        return {"stack": stack[-LIVE_FRAMES:], "frames": len(stack)}

    now = stalls.get("stalled_now")
    return {
        "threshold_ms": stalls.get("threshold_ms"),
        "stalls_total": stalls.get("stalls_total", 0),
        "stalled_now": None if not now else {"since_ms": now["since_ms"], **cut(now["stack"])},
        "events": [
            {"at": e["at"], "duration_ms": e["duration_ms"], **cut(e["stack"])}
            for e in list(stalls.get("events", []))[-LIVE_EVENTS:]
        ],
    }


@dataclass
class ServiceSeries:
    """The last few scrapes of one service, whether the last one answered, and its stalls."""

    url: str
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW + 1))
    error: str | None = "not scraped yet"
    stalls_url: str = ""
    stalls: dict[str, Any] | None = None  # compact_stalls of its last GET /stalls
    stalls_total: float | None = None  # its stalls counter when that was read

    def stalls_stale(self, sample: Sample) -> bool:
        """Whether ``GET /stalls`` may say something new since it was last read: never
        read, a stall ended since (the counter moved), or one in progress (or just over)."""
        if self.stalls is None or sample.stalls != self.stalls_total:
            return True
        if self.stalls["stalled_now"] is not None:
            return True
        threshold = (self.stalls.get("threshold_ms") or 0) / 1000
        return sample.blocked_now is not None and sample.blocked_now >= threshold

    def ok(self, sample: Sample) -> None:
        self.samples.append(sample)
        self.error = None

    def failed(self, error: str) -> None:
        # a gap is not a rate: the next answer starts a fresh series
        self.samples.clear()
        self.error = error

    def picture(self) -> dict[str, Any]:
        """``{"state", "rate", "lag_p99_ms", "blocked_ms", "error", "metrics"}``."""
        if self.error is not None or not self.samples:
            return {
                "state": "down",
                "rate": 0.0,
                "lag_p99_ms": None,
                "blocked_ms": 0.0,
                "error": self.error or "not scraped yet",
                "metrics": {},
                "stalls": None,
            }
        first, last = self.samples[0], self.samples[-1]
        previous = self.samples[-2] if len(self.samples) > 1 else None
        rate = cpu = 0.0
        if previous is not None and last.at > previous.at:
            elapsed = last.at - previous.at
            if last.requests is not None and previous.requests is not None:
                rate = increase(previous.requests, last.requests) / elapsed
            if last.cpu is not None and previous.cpu is not None:
                cpu = increase(previous.cpu, last.cpu) / elapsed
        lag = quantile(0.99, first.lag_buckets if previous else (), last.lag_buckets)
        metrics: dict[str, float] = dict(last.extras)
        if last.requests is not None:
            metrics[REQUESTS] = last.requests
        metrics["cpu_percent"] = round(cpu * 100, 1)
        return {
            "state": "up",
            "rate": round(rate, 3),
            "lag_p99_ms": None if lag is None else round(lag * 1000, 3),
            "blocked_ms": round((last.blocked or 0.0) * 1000, 1),
            "error": None,
            "metrics": metrics,
            "stalls": self.stalls,
        }


@dataclass
class FaultRead:
    """What one replica's ``/faults`` said, and when it was asked (monotonic seconds):
    a newer read replaces an older one, whoever made it (a scrape, a PUT, a DELETE)."""

    asked_at: float
    answer: dict[str, Any] | None  # None: it did not answer (``detail`` says why)
    detail: str | None = None

    @property
    def expires_at(self) -> float:
        """When the faults it reported end by themselves."""
        remaining = (self.answer or {}).get("remaining_s") or 0.0
        return self.asked_at + float(remaining)


@dataclass
class Target:
    """One service's control port: its host name and port, and where its replicas are."""

    host: str
    port: int
    replicas: Callable[[], list[str]] | None = None  # the addresses now; None: just `host`

    def addresses(self) -> list[str]:
        found = self.replicas() if self.replicas is not None else []
        return found or [self.host]

    def url(self, address: str, path: str) -> str:
        return f"http://{url_host(address)}:{self.port}{path}"

    @classmethod
    def from_url(cls, url: str) -> Target:
        """``http://host:port/metrics`` as a target (one replica)."""
        parsed = yarl.URL(url)
        return cls(parsed.host or "", parsed.port or 80)


def control_url(config: WebConfig, name: str, path: str) -> str:
    """``path`` on service ``name``'s control port (its host and metrics port variables)."""
    host, port = config.control_address(name)
    return f"http://{url_host(host)}:{port}{path}"


def targets(config: WebConfig, app: web.Application | None = None) -> dict[str, Target]:
    """Each service's control port, in the catalogue's order; with ``app``, a backend's
    replicas are the addresses its replica set holds (the front itself is one)."""
    found = {}
    for name in NAMES:
        host, port = config.control_address(name)
        replicas = None
        if app is not None and name != "web":
            replicas = _replica_addresses(app, Backend(name))
        found[name] = Target(host, port, replicas)
    return found


def _replica_addresses(app: web.Application, backend: Backend) -> Callable[[], list[str]]:
    # an app without backend clients (a test of the feed alone) reads the host name itself
    return lambda: app[CLIENTS].replicas[backend].addresses if CLIENTS in app else []


@dataclass
class ServiceScrape:
    """One service: a series per replica address, and each replica's last fault read."""

    target: Target
    replicas: dict[str, ServiceSeries] = field(default_factory=dict)
    faults: dict[str, FaultRead] = field(default_factory=dict)

    def follow(self, addresses: list[str]) -> None:
        """Keep the replicas at `addresses`: new ones start a series, gone ones are forgotten."""
        for gone in self.replicas.keys() - set(addresses):
            del self.replicas[gone]
            self.faults.pop(gone, None)
        for address in addresses:
            if address not in self.replicas:
                self.replicas[address] = ServiceSeries(
                    self.target.url(address, "/metrics"),
                    stalls_url=self.target.url(address, "/stalls"),
                )

    @property
    def samples(self) -> list[Sample]:
        """The service's last scrape as its replicas add up (one ``Sample``: the requests
        and CPU summed, the lag histograms added bound by bound, the worst block), or none
        while a replica has not answered: what the experiments measure between two moments."""
        lasts = [series.samples[-1] for series in self.replicas.values() if series.samples]
        if not lasts or len(lasts) < len(self.replicas):
            return []
        buckets: dict[float, float] = {}
        for sample in lasts:
            for bound, count in sample.lag_buckets:
                buckets[bound] = buckets.get(bound, 0.0) + count

        def total(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else sum(v or 0.0 for v in values)

        blocked = [s.blocked for s in lasts if s.blocked is not None]
        return [
            Sample(
                at=max(s.at for s in lasts),
                requests=total([s.requests for s in lasts]),
                lag_buckets=tuple(sorted(buckets.items())),
                blocked=max(blocked) if blocked else None,
                cpu=total([s.cpu for s in lasts]),
                extras={},
            )
        ]

    def record_faults(self, address: str, read: FaultRead) -> None:
        """Keep `read` unless a newer one of that replica is already there."""
        known = self.faults.get(address)
        if known is None or read.asked_at >= known.asked_at:
            self.faults[address] = read

    def picture(self) -> dict[str, Any]:
        """The service as the replicas add up (see the module docstring)."""
        each = {address: series.picture() for address, series in self.replicas.items()}
        replicas = [
            {"address": address, **{k: p[k] for k in REPLICA_KEYS}} for address, p in each.items()
        ]
        up = [p for p in each.values() if p["state"] == "up"]
        if not up:
            down = next(iter(each.values()), ServiceSeries("").picture())
            return {**down, "replicas": replicas}
        lags = [p["lag_p99_ms"] for p in up if p["lag_p99_ms"] is not None]
        worst = max(up, key=lambda p: p["blocked_ms"])  # the first of equals
        metrics: dict[str, float] = {}
        for p in up:
            for key, number in p["metrics"].items():
                metrics[key] = metrics.get(key, 0.0) + number
        return {
            "state": "up",
            "rate": round(sum(p["rate"] for p in up), 3),
            "lag_p99_ms": max(lags) if lags else None,
            "blocked_ms": worst["blocked_ms"],
            "error": None,
            "metrics": metrics,
            "stalls": worst["stalls"],
            "replicas": replicas,
        }


REPLICA_KEYS = ("state", "rate", "lag_p99_ms", "blocked_ms", "error")  # each replica's own


async def read_at_most(stream: aiohttp.StreamReader | asyncio.StreamReader, limit: int) -> bytes:
    """A response's whole body, or its first ``limit + 1`` bytes when it is longer (the
    caller refuses those). ``stream.read(n)`` alone returns what has arrived so far: of a
    body that came in several segments, a part (a /stalls document cut at 10 KB)."""
    chunks, size = [], 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def fetch(url: str, limit: int, headers: Mapping[str, str] | None = None) -> bytes:
    """The body of ``GET url`` when it answers 200, over a plain HTTP/1.0 stream: a control
    port answers one request per connection, so a client session (its pool, its cookie jar,
    its request objects) costs more each second than the request itself; ``ValueError`` for
    another status, or a body over ``limit`` bytes. ``headers`` go with the request."""
    _, _, rest = url.partition("://")
    address, _, path = rest.partition("/")
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    try:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        request = f"GET /{path} HTTP/1.0\r\nAccept-Encoding: identity\r\n{extra}\r\n"
        writer.write(request.encode())
        answer = await read_at_most(reader, limit + 64 * 1024)  # headers: a few hundred bytes
    finally:
        writer.close()
    head, separator, body = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if not separator or status != [b"200"]:
        raise ValueError(f"HTTP {status[0].decode('ascii', 'replace') if status else '?'}")
    if len(body) > limit:
        raise ValueError(f"more than {limit} bytes")
    return body


class Scraper:
    """Reads every replica's ``/metrics`` and ``/faults`` in one concurrent round;
    ``picture()`` says what it saw, ``services[name].faults`` what each replica's faults are."""

    def __init__(
        self,
        targets: Mapping[str, Target | str],
        session: aiohttp.ClientSession,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
    ) -> None:
        self.services = {
            name: ServiceScrape(t if isinstance(t, Target) else Target.from_url(t))
            for name, t in targets.items()
        }
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        # the front proves itself with the token: the control ports keep slots for it
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.rounds = 0  # completed rounds (tests count the requests a round makes)
        self.soon = asyncio.Event()  # set: the scrape loop starts its next round now
        self._begun = 0  # rounds begun, and the latest begun of those that ended
        self._ended = 0
        self._round_ended = asyncio.Condition()

    async def read_now(self, timeout: float) -> bool:
        """Have the scrape loop start its next round now, not at its second, and wait until
        a round begun after this call has ended (an experiment's baseline starts from what
        was read after its start); False when none did within ``timeout`` seconds."""
        wanted = self._begun + 1
        self.soon.set()
        try:
            async with asyncio.timeout(timeout), self._round_ended:
                await self._round_ended.wait_for(lambda: self._ended >= wanted)
        except TimeoutError:
            return False
        return True

    async def scrape(self) -> None:
        """One round: every replica of every target at once, each bounded; never raises."""
        self._begun += 1
        number = self._begun
        calls = []
        for service in self.services.values():
            service.follow(service.target.addresses())
            for address, series in service.replicas.items():
                calls.append(self._scrape_one(series))
                calls.append(self._read_faults(service, address))
        await asyncio.gather(*calls)
        self.rounds += 1
        async with self._round_ended:
            self._ended = max(self._ended, number)
            self._round_ended.notify_all()

    async def _scrape_one(self, series: ServiceSeries) -> None:
        try:
            async with asyncio.timeout(self._timeout.total):
                body = await fetch(series.url, MAX_BYTES, self._headers)
            # parsed here: only the lines the picture uses reach the parser (about 0.2 ms a
            # service), where a thread for it cost its hand-over and a wake-up each time
            sample = parse(body.decode("utf-8", "replace"), self._clock())
            series.ok(sample)
        except TimeoutError:
            series.failed(f"no answer within {self._timeout.total} s")
        except ConnectionRefusedError:
            series.failed("connection refused")
        except (OSError, ValueError, KeyError) as exc:
            series.failed(f"bad answer: {exc!s:.200}")
        else:
            if series.stalls_stale(sample):
                await self._refresh_stalls(series)

    async def _refresh_stalls(self, series: ServiceSeries) -> None:
        # a service whose /stalls fails is still up (its metrics answered): no stalls shown
        try:
            stalls = await self._get_stalls(series.stalls_url)
            series.stalls = compact_stalls(stalls)
            # its own count: a stall counted by the loop but not yet recorded by the
            # watchdog leaves the scraped counter ahead, so it is read again next time
            series.stalls_total = float(stalls["stalls_total"])
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            series.stalls = series.stalls_total = None
            log.debug("no stalls", extra={"url": series.stalls_url, "error": repr(exc)})

    async def _get_stalls(self, url: str) -> dict[str, Any]:
        async with self._session.get(url, timeout=self._timeout, headers=self._headers) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status} from /stalls")
            body = await read_at_most(response.content, MAX_STALLS_BYTES)
        if len(body) > MAX_STALLS_BYTES:
            raise ValueError(f"/stalls: more than {MAX_STALLS_BYTES} bytes")
        answer = json.loads(body)
        if not isinstance(answer, dict) or not isinstance(answer.get("events"), list):
            raise ValueError("/stalls: not a stalls document")
        return answer

    async def stalls(self, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Every service's whole ``GET /stalls`` now (of its first replica), read
        concurrently, each bounded by the timeout; one that does not answer is
        ``{"state": "down", "detail"}``."""
        wanted = [name for name in self.services if names is None or name in names]

        async def one(name: str) -> dict[str, Any]:
            service = self.services[name]
            address = next(iter(service.replicas), None) or service.target.addresses()[0]
            try:
                return await self._get_stalls(service.target.url(address, "/stalls"))
            except TimeoutError:
                return {"state": "down", "detail": f"no answer within {self._timeout.total} s"}
            except (aiohttp.ClientError, ValueError) as exc:
                return {"state": "down", "detail": f"{exc!s:.200}"}

        answers = await asyncio.gather(*(one(name) for name in wanted))
        return dict(zip(wanted, answers, strict=True))

    async def _read_faults(self, service: ServiceScrape, address: str) -> None:
        asked_at = self._clock()
        try:
            async with self._session.get(
                service.target.url(address, "/faults"), timeout=self._timeout, headers=self._headers
            ) as response:
                body = await read_at_most(response.content, MAX_FAULTS_BYTES)
                status = response.status
            answer = json.loads(body) if len(body) <= MAX_FAULTS_BYTES else None
            if status != 200 or not isinstance(answer, dict):
                raise ValueError(f"its /faults answered {status}")
            read = FaultRead(asked_at, answer)
        except TimeoutError:
            read = FaultRead(asked_at, None, f"no answer within {self._timeout.total} s")
        except (aiohttp.ClientError, ValueError) as exc:
            read = FaultRead(asked_at, None, f"its control port does not answer ({exc!s:.200})")
        service.record_faults(address, read)

    def picture(self) -> dict[str, dict[str, Any]]:
        return {name: service.picture() for name, service in self.services.items()}

    @property
    def series(self) -> dict[str, ServiceScrape]:
        """Each service as its replicas add up (``picture()``, ``samples``), by name."""
        return self.services


SCRAPER = web.AppKey("scraper", Scraper)


async def _scrape_forever(scraper: Scraper) -> None:
    loop = asyncio.get_running_loop()
    next_tick = loop.time()
    while True:
        await scraper.scrape()
        # a fixed schedule, so a slow round does not stretch the seconds rates are made of;
        # read_now() starts the next round at once (and the schedule from there)
        next_tick = max(next_tick + SCRAPE_EVERY, loop.time())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(next_tick):
                await scraper.soon.wait()
        if scraper.soon.is_set():
            scraper.soon.clear()
            next_tick = loop.time()


async def scrape_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: scrape every second for as long as the app runs (needs app[CONFIG]
    and app[CLIENTS], whose replica sets say where each backend's replicas are)."""
    config = app[CONFIG]
    # two calls per replica a second; no cookies, no proxies from the environment;
    # identity: prometheus-client gzips its answer for a client that accepts it (aiohttp's
    # default), a cost on both sides every second for a few kilobytes on a local network
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    headers = {"Accept-Encoding": "identity"}
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, trust_env=False
    ) as session:
        scraper = Scraper(
            targets(config, app), session, config.scrape_timeout, token=config.admin_token
        )
        app[SCRAPER] = scraper
        where = {n: f"{s.target.host}:{s.target.port}" for n, s in scraper.services.items()}
        log.info("scraping metrics", extra={"targets": where})
        task = asyncio.create_task(_scrape_forever(scraper))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
