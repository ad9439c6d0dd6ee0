"""Names in, results out: the book's ``spawn(socket.gethostbyname, url)`` + ``joinall``.

``Resolver.resolve_many(names, timeout, mode)`` answers one result per name, in request
order: ``{"name", "addresses", "error", "elapsed_ms"}``. In ``concurrent`` mode every name
is a greenlet of a ``gevent.pool.Pool`` and the batch is ``joinall(jobs, timeout=...)``
exactly like the book; a name still unresolved at the timeout gets ``"error": "timeout"``
(its greenlet is killed) while the others keep their answers. ``sequential`` mode resolves
one name after the other, each with what is left of the same time budget.

Every request shares the service's lookup slots (``max_lookups``, ``RESOLVER_MAX_LOOKUPS``):
a name that needs a question waits for one, and a name that never got one before its
deadline is ``"overloaded"``, not ``"timeout"``. Cached answers and refused names take no
slot. How one name is looked up is ``lookup.py``; how a question is sent, ``backends.py``;
the ``error`` codes are ``backends.ERRORS``.

Try it: ``curl -s localhost:8053/resolve -d '{"names": ["www.polyloop.test"]}'``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Sequence
from typing import Any

import gevent
from gevent.lock import BoundedSemaphore
from gevent.monkey import get_original
from gevent.pool import Pool

from services.common.faults import Faults
from services.resolver.backends import RETRY_AFTER, NativeSocket, ResolveError, ask
from services.resolver.lookup import Lookups

log = logging.getLogger(__name__)

MODES = ("concurrent", "sequential")

Result = dict[str, Any]


class Resolver:
    """Resolves batches of names; one per process, shared by every request.

    ``dns_ip`` must be an IP address (see ``server_address``); ``backend`` is ``dnspython``
    or ``threadpool`` (``backends.py``); ``pool_size`` bounds the names of one request in
    flight, ``max_lookups`` those of every request together; ``external`` lets names
    outside the zone go to the system resolver; ``retry_after``: see ``backends.Heard``.
    """

    def __init__(
        self,
        dns_ip: str,
        dns_port: int,
        *,
        backend: str = "dnspython",
        pool_size: int = 256,
        cache_size: int = 0,
        max_lookups: int = 256,
        external: bool = False,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self.backend = backend
        self.pool_size = pool_size
        self.lookups = Lookups(
            dns_ip,
            dns_port,
            backend=backend,
            cache_size=cache_size,
            external=external,
            retry_after=retry_after,
        )
        self.slots = BoundedSemaphore(max_lookups)
        self.lookups_in_flight = 0  # a plain count, read by the metrics collector
        # off and empty; the loop's start (services.common.loops) gives it the hub's hooks
        self.faults = Faults(blockers={"sync_dns": self.block_with_sync_dns})

    def resolve_many(
        self, names: Sequence[str], timeout: float, mode: str = "concurrent"
    ) -> list[Result]:
        """One result per name, in order, within ``timeout`` seconds whatever happens."""
        # a fault sends every batch through _timed, where it applies per name
        answered = None if self.faults.active else self._answered(names)
        if answered is not None:
            return answered
        batch = _Batch(names, time.monotonic() + timeout)
        if mode == "sequential":
            self._sequential(batch)
        else:
            self._concurrent(batch)
        return [batch.outcome(index) for index in range(len(names))]

    def _answered(self, names: Sequence[str]) -> list[Result] | None:
        """Every name's result when none needs a question (all cached or refused), else None.

        Such a batch is answered here, in the request's greenlet: a pool, a greenlet per
        name and a ``joinall`` cost about twice the rest of the request, for answers that
        are already known. Any name that needs a question sends the whole batch the book's
        way, so the demo's delays and timeouts always go through ``spawn`` + ``joinall``."""
        results = []
        for name in names:
            started = time.monotonic()
            try:
                addresses = self.lookups.known(name)
            except ResolveError as exc:
                results.append(_result(name, [], exc.code, started))
                continue
            if addresses is None:
                return None
            results.append(_result(name, addresses, None, started))
        return results

    def _concurrent(self, batch: _Batch) -> None:
        pool = Pool(self.pool_size)
        try:
            for index, name in enumerate(batch.names):
                # a full pool makes spawn wait: never past the deadline
                if not pool.wait_available(timeout=batch.left()):
                    break
                batch.jobs.append(pool.spawn(self._timed, batch, index, name))
            gevent.joinall(batch.jobs, timeout=batch.left())
        finally:
            # the unfinished ones, at the timeout (or when this request itself is killed)
            pool.kill(block=True, timeout=1)

    def _sequential(self, batch: _Batch) -> None:
        for index, name in enumerate(batch.names):
            if batch.left() <= 0:
                break
            job = gevent.spawn(self._timed, batch, index, name)
            batch.jobs.append(job)
            try:
                job.join(timeout=batch.left())
            finally:
                job.kill(block=True, timeout=1)  # a no-op when it finished in time

    def _timed(self, batch: _Batch, index: int, name: str) -> Result:
        batch.started[index] = time.monotonic()
        if self.faults.active:
            spec = self.faults.current()
            if spec is not None and self.faults.should_fail(spec):
                return _result(name, [], "fault", batch.started[index])
            if spec is not None and spec.latency_ms:
                # the hub's own timer: this greenlet waits, every other one runs
                gevent.sleep(min(spec.latency_s, max(0.0, batch.left())))
        try:
            addresses = self.lookups.known(name)
            if addresses is None:
                addresses = self._asked(batch, index, name)
        except ResolveError as exc:
            return _result(name, [], exc.code, batch.started[index])
        return _result(name, addresses, None, batch.started[index])

    def _asked(self, batch: _Batch, index: int, name: str) -> list[str]:
        # a free slot at once: whatever happens next, the service was not overloaded
        waited = not self.slots.acquire(blocking=False)
        if waited:
            batch.queued.add(index)
            acquired = self.slots.acquire(timeout=max(0.0, batch.left()))
            batch.queued.discard(index)
            if not acquired:
                raise ResolveError("overloaded")
        if batch.left() <= 0:
            # never asked: its budget was spent before a slot was free (a slot that came free
            # only at the deadline: overloaded), or before it even began (a timeout of
            # 5e-324 s is spent on arrival: a timeout, never overload)
            self.slots.release()
            raise ResolveError("overloaded" if waited else "timeout")
        self.lookups_in_flight += 1
        try:
            return self.lookups.ask(name, batch.deadline)
        finally:
            self.lookups_in_flight -= 1
            self.slots.release()

    def block_with_sync_dns(self, seconds: float) -> None:
        """Block the hub on a DNS lookup through the un-patched socket module: gevent's
        classic mistake, as a ``block_kind`` of the block fault.

        The question is ``x.delay-N.polyloop.test`` (N = ``seconds`` in ms), which the
        stack's own dns service answers after N ms, asked over a real blocking socket
        IN the hub: no other greenlet runs until the answer (or ``seconds`` + 1 s) comes.
        """
        name = f"x.delay-{round(seconds * 1000)}.polyloop.test"
        server, family = self.lookups.server
        try:
            ask(NativeSocket, server, family, name, "A", time.monotonic() + seconds + 1.0)
        except ResolveError as exc:
            log.warning("sync_dns block: no answer", extra={"name": name, "error": exc.code})

    # -- where the zone's questions go --------------------------------------------------

    @property
    def dns_ip(self) -> str:
        return self.lookups.dns_ip

    def use_server(self, dns_ip: str) -> None:
        """Ask the zone's questions of ``dns_ip`` from now on (the dns service moved)."""
        self.lookups.use_server(dns_ip)


