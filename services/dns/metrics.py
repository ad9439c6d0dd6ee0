"""The dns service's metrics: the factory's plain reply counts, read at scrape time.

``AuthoritativeServerFactory.sendReply`` adds one to a dict entry per reply, keyed by
closed sets (``RCODE_NAMES``, ``QTYPE_NAMES``, ``REFUSED_REASONS``); ``DnsCollector``
turns them into samples when the metrics thread is scraped.
Try it: curl -s 127.0.0.1:9104/metrics
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from services.dns import receive
from services.dns.server import REFUSED_REASONS, AuthoritativeServerFactory


class DnsCollector:
    """Samples of one ``AuthoritativeServerFactory``'s counts (README "Metrics"), and, given
    the UDP port, what the kernel dropped at that socket (``receive.drops``)."""

    def __init__(
        self,
        factory: AuthoritativeServerFactory,
        *,
        udp_port: int | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        self.factory = factory
        self.udp_port = udp_port
        self.receive_buffer = receive_buffer

    def collect(self) -> Iterator[Metric]:
        f = self.factory
        replies = dict(f.answered)  # copies: the reactor keeps counting meanwhile
        refused = dict(f.refused)
        yield CounterMetricFamily(
            "polyloop_requests",
            "DNS queries answered (any rcode), any client but the stack's own probes.",
            sum(replies.values()),
        )
        yield CounterMetricFamily(
            "polyloop_probes",
            "Questions for the stack's probe name (healthchecks, the front), not served.",
            f.probes,
        )
        queries = CounterMetricFamily(
            "polyloop_dns_queries",
            "DNS queries answered, by rcode and query type.",
            labels=["rcode", "qtype"],
        )
        for (rcode, qtype), count in sorted(replies.items()):
            queries.add_metric([rcode, qtype], count)
        yield queries
        refusals = CounterMetricFamily(
            "polyloop_dns_refused",
            "REFUSED answers, by reason: " + ", ".join(REFUSED_REASONS) + ".",
            labels=["reason"],
        )
        for reason in REFUSED_REASONS:
            refusals.add_metric([reason], refused.get(reason, 0))
        yield refusals
        pending = f.delaying.pending if f.delaying is not None else 0
        yield GaugeMetricFamily(
            "polyloop_dns_delayed_pending", "Delayed answers (X.delay-N) waiting now.", pending
        )
        dropped = receive.drops(self.udp_port) if self.udp_port is not None else None
        if dropped is not None:
            yield CounterMetricFamily(
                "polyloop_dns_udp_drops",
                "Queries the kernel dropped at the UDP socket before the reactor read them"
                " (its receive buffer was full).",
                dropped,
            )
        if self.receive_buffer is not None:
            yield GaugeMetricFamily(
                "polyloop_dns_udp_receive_buffer_bytes",
                "The UDP socket's receive buffer, as the kernel sized it.",
                self.receive_buffer,
            )
