"""The front's replica sets, proven with real sockets on several loopback addresses.

127.0.0.2, 127.0.0.3 and 127.0.0.4 are loopback on Linux: each runs its own echo server on
the same port, as the replicas of one service do on a compose or swarm network. Only the
name lookup is a stand-in (``Names``): a mutable list of addresses, as the network's DNS
answers while replicas come and go; the calls and probes go over real sockets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import dns.message
import dns.rcode
import dns.rrset
import pytest
from aiohttp import web

from services.web.backends import replicas as r
from services.web.backends.clients import replica_sets
from services.web.backends.replicas import (
    ReplicaSet,
    ReplicaUnreachable,
    ReplicaWatcher,
    call_on_replica,
)
from services.web.backends.resolver import ResolverClient
from services.web.backends.tcp import TcpEchoPool
from services.web.backends.udp import UdpEchoPool
from services.web.config import WebConfig

ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


class Names:
    """What the network's DNS answers for the service name right now."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = list(addresses)
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        if not self.addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.addresses)


class EchoReplica:
    """A TCP echo server on one loopback address, counting what it echoed."""

    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self.echoed = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> EchoReplica:
        self._server = await asyncio.start_server(self._serve, self.address, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                self.echoed += 1
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        """As a killed task: the listener goes, open connections are reset."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()


async def start_replicas(addresses: list[str]) -> list[EchoReplica]:
    first = await EchoReplica(addresses[0], 0).start()
    rest = [await EchoReplica(a, first.port).start() for a in addresses[1:]]
    return [first, *rest]


@pytest.fixture
async def echoes() -> AsyncIterator[list[EchoReplica]]:
    servers = await start_replicas(ADDRESSES)
    yield servers
    for server in servers:
        if server._server is not None and server._server.is_serving():
            await server.stop()


async def echo_once(address: str, port: int, data: bytes = b"hi") -> bytes:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(data)
        await writer.drain()
        return await reader.readexactly(len(data))
    finally:
        writer.close()


def replica_set(names: Names, port: int, **kwargs: object) -> ReplicaSet:
    return ReplicaSet("tcp-echo", "tcp-echo", port, resolve=names, **kwargs)  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate()` until it holds, failing after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def test_the_real_resolver_gives_one_replica_for_a_literal_address() -> None:
    replicas = ReplicaSet("tcp-echo", "127.0.0.1", 8000)
    assert await replicas.refresh() == ["127.0.0.1"]
    assert replicas.snapshot()["count"] == 1


async def test_calls_are_spread_evenly_over_every_replica(echoes: list[EchoReplica]) -> None:
    replicas = replica_set(Names(ADDRESSES), echoes[0].port)
    for i in range(30):
        data = f"m{i}".encode()
        assert await call_on_replica(replicas, lambda a, d=data: echo_once(a, echoes[0].port, d))
    assert [server.echoed for server in echoes] == [10, 10, 10]
    assert [rep["calls"] for rep in replicas.snapshot()["replicas"]] == [10, 10, 10]


async def test_a_failed_replica_is_taken_out_at_once_and_the_call_retried(
    echoes: list[EchoReplica],
) -> None:
    port = echoes[0].port
    replicas = replica_set(Names(ADDRESSES), port)
    await echoes[1].stop()
    failed_calls = 0
    for _ in range(30):
        try:
            await call_on_replica(replicas, lambda a: echo_once(a, port))
        except OSError:
            failed_calls += 1
    assert failed_calls == 0  # each call that met the stopped replica went on to another
    snapshot = {rep["address"]: rep for rep in replicas.snapshot()["replicas"]}
    assert snapshot["127.0.0.3"]["state"] == "down"
    assert snapshot["127.0.0.3"]["failures"] == 1  # once out, it got no more calls
    assert snapshot["127.0.0.3"]["error"] == "connection refused"
    assert echoes[0].echoed + echoes[2].echoed == 30
    assert replicas.snapshot()["up"] == 2


async def test_a_replica_is_put_back_when_it_answers_a_probe(echoes: list[EchoReplica]) -> None:
    port = echoes[0].port
    replicas = replica_set(Names(ADDRESSES), port, probe=r.probe_tcp_echo)
    await replicas.refresh()
    await echoes[2].stop()
    await replicas.probe_all(timeout=1.0)
    assert replicas.up() == ["127.0.0.2", "127.0.0.3"]
    echoes[2] = await EchoReplica("127.0.0.4", port).start()
    await replicas.probe_all(timeout=1.0)
    assert replicas.up() == ADDRESSES


async def test_the_set_follows_the_name_as_replicas_come_and_go(echoes: list[EchoReplica]) -> None:
    names = Names(ADDRESSES[:1])
    replicas = replica_set(names, echoes[0].port)
    assert await replicas.refresh() == ["127.0.0.2"]
    names.addresses = ["127.0.0.4", "127.0.0.2", "127.0.0.3"]  # scaled up to 3
    assert await replicas.refresh() == ADDRESSES  # in address order, whatever DNS's order
    names.addresses = ["127.0.0.3"]  # scaled down to 1
    assert await replicas.refresh() == ["127.0.0.3"]
    assert replicas.pick() == "127.0.0.3"


async def test_a_name_that_resolves_to_nothing_fails_fast() -> None:
    replicas = replica_set(Names([]), 8000)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(call_on_replica(replicas, lambda a: echo_once(a, 8000)), 1.0)


async def test_a_resolver_hiccup_keeps_the_last_known_set() -> None:
    class Flaky(Names):
        async def __call__(self, host: str, port: int) -> list[str]:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    replicas = replica_set(Names(ADDRESSES), 8000)
    await replicas.refresh()
    replicas._resolve = Flaky([])
    assert await replicas.refresh() == ADDRESSES
    assert replicas.resolve_error


async def test_with_every_replica_down_a_call_is_still_tried(echoes: list[EchoReplica]) -> None:
    port = echoes[0].port
    replicas = replica_set(Names(ADDRESSES[:1]), port)
    await replicas.choose()
    replicas.failed("127.0.0.2", "probe timed out")
    # the only replica is down, yet it answers: the call succeeds and puts it back
    assert await call_on_replica(replicas, lambda a: echo_once(a, port)) == b"hi"
    assert replicas.up() == ["127.0.0.2"]


async def test_the_set_is_bounded() -> None:
    many = [f"127.0.1.{i}" for i in range(1, 101)]
    replicas = replica_set(Names(many), 8000, max_replicas=5)
    assert await replicas.refresh() == many[:5]
    assert replicas.snapshot()["count"] == 5


async def test_the_watcher_refreshes_on_its_own(echoes: list[EchoReplica]) -> None:
    names = Names(ADDRESSES[:2])
    replicas = replica_set(names, echoes[0].port, probe=r.probe_tcp_echo)
    watcher = ReplicaWatcher([replicas], every=0.1, probe_timeout=0.5)
    watcher.start()
    try:
        await until(lambda: replicas.addresses == ADDRESSES[:2])
        names.addresses = ADDRESSES
        await until(lambda: replicas.addresses == ADDRESSES)
        await echoes[0].stop()
        await until(lambda: replicas.up() == ADDRESSES[1:])
    finally:
        await watcher.close()
    rounds = watcher.rounds
    await asyncio.sleep(0.3)  # stopped for good: no round after close()
    assert watcher.rounds == rounds


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


class Dns(asyncio.DatagramProtocol):
    def __init__(self, rcode: int = dns.rcode.NOERROR) -> None:
        self.rcode = rcode

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.set_rcode(self.rcode)
        if self.rcode == dns.rcode.NOERROR:
            name = query.question[0].name
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.10"))
        self.transport.sendto(response.to_wire(), addr)  # type: ignore[attr-defined]


async def test_the_udp_and_dns_probes_ask_the_real_question() -> None:
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.2", 0))
    good, _ = await loop.create_datagram_endpoint(Dns, local_addr=("127.0.0.3", 0))
    bad, _ = await loop.create_datagram_endpoint(
        lambda: Dns(dns.rcode.REFUSED), local_addr=("127.0.0.4", 0)
    )
    try:
        await r.probe_udp_echo("127.0.0.2", udp.get_extra_info("sockname")[1], 1.0)
        await r.probe_dns("127.0.0.3", good.get_extra_info("sockname")[1], 1.0)
        with pytest.raises(ValueError, match="REFUSED"):
            await r.probe_dns("127.0.0.4", bad.get_extra_info("sockname")[1], 1.0)
        nothing = bad.get_extra_info("sockname")[1]  # bound on .4 only: .2 sends ICMP back
        with pytest.raises(ConnectionRefusedError):
            await r.probe_udp_echo("127.0.0.2", nothing, 1.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
            mute.bind(("127.0.0.2", 0))  # receives, never answers
            with pytest.raises(TimeoutError):
                await r.probe_udp_echo("127.0.0.2", mute.getsockname()[1], 0.3)
    finally:
        for transport in (udp, good, bad):
            transport.close()


async def test_the_http_probe_wants_a_200() -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=answer["status"])

    answer = {"status": 200}
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.3", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await r.probe_http_healthz("127.0.0.3", port, 1.0)
        answer["status"] = 503
        with pytest.raises(ValueError, match="503"):
            await r.probe_http_healthz("127.0.0.3", port, 1.0)
    finally:
        await runner.cleanup()


async def test_a_lone_replica_is_probed_only_while_down(echoes: list[EchoReplica]) -> None:
    port = echoes[0].port
    replicas = replica_set(Names(ADDRESSES[:1]), port, probe=r.probe_tcp_echo)
    await replicas.refresh()
    await replicas.probe_all(timeout=1.0)
    assert echoes[0].echoed == 0  # nothing to choose between: no traffic of its own
    replicas.failed("127.0.0.2", "refused")
    await replicas.probe_all(timeout=1.0)
    assert echoes[0].echoed == 1
    assert replicas.up() == ["127.0.0.2"]


def test_url_host_brackets_ipv6() -> None:
    assert r.url_host("10.0.1.5") == "10.0.1.5"
    assert r.url_host("fd00::5") == "[fd00::5]"


# ---- the front's clients over several replicas


async def test_the_tcp_pool_keeps_connections_per_replica_and_fails_over(
    echoes: list[EchoReplica],
) -> None:
    port = echoes[0].port
    names = Names(ADDRESSES)
    pool = TcpEchoPool("tcp-echo", port, size=8, replicas=replica_set(names, port))
    try:
        for i in range(30):
            assert await pool.echo(f"m{i}".encode()) == f"m{i}".encode()
        assert [server.echoed for server in echoes] == [10, 10, 10]
        assert pool.opened == 3  # one pooled connection per replica, reused
        await echoes[1].stop()  # its pooled connection is reset, its port closed
        results = await asyncio.gather(*(pool.echo(f"k{i}".encode()) for i in range(30)))
        assert results == [f"k{i}".encode() for i in range(30)]  # not one failed call
        assert pool.replicas.up() == ["127.0.0.2", "127.0.0.4"]
        names.addresses = ["127.0.0.2"]  # scaled down: .4's idle connections go
        await pool.replicas.refresh()
        assert await pool.echo(b"last") == b"last"
        assert {owner for owner, _ in pool._idle} == {"127.0.0.2"}
        assert len(pool._idle) <= 8
    finally:
        await pool.close()


async def test_the_udp_pool_spreads_and_leaves_a_refusing_replica() -> None:
    loop = asyncio.get_running_loop()
    first, a = await loop.create_datagram_endpoint(Counting, local_addr=("127.0.0.2", 0))
    port = first.get_extra_info("sockname")[1]
    second, b = await loop.create_datagram_endpoint(Counting, local_addr=("127.0.0.3", port))
    replicas = ReplicaSet("udp-echo", "udp-echo", port, resolve=Names(ADDRESSES[:2]))
    pool = UdpEchoPool("udp-echo", port, 4, try_timeout=0.5, retries=1, replicas=replicas)
    try:
        for i in range(10):
            assert await pool.echo(f"d{i}".encode()) == f"d{i}".encode()
        assert (a.received, b.received) == (5, 5)
        second.close()  # .3 now answers with ICMP port unreachable
        for i in range(10):
            assert await pool.echo(f"e{i}".encode()) == f"e{i}".encode()
        assert replicas.up() == ["127.0.0.2"]
    finally:
        await pool.close()
        first.close()


async def test_the_resolver_client_spreads_its_calls_and_fails_over() -> None:
    received: dict[str, int] = {"127.0.0.2": 0, "127.0.0.3": 0}
    runners = []

    async def resolve(request: web.Request) -> web.Response:
        received[request.host.split(":")[0]] += 1
        body = await request.json()
        return web.json_response({"results": [], "elapsed_ms": 0.1, "mode": body["mode"]})

    port = 0
    for address in received:
        app = web.Application()
        app.router.add_post("/resolve", resolve)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, address, port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        runners.append(runner)
    replicas = ReplicaSet("resolver", "resolver", port, resolve=Names(ADDRESSES[:2]))
    client = ResolverClient("resolver", port, limit=8, replicas=replicas)
    request = {"names": [], "timeout": 1.0, "mode": "concurrent"}
    try:
        for _ in range(10):
            assert (await client.resolve(request))["mode"] == "concurrent"
        assert received == {"127.0.0.2": 5, "127.0.0.3": 5}
        await runners.pop().cleanup()  # .3 stops
        for _ in range(10):
            await client.resolve(request)
        assert received["127.0.0.2"] == 15
        assert replicas.up() == ["127.0.0.2"]
    finally:
        await client.close()
        for runner in runners:
            await runner.cleanup()


class Counting(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


def test_the_replica_sets_follow_web_max_replicas() -> None:
    sets = replica_sets(WebConfig.from_env({"WEB_MAX_REPLICAS": "3"}))
    assert list(sets) == ["tcp-echo", "udp-echo", "resolver", "dns"]
    assert {s.max_replicas for s in sets.values()} == {3}
    assert sets["dns"].probe is r.probe_dns


async def test_the_tcp_connect_is_bounded_apart_from_the_call() -> None:
    # a listener that never accepts, its backlog full: the kernel drops further SYNs, so a
    # connect hangs as it does to a replica that vanished without a reset
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.2", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.2", port))
        replicas = ReplicaSet("tcp-echo", "tcp-echo", port, resolve=Names(["127.0.0.2"]))
        pool = TcpEchoPool("tcp-echo", port, 1, replicas, connect_timeout=0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        # a connection error, not a timeout: the front answers 503 at once, never the 504
        # of a backend that is merely slow (a stopped container's address, in the stack)
        with pytest.raises(ReplicaUnreachable):
            await asyncio.wait_for(pool.echo(b"x"), 5.0)
        assert loop.time() - start < 2.0
        assert replicas.snapshot()["replicas"][0]["state"] == "down"


async def test_the_resolver_connect_is_bounded_apart_from_the_call() -> None:
    # as above, for the resolver's HTTP client: before, its connect had no bound of its own
    # and a vanished replica's address held the call until the front's 504
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.2", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.2", port))
        replicas = ReplicaSet("resolver", "resolver", port, resolve=Names(["127.0.0.2"]))
        client = ResolverClient("resolver", port, limit=2, replicas=replicas, connect_timeout=0.2)
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(ReplicaUnreachable):
                await asyncio.wait_for(client.resolve({"names": ["www.polyloop.test"]}), 5.0)
            assert loop.time() - start < 2.0
            assert replicas.snapshot()["replicas"][0]["state"] == "down"
        finally:
            await client.close()


async def test_a_flapping_replica_cannot_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    replicas = ReplicaSet(
        "tcp-echo", "tcp-echo", 8000, resolve=Names(ADDRESSES[:1]), clock=lambda: now[0]
    )
    await replicas.refresh()
    with caplog.at_level("INFO", logger=r.__name__):
        for _ in range(1000):  # down and back up, a thousand times within one second
            replicas.failed("127.0.0.2", "refused")
            replicas.succeeded("127.0.0.2")
        now[0] += 1.5
        replicas.failed("127.0.0.2", "refused")
    changes = [rec for rec in caplog.records if rec.getMessage().startswith("replica ")]
    assert len(changes) == 2
    assert changes[1].changes_not_logged == 1999  # type: ignore[attr-defined]
    assert replicas.snapshot()["replicas"][0]["failures"] == 1001


async def test_the_resolver_urls_parsed_once_stay_few() -> None:
    """Each replica's ``POST /resolve`` URL is parsed once; a set that keeps changing
    (addresses by the hundred) never holds more than ``MAX_KEPT_URLS`` of them."""
    from services.web.backends.resolver import MAX_KEPT_URLS

    client = ResolverClient("resolver", 8053, limit=2)
    try:
        assert str(client._resolve_url("127.0.0.2")) == "http://127.0.0.2:8053/resolve"
        assert str(client._resolve_url("::1")) == "http://[::1]:8053/resolve"
        assert client._resolve_url("127.0.0.2") is client._resolve_url("127.0.0.2")
        for i in range(3 * MAX_KEPT_URLS):
            client._resolve_url(f"10.0.{i // 250}.{i % 250}")
        assert 0 < len(client._resolve_urls) <= MAX_KEPT_URLS
    finally:
        await client.close()
