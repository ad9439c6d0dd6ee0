"""Every replica of a backend, found by resolving its service name, and calls spread over them.

Compose (``docker compose up --scale tcp-echo=3``) and Swarm (``endpoint_mode: dnsrr``, or
the name ``tasks.<service>`` in any mode) answer a service name with the address of every
running replica. A ``ReplicaSet`` keeps those addresses: ``refresh()`` resolves the name
again (the ``ReplicaWatcher`` does it every ``WEB_REPLICA_REFRESH`` seconds and probes
every replica with its protocol's own question), ``pick()`` hands out the replicas that are
up in turn, and a call's outcome is reported back: ``failed()`` takes a replica out at
once, ``succeeded()`` (or an answered probe) puts it back. ``call_on_replica`` wraps one
idempotent call: it runs on the next replica and, when that one fails at the network
level, once more on another replica that is up.

With a single address (the local-process mode's ``127.0.0.1``) everything behaves as a
plain client of that address: when no replica is up, the call is tried anyway (so the
caller gets the real, fast failure), and when the name resolves to nothing the call fails
at once with ``ConnectionRefusedError`` (a fast 503, never a hang).

Try it: ``docker compose up -d --scale tcp-echo=3`` (without tcp-echo's host port, see the
README), then ``curl -s http://127.0.0.1:8080/readyz`` lists three tcp-echo replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from services.common import dns_probe, probes

T = TypeVar("T")
Resolve = Callable[[str, int], Awaitable[list[str]]]
Probe = Callable[[str, int, float], Awaitable[None]]

# defaults of WEB_REPLICA_REFRESH, WEB_MAX_REPLICAS, WEB_CONNECT_TIMEOUT (services/web/config.py)
REFRESH_EVERY = 2.0
MAX_REPLICAS = 64
CONNECT_TIMEOUT = 1.0
# what the echo probes send: marked as the stack's own, so the echo services never count
# it as served (services.common.probes)
PING = probes.marked(b"ping")


class ReplicaUnreachable(ConnectionError):
    """No connection to a replica within the connect timeout: its address is gone (a
    stopped container keeps its place in the set until the next refresh) or it is silent.
    A connection error, not a timeout: the call fails fast as 503 unavailable, and
    ``call_on_replica`` takes the replica out and tries another."""

    def __init__(self, address: str, port: int, timeout: float) -> None:
        super().__init__(f"no connection to {address}:{port} within {timeout:g} s")


LOG_EVERY = 1.0  # seconds between two logged state changes of one replica

log = logging.getLogger(__name__)


@dataclass
class Replica:
    """One address of a backend and what the front knows of it."""

    address: str
    state: str = "up"  # "up" | "down": new replicas are trusted until a call or probe fails
    calls: int = 0  # calls the front sent it (ok or not), probes excluded
    failures: int = 0
    error: str | None = None
    changed: float = 0.0  # monotonic time of the last state change
    logged: float = float("-inf")  # when a state change was last logged
    unlogged: int = 0  # state changes since then, not logged (a flapping replica)

    def snapshot(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": self.state,
            "calls": self.calls,
            "failures": self.failures,
            "error": self.error,
        }


async def resolve_all(host: str, port: int, socktype: int = socket.SOCK_STREAM) -> list[str]:
    """Every address `host` resolves to, deduplicated, in the resolver's order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socktype)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class ReplicaSet:
    """The replicas of one backend (``service``), reached at ``host:port``."""

    def __init__(
        self,
        service: str,
        host: str,
        port: int,
        *,
        probe: Probe | None = None,
        socktype: int = socket.SOCK_STREAM,
        max_replicas: int = MAX_REPLICAS,
        resolve: Resolve | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.probe = probe
        self.max_replicas = max_replicas
        self._resolve = resolve or (lambda h, p: resolve_all(h, p, socktype))
        self._clock = clock
        self._replicas: dict[str, Replica] = {}
        self._turn = 0
        self._resolved = False
        self.resolve_error: str | None = None
        self.changes = 0  # refreshes that added or removed a replica (pools purge on it)

    @property
    def addresses(self) -> list[str]:
        return list(self._replicas)

    def up(self) -> list[str]:
        return [r.address for r in self._replicas.values() if r.state == "up"]

    def __contains__(self, address: object) -> bool:
        return address in self._replicas

    async def refresh(self) -> list[str]:
        """Resolve the name again: new addresses join (up), vanished ones leave.

        A name that no longer resolves (compose removes a stopped container's name)
        empties the set; other resolver errors keep the last known set.
        """
        try:
            found = await self._resolve(self.host, self.port)
        except socket.gaierror as exc:
            found = [] if exc.errno in (socket.EAI_NONAME, socket.EAI_NODATA) else None
            self.resolve_error = str(exc.strerror or exc)
        except OSError as exc:
            found, self.resolve_error = None, str(exc)
        else:
            self.resolve_error = None
        if found is None:
            return self.addresses
        # sorted, so that the replicas kept past the bound are the same on every refresh
        found = sorted(dict.fromkeys(found), key=_sort_key)[: self.max_replicas]
        now = self._clock()
        replicas = {a: self._replicas.get(a) or Replica(a, changed=now) for a in found}
        added = replicas.keys() - self._replicas.keys()
        removed = self._replicas.keys() - replicas.keys()
        self._replicas = replicas
        self._resolved = True
        if added or removed:
            self.changes += 1
            log.info(
                "replicas changed",
                extra={
                    "service": self.service,
                    "replicas": len(replicas),
                    "added": sorted(added, key=_sort_key),
                    "removed": sorted(removed, key=_sort_key),
                },
            )
        return self.addresses

    @property
    def ready(self) -> bool:
        """Resolved at least once, with at least one replica: ``pick()`` has one to give."""
        return self._resolved and bool(self._replicas)

    async def choose(self) -> str:
        """The next replica for a call, resolving first if the set was never filled or is empty.

        Raises ``ConnectionRefusedError`` when the name resolves to no address.
        """
        if not self._resolved or not self._replicas:
            await self.refresh()
        return self.pick()

    def pick(self, avoid: Iterable[str] = ()) -> str:
        """Round-robin over the replicas that are up (all of them when none is), minus `avoid`."""
        if not avoid and len(self._replicas) == 1:
            # one replica (every local stack, an unscaled compose one): no round to make
            (replica,) = self._replicas.values()
            replica.calls += 1
            return replica.address
        skip = set(avoid)
        candidates = [a for a in self.up() if a not in skip]
        if not candidates and not skip:
            candidates = self.addresses  # none is up: try anyway, the call tells the truth
        if not candidates:
            raise ConnectionRefusedError(f"{self.service}: no replica left to try")
        self._turn = (self._turn + 1) % (1 << 30)
        address = candidates[self._turn % len(candidates)]
        self._replicas[address].calls += 1
        return address

    def succeeded(self, address: str) -> None:
        replica = self._replicas.get(address)
        if replica is not None and replica.state != "up":
            self._set(replica, "up", None)

    def failed(self, address: str, error: BaseException | str) -> None:
        """Take the replica out at once; a later answered call or probe puts it back."""
        replica = self._replicas.get(address)
        if replica is None:
            return
        replica.failures += 1
        replica.error = error if isinstance(error, str) else _describe(error)
        if replica.state != "down":
            self._set(replica, "down", replica.error)

    async def probe_all(self, timeout: float) -> None:
        """Ask the replicas the protocol's question concurrently (no-op without a probe):
        every one when there are several (the front chooses among them), else only a
        replica that is down (to put it back): a single backend gets no extra traffic."""
        if self.probe is None:
            return
        probe = self.probe
        addresses = self.addresses
        if len(addresses) < 2:
            addresses = [a for a in addresses if self._replicas[a].state == "down"]

        async def one(address: str) -> None:
            try:
                async with asyncio.timeout(timeout):
                    await probe(address, self.port, timeout)
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
                self.failed(address, exc)
            else:
                self.succeeded(address)

        await asyncio.gather(*(one(a) for a in addresses))

    def snapshot(self) -> dict[str, Any]:
        """``{"count", "up", "replicas": [{"address", "state", "calls", "failures", "error"}]}``."""
        replicas = [r.snapshot() for r in self._replicas.values()]
        return {
            "count": len(replicas),
            "up": sum(r["state"] == "up" for r in replicas),
            "replicas": replicas,
        }

    def _set(self, replica: Replica, state: str, error: str | None) -> None:
        replica.state = state
        replica.error = error
        replica.changed = now = self._clock()
        # one line per replica per LOG_EVERY at most: a flapping one cannot flood the log
        if now - replica.logged < LOG_EVERY:
            replica.unlogged += 1
            return
        log.info(
            "replica " + state,
            extra={
                "service": self.service,
                "address": replica.address,
                "error": error,
                "changes_not_logged": replica.unlogged,
            },
        )
        replica.logged, replica.unlogged = now, 0


async def call_on_replica(
    replicas: ReplicaSet,
    attempt: Callable[[str], Awaitable[T]],
    retry_on: tuple[type[BaseException], ...] = (OSError, EOFError),
) -> T:
    """Run the idempotent `attempt(address)` on the next replica; on a network failure take
    that replica out and try once more on another one that is up (if there is one)."""
    # resolved and not empty (every call but the first): no coroutine for choose()
    address = replicas.pick() if replicas.ready else await replicas.choose()
    try:
        result = await attempt(address)
    except retry_on as exc:
        replicas.failed(address, exc)
        if not [a for a in replicas.up() if a != address]:
            raise
        other = replicas.pick(avoid=[address])
        try:
            result = await attempt(other)
        except retry_on as again:
            replicas.failed(other, again)
            raise
        replicas.succeeded(other)
        return result
    replicas.succeeded(address)
    return result


class ReplicaWatcher:
    """Refreshes and probes a few ``ReplicaSet``s every `every` seconds, in one task."""

    def __init__(self, sets: Iterable[ReplicaSet], *, every: float, probe_timeout: float) -> None:
        self.sets = list(sets)
        self.every = every
        self.probe_timeout = probe_timeout
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0  # completed refresh rounds, for tests and logs

    async def once(self) -> None:
        await asyncio.gather(*(s.refresh() for s in self.sets))
        await asyncio.gather(*(s.probe_all(self.probe_timeout) for s in self.sets))
        self.rounds += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while True:
            try:
                await self.once()
            except Exception:  # a bug here must not stop the refreshes for good
                log.exception("replica refresh failed")
            next_round = max(next_round + self.every, loop.time())
            await asyncio.sleep(next_round - loop.time())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="replica-watcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# ---- the protocols' own questions, asked of one replica


async def probe_tcp_echo(address: str, port: int, timeout: float) -> None:
    """A fresh connection echoes ``PING`` (a connection of its own: the mark opens it)."""
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(PING)
        await writer.drain()
        if await reader.readexactly(len(PING)) != PING:
            raise ValueError("the echo differs")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def probe_udp_echo(address: str, port: int, timeout: float) -> None:
    """One datagram ``PING`` comes back unchanged (a lost one is sent again, up to 3 tries)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _OneReply, remote_addr=(address, port)
    )
    try:
        for attempt in range(3):
            transport.sendto(PING)
            try:
                reply = await asyncio.wait_for(asyncio.shield(protocol.reply), timeout / 3)
            except TimeoutError:
                if attempt == 2:
                    raise
                continue
            if reply != PING:
                raise ValueError("the echo differs")
            return
    finally:
        transport.close()


async def probe_http_healthz(address: str, port: int, timeout: float) -> None:
    """``GET /healthz`` answers 200 (HTTP/1.0 over a raw stream: no session to keep)."""
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(b"GET /healthz HTTP/1.0\r\nHost: replica\r\n\r\n")
        await writer.drain()
        status = await reader.readline()
        if status.split(b" ")[1:2] != [b"200"]:
            raise ValueError(f"/healthz answered {status[:40]!r}")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def probe_dns(address: str, port: int, timeout: float) -> None:
    """The stack's DNS question (``services.common.dns_probe``) gets its right answer."""
    wrong = await dns_probe.ask_async(address, port, timeout)
    if wrong is not None:
        raise ValueError(wrong)


def url_host(address: str) -> str:
    """The address as it goes in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def _sort_key(address: str) -> tuple[int, int | str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (2, address)
    return (ip.version, int(ip))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)[:200] or type(exc).__name__
