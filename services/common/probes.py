"""The stack's own traffic, marked: what a service counts apart from what it served to others.

The front's steady client and readiness probes, its replica watcher and every container
healthcheck talk to the services all the time. A service counts that traffic in
``polyloop_probes_total`` and never in ``polyloop_requests_total`` (the dashboard's
SERVED), so an idle stack shows 0.0/s everywhere. Each protocol carries the mark its own
way, where recognising it costs nothing on the hot path:

- TCP echo: a connection whose FIRST bytes are ``MARK`` (decided once, on its first chunk);
- UDP echo: a datagram that starts with ``MARK`` (one byte compared per datagram: a real
  datagram seldom starts with NUL, and only those are looked at further);
- DNS: a question for ``NAME`` (its records live a day, so a resolver answers it from its
  cache: the resolver's probe measures the gevent hub, not the dns service behind it);
- the resolver: a ``POST /resolve`` that asks for ``NAME`` alone;
- the front: ``GET /api/ping`` (``services.web.routes``), its steady client's route.

Anyone may send the mark: it only moves their traffic from one counter to the other.

Try it (tcp-echo on 8000): ``printf '\\0polyloop-probe\\0hi' | nc -N 127.0.0.1 8000``, then
``curl -s 127.0.0.1:9101/metrics | grep -E 'polyloop_(probes|requests)_total'``.
"""

from __future__ import annotations

MARK = b"\x00polyloop-probe\x00"
# the zone's record for it (services/dns/make_zone.py) answers ADDRESS, like www
NAME = "probe.polyloop.test"
ADDRESS = "192.0.2.10"
NAME_BYTES = NAME.encode("ascii")


def marked(payload: bytes) -> bytes:
    """``payload`` with the mark in front: a probe datagram, or a probe connection's opening."""
    return MARK + payload


def is_marked(data: bytes) -> bool:
    return data.startswith(MARK)


def is_probe_name(name: bytes | str) -> bool:
    """A DNS question or a resolver request for ``NAME`` (any case, with or without the root
    dot)."""
    if isinstance(name, str):
        name = name.encode("ascii", "replace")
    return name.rstrip(b".").lower() == NAME_BYTES
