"""Names in, results out: the book's ``spawn(socket.gethostbyname, url)`` + ``joinall``.

``Resolver.resolve_many(names, timeout, mode)`` answers one result per name, in request
order: ``{"name", "addresses", "error", "elapsed_ms"}``. In ``concurrent`` mode every name
is a greenlet of a ``gevent.pool.Pool`` and the batch is ``joinall(jobs, timeout=...)``
exactly like the book; a name still unresolved at the timeout gets ``"error": "timeout"``
(its greenlet is killed) while the others keep their answers. ``sequential`` mode resolves
one name after the other, each with what is left of the same time budget.

Errors: ``null`` (resolved), ``"timeout"``, ``"not_found"`` (NXDOMAIN / no such host),
``"no_address"`` (the name exists but has no A/AAAA), ``"refused"`` (the server refused),
``"servfail"``, ``"temporary_failure"`` (the system resolver's EAI_AGAIN), ``"unreachable"``
(socket error), ``"error"`` (anything else).

Where names go, and why this resolver:

* names under ``polyloop.test`` are asked of the stack's ``dns`` service with a
  ``dns.resolver.Resolver(configure=False)`` whose only nameserver is an IP address (the
  host name in ``DNS_HOST`` is resolved once at start: a host name as nameserver can hang
  gevent's resolvers). ``monkey.patch_all()`` makes its UDP sockets cooperative, so each
  query is a greenlet waiting on the event loop (A and AAAA side by side): 200 names are
  400 sockets in flight at once, not ten.
* other names go to the system resolver through ``gevent.socket.getaddrinfo``, i.e. the
  hub's resolver, chosen with ``GEVENT_RESOLVER=dnspython`` (set by ``__main__`` before the
  hub exists). gevent's default, ``thread``, runs each ``getaddrinfo`` in the hub's thread
  pool (10 threads), so past ten names the lookups queue; ``dnspython`` is cooperative and,
  per gevent's docs, "tends to scale well as more concurrent resolutions are attempted",
  while ``ares`` is documented as usually much slower than it. It still reads
  ``/etc/resolv.conf`` and ``/etc/hosts``, so compose's embedded DNS keeps working.

``RESOLVER_BACKEND=threadpool`` runs the very same zone query as a blocking socket call in
the hub's thread pool instead (and system names through the C ``getaddrinfo`` there): what
gevent does by default. Measured on a 2-CPU machine shared with other busy processes (load
average 4.5-7), the dns service local, one concurrent request of 200 distinct names
``X.delay-100.polyloop.test`` (two queries each, A and AAAA), server-side ``elapsed_ms``:
``dnspython`` 0.30-0.50 s at load 4.5 (up to 0.74 s at load 7; 0.23 s in-process on a
quieter machine), ``threadpool`` 4.2-4.4 s -- ten threads, 400 queries of 100 ms, 40
waves. The service spends ~0.25 s of CPU on such a request (dnspython building and
parsing 400 messages), so its wall time follows the machine's load.

Try it: ``curl -s localhost:8053/resolve -d '{"names": ["www.polyloop.test"]}'``.
"""

from __future__ import annotations

import _socket
import ipaddress
import logging
import socket as stdlib_socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import gevent
import gevent.socket
from gevent import monkey
from gevent.pool import Pool

log = logging.getLogger(__name__)

ZONE = "polyloop.test"
MODES = ("concurrent", "sequential")
RDTYPES = ("A", "AAAA")

# the real socket class, for the thread pool backend: a gevent socket must not block a thread
_NativeSocket = monkey.get_original("socket", "socket")

Result = dict[str, Any]


class ResolveError(Exception):
    """A lookup that ended without addresses; ``code`` is the result's ``error``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def in_zone(name: str) -> bool:
    name = name.rstrip(".").lower()
    return name == ZONE or name.endswith("." + ZONE)


def server_address(host: str, port: int) -> str:
    """``host`` as an IP address: a literal as is, a name through the system resolver once.

    Called at start, before serving: dnspython and gevent's resolvers want an IP
    nameserver, and compose names the dns service ``dns``.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    getaddrinfo = monkey.get_original("socket", "getaddrinfo")
    infos = getaddrinfo(host, port, 0, stdlib_socket.SOCK_DGRAM)
    # IPv4 first: "localhost" may list ::1 first while the dns service binds 127.0.0.1
    infos.sort(key=lambda info: info[0] != stdlib_socket.AF_INET)
    return str(infos[0][4][0])