class _Batch:
    """One request's names, deadline and greenlets, and what became of each name."""

    def __init__(self, names: Sequence[str], deadline: float) -> None:
        self.names = names
        self.deadline = deadline
        self.jobs: list[gevent.Greenlet] = []
        self.started: dict[int, float] = {}
        self.queued: set[int] = set()  # waiting for a lookup slot

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def outcome(self, index: int) -> Result:
        name = self.names[index]
        job = self.jobs[index] if index < len(self.jobs) else None
        if job is not None and isinstance(job.value, dict):
            return job.value
        if job is not None and job.exception is not None:
            log.error("lookup crashed", extra={"name": name, "error": repr(job.exception)})
            return _result(name, [], "error", self.started.get(index))
        # killed at the deadline: still waiting for a slot, or for its answer
        error = "overloaded" if index in self.queued else "timeout"
        return _result(name, [], error, self.started.get(index))


def server_address(host: str, port: int) -> str:
    """``host`` as an IP address: a literal as is, a name through the system resolver once.

    Called at start, before serving: the backends want an IP nameserver, and compose
    names the dns service ``dns``.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    infos = get_original("socket", "getaddrinfo")(host, port, 0, socket.SOCK_DGRAM)
    # IPv4 first: "localhost" may list ::1 first while the dns service binds 127.0.0.1
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


def _result(name: str, addresses: list[str], error: str | None, started: float | None) -> Result:
    elapsed = 0.0 if started is None else time.monotonic() - started
    return {
        "name": name,
        "addresses": addresses,
        "error": error,
        "elapsed_ms": round(elapsed * 1000, 1),
    }
