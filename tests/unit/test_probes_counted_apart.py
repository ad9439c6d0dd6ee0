"""The stack's own traffic (``services.common.probes``) is served like any other and counted
apart: tcp-echo, udp-echo and dns in-process, each probe echoed or answered, never counted
in what the service served (``polyloop_requests_total``), always in ``polyloop_probes_total``.
The resolver's is in tests/gevent/test_resolver_api.py, the front's in
tests/unit/test_loop_lag_services.py."""

from __future__ import annotations

from twisted.internet import task
from twisted.names import dns

from services.common import dns_probe, probes
from services.common.faults import parse_spec
from services.dns.config import DnsConfig
from services.dns.metrics import DnsCollector
from services.dns.server import build_factory
from services.tcp_echo.metrics import TcpEchoCollector
from services.tcp_echo.protocol import Echo, EchoFactory
from services.udp_echo.metrics import UdpEchoCollector
from tests.unit.test_dns_server import UdpServer, query_bytes
from tests.unit.test_tcp_echo_protocol import connect
from tests.unit.test_udp_echo_protocol import CLIENT, make_protocol


def samples(collector: object) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in collector.collect()  # type: ignore[attr-defined]
        for sample in family.samples
        if sample.name in ("polyloop_requests_total", "polyloop_probes_total")
    }


def tcp_factory() -> EchoFactory:
    return EchoFactory.forProtocol(Echo, clock=task.Clock())


def test_a_tcp_connection_opened_with_the_mark_is_echoed_and_counted_apart() -> None:
    factory = tcp_factory()
    _, probe = connect(factory)
    _, client = connect(factory)
    probe.protocol.dataReceived(probes.marked(b"ping"))
    probe.protocol.dataReceived(b"more, later")  # the whole connection is the probe's
    client.protocol.dataReceived(b"hello")
    assert probe.value() == probes.marked(b"ping") + b"more, later"
    assert client.value() == b"hello"
    assert (factory.chunks_echoed, factory.bytes_echoed, factory.probe_chunks) == (1, 5, 2)
    assert samples(TcpEchoCollector(factory)) == {
        "polyloop_requests_total": 1,
        "polyloop_probes_total": 2,
    }


def test_the_mark_later_in_a_connection_is_just_bytes() -> None:
    factory = tcp_factory()
    _, client = connect(factory)
    client.protocol.dataReceived(b"first")
    client.protocol.dataReceived(probes.marked(b"ping"))
    assert client.value() == b"first" + probes.marked(b"ping")
    assert (factory.chunks_echoed, factory.probe_chunks) == (2, 0)


def test_a_probe_connection_meets_the_faults_too() -> None:
    factory = tcp_factory()
    factory.faults.apply(parse_spec({"latency_ms": 100}))
    _, probe = connect(factory)
    probe.protocol.dataReceived(probes.marked(b"ping"))
    assert probe.value() == b""  # held by the latency fault, like a client's
    factory.clock.advance(0.1)
    assert probe.value() == probes.marked(b"ping")
    assert (factory.chunks_echoed, factory.probe_chunks) == (0, 1)


def test_a_udp_datagram_with_the_mark_is_echoed_and_counted_apart() -> None:
    protocol, transport = make_protocol()
    protocol.datagram_received(probes.marked(b"ping"), CLIENT)
    protocol.datagram_received(b"\x00binary, not a probe", CLIENT)
    protocol.datagram_received(b"hello", CLIENT)
    assert [data for data, _ in transport.sent] == [
        probes.marked(b"ping"),
        b"\x00binary, not a probe",
        b"hello",
    ]
    assert (protocol.echoed, protocol.probes, protocol.received) == (2, 1, 3)
    assert samples(UdpEchoCollector(protocol)) == {
        "polyloop_requests_total": 2,
        "polyloop_probes_total": 1,
    }


def test_a_delayed_udp_probe_is_counted_apart_too() -> None:
    protocol, transport = make_protocol()
    transport.is_closing = lambda: False  # type: ignore[attr-defined]
    protocol._echo(probes.marked(b"late"), CLIENT)  # where a latency fault's echo lands
    assert (protocol.echoed, protocol.probes) == (0, 1)


def test_a_dns_question_for_the_probe_name_is_answered_and_counted_apart() -> None:
    factory = build_factory(DnsConfig(tcp_idle_timeout=5.0), task.Clock())
    udp = UdpServer(factory)
    udp.send(dns_probe.question())
    udp.send(query_bytes("PROBE.polyloop.test", dns.AAAA))
    udp.send(query_bytes("www.polyloop.test"))
    replies = udp.replies()
    assert [reply.rCode for reply in replies] == [dns.OK, dns.OK, dns.OK]
    assert replies[0].answers[0].payload.dottedQuad() == probes.ADDRESS
    assert factory.probes == 2
    assert samples(DnsCollector(factory)) == {
        "polyloop_requests_total": 1,
        "polyloop_probes_total": 2,
    }


def test_the_probe_name_is_recognised_in_any_case_and_with_the_root_dot() -> None:
    assert probes.is_probe_name("Probe.PolyLoop.test.")
    assert probes.is_probe_name(b"probe.polyloop.test")
    assert not probes.is_probe_name("x.probe.polyloop.test")
    assert not probes.is_probe_name("www.polyloop.test")