class Resolver:
    """Resolves batches of names; one per process, shared by every request.

    ``dns_ip`` must be an IP address (see ``server_address``); ``backend`` is
    ``dnspython`` (cooperative sockets) or ``threadpool`` (gevent's default thread pool).
    """

    def __init__(
        self,
        dns_ip: str,
        dns_port: int,
        *,
        backend: str = "dnspython",
        pool_size: int = 256,
        cache_size: int = 0,
    ) -> None:
        self.dns_port = dns_port
        self.backend = backend
        self.pool_size = pool_size
        self.lookups_in_flight = 0
        self._zone = dns.resolver.Resolver(configure=False)
        self._zone.port = dns_port
        self.use_server(dns_ip)
        if cache_size:
            # a resolver keeps answers for their TTL, as any stub resolver in front of a
            # busy service would; the zone's delay-N answers have TTL 0, so the demo's
            # delays and timeouts are never served from here
            self._zone.cache = dns.resolver.LRUCache(cache_size)
        if backend == "threadpool":
            self._ask: Callable[[str, str, float], list[str]] = self._ask_in_thread
            self._system: Callable[[str, float], list[str]] = self._system_in_thread
        else:
            self._ask = self._ask_cooperative
            self._system = self._system_cooperative

    # -- a batch -----------------------------------------------------------------------

    def use_server(self, dns_ip: str) -> None:
        """Ask the zone's questions of ``dns_ip`` from now on (the dns service moved)."""
        address = ipaddress.ip_address(dns_ip)
        self.dns_ip = str(address)
        self._zone.nameservers = [self.dns_ip]
        self._family = stdlib_socket.AF_INET6 if address.version == 6 else stdlib_socket.AF_INET

    def resolve_many(
        self, names: Sequence[str], timeout: float, mode: str = "concurrent"
    ) -> list[Result]:
        """One result per name, in order, within ``timeout`` seconds whatever happens."""
        deadline = time.monotonic() + timeout
        if mode == "sequential":
            return self._sequential(names, deadline)
        return self._concurrent(names, deadline)

    def _concurrent(self, names: Sequence[str], deadline: float) -> list[Result]:
        pool = Pool(self.pool_size)
        started: dict[int, float] = {}
        jobs = []
        try:
            for index, name in enumerate(names):
                # a full pool makes spawn wait: never past the deadline
                if not pool.wait_available(timeout=max(0.0, deadline - time.monotonic())):
                    break
                jobs.append(pool.spawn(self._timed, index, name, deadline, started))
            gevent.joinall(jobs, timeout=max(0.0, deadline - time.monotonic()))
        finally:
            # the unfinished ones, at the timeout (or when this request itself is killed)
            pool.kill(block=True, timeout=1)
        return [self._outcome(i, name, jobs, started) for i, name in enumerate(names)]

    def _sequential(self, names: Sequence[str], deadline: float) -> list[Result]:
        started: dict[int, float] = {}
        jobs = []
        for index, name in enumerate(names):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            job = gevent.spawn(self._timed, index, name, deadline, started)
            jobs.append(job)
            try:
                job.join(timeout=remaining)
            finally:
                job.kill(block=True, timeout=1)  # a no-op when it finished in time
        return [self._outcome(i, name, jobs, started) for i, name in enumerate(names)]

    def _outcome(
        self, index: int, name: str, jobs: list[gevent.Greenlet], started: dict[int, float]
    ) -> Result:
        job = jobs[index] if index < len(jobs) else None
        if job is not None and isinstance(job.value, dict):
            return job.value
        if job is not None and job.exception is not None:
            log.error(
                "lookup crashed",
                extra={"name": name, "error": repr(job.exception)},
            )
            return _result(name, [], "error", started.get(index))
        return _result(name, [], "timeout", started.get(index))

    def _timed(self, index: int, name: str, deadline: float, started: dict[int, float]) -> Result:
        started[index] = time.monotonic()
        self.lookups_in_flight += 1  # a plain count, read by the metrics collector
        try:
            addresses = self.lookup(name, deadline)
        except ResolveError as exc:
            return _result(name, [], exc.code, started[index])
        finally:
            self.lookups_in_flight -= 1
        return _result(name, addresses, None, started[index])

    # -- one name ----------------------------------------------------------------------

    def lookup(self, name: str, deadline: float) -> list[str]:
        """The addresses of ``name`` (IPv4 first), or ``ResolveError``; ends by ``deadline``."""
        if not in_zone(name):
            return self._system(name, deadline)
        # A and AAAA side by side, as getaddrinfo would ask them
        jobs = [gevent.spawn(self._answer, name, rdtype, deadline) for rdtype in RDTYPES]
        try:
            gevent.joinall(jobs)
        finally:
            gevent.killall(jobs)  # when this greenlet is killed at the timeout
        answers = [job.value for job in jobs]
        for answer in answers:
            if isinstance(answer, ResolveError):
                raise answer
        addresses = [address for answer in answers for address in answer]
        if not addresses:
            raise ResolveError("no_address")
        return addresses

    def _answer(self, name: str, rdtype: str, deadline: float) -> list[str] | ResolveError:
        # returned, not raised: a greenlet dying of an exception is printed by the hub
        try:
            return self._ask(name, rdtype, deadline)
        except ResolveError as exc:
            return exc

    def _ask_cooperative(self, name: str, rdtype: str, deadline: float) -> list[str]:
        remaining = _remaining(deadline)
        try:
            answer = self._zone.resolve(
                name, rdtype, search=False, raise_on_no_answer=False, lifetime=remaining
            )
        except dns.resolver.NXDOMAIN:
            raise ResolveError("not_found") from None
        except dns.exception.Timeout:
            raise ResolveError("timeout") from None
        except dns.resolver.NoNameservers as exc:
            rcodes = {error[3] for error in exc.kwargs.get("errors", [])}
            raise ResolveError("refused" if "REFUSED" in rcodes else "servfail") from None
        except OSError:
            raise ResolveError("unreachable") from None
        return [rdata.address for rdata in answer.rrset] if answer.rrset is not None else []

    def _ask_in_thread(self, name: str, rdtype: str, deadline: float) -> list[str]:
        return _in_thread(self._ask_blocking, name, rdtype, deadline)

    def _ask_blocking(self, name: str, rdtype: str, deadline: float) -> list[str]:
        """The same question over a plain blocking socket: runs in a native thread."""
        remaining = _remaining(deadline)  # a queued task may start after its deadline
        query = dns.message.make_query(name, rdtype)
        try:
            with _NativeSocket(self._family, stdlib_socket.SOCK_DGRAM) as sock:
                sock.settimeout(remaining)
                sock.sendto(query.to_wire(), (self.dns_ip, self.dns_port))
                while True:
                    wire, _ = sock.recvfrom(65535)
                    response = dns.message.from_wire(wire)
                    if query.is_response(response):
                        break
        except TimeoutError:
            raise ResolveError("timeout") from None
        except OSError:
            raise ResolveError("unreachable") from None
        except dns.exception.DNSException:
            raise ResolveError("error") from None
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            raise ResolveError("not_found")
        if rcode == dns.rcode.REFUSED:
            raise ResolveError("refused")
        if rcode != dns.rcode.NOERROR:
            raise ResolveError("servfail")
        wanted = dns.rdatatype.from_text(rdtype)
        return [
            rdata.address for rrset in response.answer if rrset.rdtype == wanted for rdata in rrset
        ]

    def _system_cooperative(self, name: str, deadline: float) -> list[str]:
        with gevent.Timeout(_remaining(deadline), ResolveError("timeout")):
            return _addresses(_getaddrinfo(gevent.socket.getaddrinfo, name))

    def _system_in_thread(self, name: str, deadline: float) -> list[str]:
        with gevent.Timeout(_remaining(deadline), ResolveError("timeout")):
            return _addresses(_in_thread(_getaddrinfo, _socket.getaddrinfo, name))


