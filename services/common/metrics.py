"""What every service shares to be seen from inside: its loop's lag, and its metrics port.

- ``LagMonitor``: a periodic timer on the service's own loop calls ``tick(lag)``; the
  monitor keeps a histogram of how late the timer fired (``polyloop_event_loop_lag_seconds``)
  and the monotonic time of the last tick, from which a scrape computes
  ``polyloop_event_loop_blocked_seconds``: how long the loop has now gone without a tick,
  beyond one interval. The drivers, one per loop, are in ``lag_twisted``, ``lag_asyncio``
  and ``lag_gevent``.
- ``MetricsServer``: a tiny WSGI app (``/metrics`` is prometheus-client's own
  ``make_wsgi_app``; more routes can be added) served by prometheus-client's
  ``ThreadingWSGIServer`` on a thread of its own, OUTSIDE the event loop: it still
  answers while the loop is blocked, which is what makes "blocked now" live.

The hot paths never call a metric: each service counts with plain attributes and a
custom collector reads them at scrape time (``new_registry(collector, monitor)``).

Try it (tcp-echo running): curl -s 127.0.0.1:9101/metrics
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer

from services.common.config import env_int
from services.common.control import DEFAULT_LAG_INTERVAL, ControlSettings
from services.common.faults import Faults, admin_token, faults_app

log = logging.getLogger(__name__)

LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


# the control port's settings (every service reads them)
MetricsSettings = ControlSettings


def env_metrics_port(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    """A service's metrics port; 0 asks the kernel for a free one (logged; tests use it)."""
    return env_int(name, default, minimum=0, maximum=65535, env=env)


