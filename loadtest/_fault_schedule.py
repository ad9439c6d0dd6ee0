"""``LOAD_FAULTS``: a schedule of faults a load run sets through the front (issue 11).

A ``;``-separated list of ``service@start+duration:field=value,field=value``, seconds from
the run's start, e.g.::

    LOAD_FAULTS="resolver@10+20:block_ms=500,block_every_second=true;dns@40+10:fail_percent=30"

``service`` is one of the front's (tcp-echo, udp-echo, dns, resolver, web); the fields
are ``PUT /api/faults/{service}``'s, validated here by the same code the services use, so
a typo stops the run before any load is sent. Pure: importable without Locust.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.faults import MAX_DURATION_S, FaultError, FaultSpec, parse_spec

SERVICES = ("tcp-echo", "udp-echo", "dns", "resolver", "web")
MAX_ENTRIES = 32  # a schedule longer than this is a mistake, not a test plan


@dataclass(frozen=True)
class ScheduledFault:
    service: str
    start: float  # seconds after the run's start
    spec: FaultSpec  # its duration_s is the entry's duration

    def body(self) -> dict:
        """The JSON of ``PUT /api/faults/{service}``."""
        spec = self.spec
        return {
            "block_ms": spec.block_ms,
            "block_every_second": spec.block_every_second,
            "latency_ms": spec.latency_ms,
            "fail_percent": spec.fail_percent,
            "duration_s": spec.duration_s,
        }


def parse_schedule(text: str) -> list[ScheduledFault]:
    """The schedule, in start order; ``ValueError`` names the entry and what is wrong."""
    entries = [part.strip() for part in text.split(";") if part.strip()]
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"LOAD_FAULTS: at most {MAX_ENTRIES} entries")
    schedule = [_entry(entry) for entry in entries]
    return sorted(schedule, key=lambda fault: fault.start)


def _entry(entry: str) -> ScheduledFault:
    head, _, fields = entry.partition(":")
    service, _, when = head.partition("@")
    start_text, _, duration_text = when.partition("+")
    service = service.strip()
    if service not in SERVICES:
        raise ValueError(f"LOAD_FAULTS {entry!r}: service must be one of {', '.join(SERVICES)}")
    try:
        start = float(start_text)
        duration = float(duration_text)
    except ValueError:
        raise ValueError(f"LOAD_FAULTS {entry!r}: expected service@start+duration:...") from None
    if not 0 <= start <= 86400 or not 1 <= duration <= MAX_DURATION_S:
        raise ValueError(f"LOAD_FAULTS {entry!r}: start 0..86400 s, duration 1..600 s")
    data: dict[str, object] = {"duration_s": duration}
    for pair in filter(None, (p.strip() for p in fields.split(","))):
        name, _, value = pair.partition("=")
        data[name.strip()] = _value(value.strip())
    try:
        spec = parse_spec(data)
    except FaultError as exc:
        raise ValueError(f"LOAD_FAULTS {entry!r}: {exc}") from None
    if spec.empty:
        raise ValueError(f"LOAD_FAULTS {entry!r}: no fault (block_ms, latency_ms, fail_percent)")
    return ScheduledFault(service, start, spec)


def _value(text: str) -> object:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # parse_spec names the field that wanted a number