def _in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` in the hub's thread pool, this greenlet waiting cooperatively."""
    outcome = gevent.get_hub().threadpool.apply(_returning, (func, *args))
    if isinstance(outcome, ResolveError):
        raise outcome
    return outcome


def _returning(func: Callable[..., Any], *args: Any) -> Any:
    # returned, not raised: the thread pool prints every exception that leaves a task
    try:
        return func(*args)
    except ResolveError as exc:
        return exc


def _getaddrinfo(getaddrinfo: Callable[..., list], name: str) -> list:
    try:
        return getaddrinfo(name, None, 0, stdlib_socket.SOCK_STREAM)
    except stdlib_socket.gaierror as exc:
        if exc.errno == stdlib_socket.EAI_NONAME:
            raise ResolveError("not_found") from None
        if exc.errno == getattr(stdlib_socket, "EAI_NODATA", None):
            raise ResolveError("no_address") from None
        if exc.errno == stdlib_socket.EAI_AGAIN:
            raise ResolveError("temporary_failure") from None
        raise ResolveError("error") from None
    except OSError:
        raise ResolveError("unreachable") from None


def _addresses(infos: list) -> list[str]:
    # IPv4 first, then IPv6, each once, in the resolver's order
    seen = dict.fromkeys(
        str(info[4][0]) for info in sorted(infos, key=lambda info: info[0] != stdlib_socket.AF_INET)
    )
    return list(seen)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ResolveError("timeout")
    return remaining


def _result(name: str, addresses: list[str], error: str | None, started: float | None) -> Result:
    elapsed = 0.0 if started is None else time.monotonic() - started
    return {
        "name": name,
        "addresses": addresses,
        "error": error,
        "elapsed_ms": round(elapsed * 1000, 1),
    }
