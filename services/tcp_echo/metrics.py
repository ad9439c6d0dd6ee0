"""tcp-echo's metrics: the factory's plain counters, read at scrape time.

Nothing here runs per chunk: ``Echo.dataReceived`` adds to two integers of the
factory, and ``TcpEchoCollector`` turns them into Prometheus samples when the metrics
thread is scraped. Try it: curl -s 127.0.0.1:9101/metrics
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from services.tcp_echo.protocol import EchoFactory


class TcpEchoCollector:
    """Samples of one ``EchoFactory``'s counters (see the README's Metrics table)."""

    def __init__(self, factory: EchoFactory) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        f = self.factory
        yield CounterMetricFamily(
            "polyloop_requests",
            "Chunks echoed (reads handled), any client but the stack's own probes.",
            f.chunks_echoed,
        )
        yield CounterMetricFamily(
            "polyloop_probes",
            "Chunks echoed on the stack's own probe connections (healthchecks, the front).",
            f.probe_chunks,
        )
        yield GaugeMetricFamily(
            "polyloop_tcp_echo_connections_open", "Connections open now.", len(f.protocols)
        )
        yield CounterMetricFamily(
            "polyloop_tcp_echo_connections_accepted", "Connections accepted.", f.connections_total
        )
        yield CounterMetricFamily(
            "polyloop_tcp_echo_connections_refused",
            "Connections closed at once at TCP_ECHO_MAX_CONNECTIONS.",
            f.connections_refused,
        )
        yield CounterMetricFamily(
            "polyloop_tcp_echo_bytes_echoed", "Bytes echoed back.", f.bytes_echoed
        )
        yield CounterMetricFamily(
            "polyloop_tcp_echo_idle_closes",
            "Connections closed after TCP_ECHO_IDLE_TIMEOUT of silence.",
            f.idle_timeouts,
        )
