"""udp-echo's metrics: the protocol's plain counters, read at scrape time.

``datagram_received`` only adds to ``echoed`` (``probes`` for the stack's own) or to
``dropped[reason]``;
``UdpEchoCollector`` turns them into samples when the metrics thread is scraped.
Try it: curl -s 127.0.0.1:9102/metrics
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from services.udp_echo.protocol import DROP_REASONS, ServerUdpEchoProtocol


class UdpEchoCollector:
    """Samples of one ``ServerUdpEchoProtocol``'s counters (README "Metrics")."""

    def __init__(self, protocol: ServerUdpEchoProtocol) -> None:
        self.protocol = protocol

    def collect(self) -> Iterator[Metric]:
        p = self.protocol
        yield CounterMetricFamily(
            "polyloop_requests", "Datagrams echoed, any client but the stack's probes.", p.echoed
        )
        yield CounterMetricFamily(
            "polyloop_probes",
            "Probe datagrams of the stack's own echoed (healthchecks, the front).",
            p.probes,
        )
        yield CounterMetricFamily(
            "polyloop_udp_echo_datagrams_echoed",
            "Datagrams echoed to their sender (the stack's probes apart).",
            p.echoed,
        )
        dropped = CounterMetricFamily(
            "polyloop_udp_echo_datagrams_dropped",
            "Datagrams not echoed, by reason: " + ", ".join(DROP_REASONS) + ".",
            labels=["reason"],
        )
        counts = dict(p.dropped)  # a copy: the loop thread keeps counting
        for reason in DROP_REASONS:
            dropped.add_metric([reason], counts.get(reason, 0))
        yield dropped
        yield CounterMetricFamily(
            "polyloop_udp_echo_socket_errors", "Errors the socket reported.", p.errors
        )