class LagMonitor:
    """How late the loop runs its timer: a histogram of lags, and "blocked now".

    ``tick(lag)`` is called ON the loop by its driver, every ``interval`` seconds;
    ``collect()`` runs on the metrics thread. No lock: the loop thread only adds to
    plain integers and floats (atomic under the GIL), and a scrape derives the count
    from the bucket counts it copied, so the histogram it exposes is always coherent.
    """

    def __init__(
        self, interval: float = DEFAULT_LAG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.last_tick = clock()
        self.ticks = 0
        self._bounds = LAG_BUCKETS
        self._counts = [0] * (len(LAG_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0

    def tick(self, lag: float) -> None:
        """Record one firing of the timer, ``lag`` seconds after it was due."""
        self.last_tick = self.clock()
        lag = max(0.0, lag)
        index = 0
        for bound in self._bounds:
            if lag <= bound:
                break
            index += 1
        self._counts[index] += 1
        self._sum += lag
        self.ticks += 1

    def blocked_seconds(self, now: float | None = None) -> float:
        """How long the loop has gone without a tick beyond one interval (0 when on time)."""
        now = self.clock() if now is None else now
        return max(0.0, now - self.last_tick - self.interval)

    def collect(self) -> Iterator[Metric]:
        counts = list(self._counts)
        total = self._sum
        buckets, cumulative = [], 0
        for bound, count in zip((*self._bounds, float("inf")), counts):
            cumulative += count
            buckets.append((_bucket_label(bound), cumulative))
        yield HistogramMetricFamily(
            "polyloop_event_loop_lag_seconds",
            "How late the loop's periodic timer fired (seconds after it was due).",
            buckets=buckets,
            sum_value=total,
        )
        yield GaugeMetricFamily(
            "polyloop_event_loop_blocked_seconds",
            "How long the loop has now gone without its timer firing, beyond one interval.",
            value=self.blocked_seconds(),
        )


@dataclass
class LoopMetrics:
    """What a service's ``start_metrics`` started: the monitor, its timer, the port."""

    monitor: LagMonitor
    timer: Any  # TwistedLagTimer, AsyncioLagTimer or GeventLagTimer: each has stop()
    server: MetricsServer

    def stop(self) -> None:
        """Stop the lag timer (the serving thread is a daemon: it ends with the process)."""
        self.timer.stop()


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def new_registry(*collectors: Any) -> CollectorRegistry:
    """A registry of its own (tests build many services) with the process collector."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)
    return registry


class _QuietHandler(WSGIRequestHandler):
    # a silent client holds its thread this long at most (the port is internal, still bounded)
    timeout = 5.0

    def log_message(self, format: str, *args: Any) -> None:
        # one line per scrape every second would drown the service's own log
        pass


class _BoundedServer(ThreadingWSGIServer):
    """prometheus-client's thread-per-request server, with a bound on threads at once."""

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int) -> None:
        self.slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer's own asks socket.getfqdn(host): a reverse DNS lookup at start, which
        # under gevent's dnspython resolver cannot even run on a thread of its own
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class MetricsServer:
    """``GET /metrics`` (and any route added) on ``host:port``, from a thread of its own.

    ``routes`` maps a path to a WSGI app; issue 11's ``/faults`` is one more entry.
    ``start(start_thread)`` binds and serves ON the thread that ``start_thread(target)``
    starts (default: a daemon ``threading.Thread``). The gevent resolver passes one that
    starts a real OS thread: a gevent socket belongs to the hub of the thread that made
    it, so the socket must be made there, never in the (blockable) main hub.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        max_connections: int = 16,
        routes: Mapping[str, WsgiApp] | None = None,
    ) -> None:
        self.routes: dict[str, WsgiApp] = {"/metrics": make_wsgi_app(registry)}
        self.routes.update(routes or {})
        self.host = host
        self.requested_port = port
        self.max_connections = max_connections
        self.server: ThreadingWSGIServer | None = None
        self.thread_ident: int | None = None
        self._error: OSError | None = None

    @property
    def port(self) -> int:
        assert self.server is not None, "not started"
        return self.server.server_address[1]

    def app(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Dispatch on the path; an unknown one is a 404 (never the loop's business)."""
        route = self.routes.get(environ.get("PATH_INFO") or "/")
        if route is None:
            body = b"not found; try GET /metrics\n"
            start_response(
                "404 Not Found",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return route(environ, start_response)

    def start(
        self,
        start_thread: Callable[[Callable[[], None]], object] | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Bind and serve from another thread than the caller's (the loop's).

        Returns once the port is bound; raises its ``OSError`` when it cannot be.
        """
        (start_thread or _daemon_thread)(self._bind_and_serve)
        deadline = time.monotonic() + timeout
        # a one-time handshake with the new thread, polled: no lock is shared between a
        # gevent hub and a foreign thread (time.sleep is gevent.sleep once patched)
        while self.server is None and self._error is None:
            if time.monotonic() > deadline:
                raise OSError(f"the metrics thread did not bind {self.host}:{self.requested_port}")
            time.sleep(0.005)
        if self._error is not None:
            raise self._error

    def _bind_and_serve(self) -> None:
        self.thread_ident = threading.get_ident()
        try:
            server = make_server(
                self.host,
                self.requested_port,
                self.app,
                server_class=lambda addr, handler: _BoundedServer(
                    addr, handler, self.max_connections
                ),
                handler_class=_QuietHandler,
            )
        except Exception as exc:  # noqa: BLE001 - handed to start(), raised in the caller
            self._error = exc if isinstance(exc, OSError) else OSError(repr(exc))
            return
        self.server = server
        server.serve_forever(poll_interval=0.5)

    def close(self) -> None:
        """Stop serving (waits for the serving loop to notice) and close the socket."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _daemon_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name="metrics", daemon=True)
    thread.start()
    return thread


def serve_metrics(
    settings: MetricsSettings,
    host: str,
    port: int,
    *collectors: Any,
    registry: CollectorRegistry | None = None,
    start_thread: Callable[[Callable[[], None]], object] | None = None,
    faults: Faults | None = None,
    env: Mapping[str, str] | None = None,
) -> MetricsServer:
    """Serve ``collectors`` (+ the process collector, or into ``registry``) on ``host:port``.

    With ``faults``, the port also serves ``/faults`` (issue 11), guarded by
    ``POLYLOOP_ADMIN_TOKEN`` read from ``env``. Raises ``OSError`` when the port cannot
    be bound; the caller logs it and exits 1.
    """
    if registry is None:
        registry = new_registry(*collectors)
    else:
        for collector in collectors:
            registry.register(collector)
    routes = {} if faults is None else {"/faults": faults_app(faults, admin_token(env))}
    server = MetricsServer(
        registry, host, port, max_connections=settings.max_connections, routes=routes
    )
    server.start(start_thread)
    log.info(
        "metrics endpoint listening",
        extra={"address": f"{host}:{server.port}", "lag_interval": settings.lag_interval},
    )
    return server
