"""Runtime faults: block the loop, add latency, fail a share of the work.

One ``Faults`` per service holds what is active now. It is set from the control port's
thread (``PUT /faults``, ``services.common.control.faults_app``) and read ON the
service's loop, in its hot path, as one plain attribute::

    if self.faults.active:          # False whenever nothing is set: the only cost
        spec = self.faults.current()  # None once the fault has expired

The three faults, each with an intensity, all expiring together after ``duration_s``:

- ``block_ms`` (0..2000): a real blocking call ON the loop, once, or every second while the
  fault lasts (``block_every_second``: one block per second, start to start, on every
  loop). Every client of that service stalls. ``block_kind`` says what blocks, each in a
  function of its own so the stall's stack names it: ``sleep`` (``block_with_sleep``:
  ``time.sleep``, the original, un-patched one in a gevent hub), ``cpu``
  (``block_with_cpu``: pure-Python hashing until the time is up) and, for the resolver
  only, ``sync_dns`` (``Resolver.block_with_sync_dns``: a zone lookup through the
  un-patched socket module, gevent's classic mistake).
- ``latency_ms`` (0..5000): each answer waits that long on the framework's own
  non-blocking timer; everybody else is served meanwhile.
- ``fail_percent`` (0..100): that share of the work fails, the service's own way.

``duration_s`` is 1..600 (default 60): a forgotten fault never leaves the stack broken.
The clock and the random source are injected, so tests drive expiry and ratios without
sleeping. Changing faults needs ``POLYLOOP_ADMIN_TOKEN`` (``Authorization: Bearer ...``,
compared in constant time); with no token configured, changing faults is refused.

Try it (tcp-echo running, the token in .env: ``.venv/bin/python -m devstack token``)::

    curl -s -X PUT -H "Authorization: Bearer $(.venv/bin/python -m devstack token)" \\
        -d '{"latency_ms": 500, "duration_s": 30}' 127.0.0.1:9101/faults
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from services.common.throttle import LogThrottle

log = logging.getLogger(__name__)
# a flood of PUTs sets a fault per request: one line per kind and interval, counting the rest
LOG_INTERVAL = 10.0

MAX_BLOCK_MS = 2000
MAX_LATENCY_MS = 5000
MAX_DURATION_S = 600
DEFAULT_DURATION_S = 60
MAX_BODY = 4096  # bytes of a PUT /faults body; a fault spec is a few dozen

FIELDS = (
    "block_ms",
    "block_every_second",
    "block_kind",
    "latency_ms",
    "fail_percent",
    "duration_s",
)
# what can block a loop; every service has the first two, a service adds its own
# (``Faults(blockers=...)``: the resolver's ``sync_dns``)
BLOCK_KINDS = ("sleep", "cpu", "sync_dns")
COMMON_BLOCK_KINDS = ("sleep", "cpu")


class FaultError(ValueError):
    """A fault spec that cannot be applied; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FaultSpec:
    """What a ``PUT /faults`` asks for (all faults at once; a new PUT replaces it)."""

    block_ms: int = 0
    block_every_second: bool = False
    latency_ms: int = 0
    fail_percent: float = 0.0
    duration_s: float = DEFAULT_DURATION_S
    block_kind: str = "sleep"

    @property
    def empty(self) -> bool:
        """No fault at all: applying it is the same as clearing."""
        return self.block_ms == 0 and self.latency_ms == 0 and self.fail_percent == 0

    @property
    def latency_s(self) -> float:
        return self.latency_ms / 1000.0


def parse_spec(data: object, kinds: tuple[str, ...] = COMMON_BLOCK_KINDS) -> FaultSpec:
    """Validate a decoded JSON body into a ``FaultSpec``; ``FaultError`` names the field.

    Unknown fields are refused (a typo must not be a silent no-op); numbers must be
    numbers (``true`` is not 1) within the bounds above; ``block_kind`` one of ``kinds``,
    what the service at hand can do (``Faults.kinds``).
    """
    if not isinstance(data, dict):
        raise FaultError("body", "expected a JSON object")
    for key in data:
        if key not in FIELDS:
            raise FaultError(str(key)[:64], f"unknown field; expected one of {', '.join(FIELDS)}")
    every = data.get("block_every_second", False)
    if not isinstance(every, bool):
        raise FaultError("block_every_second", "expected true or false")
    return FaultSpec(
        block_ms=int(_number(data, "block_ms", 0, 0, MAX_BLOCK_MS, integer=True)),
        block_every_second=every,
        block_kind=_block_kind(data.get("block_kind", "sleep"), kinds),
        latency_ms=int(_number(data, "latency_ms", 0, 0, MAX_LATENCY_MS, integer=True)),
        fail_percent=float(_number(data, "fail_percent", 0, 0, 100)),
        duration_s=float(_number(data, "duration_s", DEFAULT_DURATION_S, 1, MAX_DURATION_S)),
    )


def _block_kind(kind: object, kinds: tuple[str, ...]) -> str:
    if not isinstance(kind, str) or kind not in BLOCK_KINDS:
        raise FaultError("block_kind", f"expected one of {', '.join(BLOCK_KINDS)}")
    if kind not in kinds:
        # only the resolver has sync_dns: a lookup through the un-patched socket module
        # is a gevent mistake; the other loops have no such trap to show
        raise FaultError(
            "block_kind",
            f"{kind} is not a way to block this service; it has {', '.join(kinds)}"
            " (sync_dns is the gevent resolver's own)",
        )
    return kind


def _number(
    data: dict, field: str, default: float, low: float, high: float, *, integer: bool = False
) -> float:
    value = data.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultError(field, "expected a number")
    if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity, 1e400
        raise FaultError(field, f"expected a finite number, got {value!r}")
    if integer and value != int(value):
        raise FaultError(field, "expected a whole number")
    if not low <= value <= high:
        raise FaultError(field, f"expected {low:g}..{high:g}, got {value!r}")
    return value


class LoopHooks(NamedTuple):
    """How ``Faults`` reaches a loop from the control port's thread; each loop's module in
    ``services.common.loops`` builds its own.

    ``call_from_thread(fn)`` runs ``fn`` soon ON the loop; ``call_later(delay, fn)`` is
    called ON the loop, ``delay`` seconds from now (the real now, not a time the loop
    cached before a block); ``block(seconds)`` is a real blocking sleep (never the loop's).
    """

    call_from_thread: Callable[[Callable[[], None]], Any]
    call_later: Callable[[float, Callable[[], None]], Any]
    block: Callable[[float], None]


def block_with_sleep(seconds: float, sleep: Callable[[float], None]) -> None:
    """Block the loop on a sleeping system call: the thread waits, the CPU is idle."""
    sleep(seconds)


def block_with_cpu(seconds: float, clock: Callable[[], float] = time.monotonic) -> int:
    """Block the loop on pure-Python work (hashing a digest over and over) until ``seconds``
    have passed; returns the rounds done. The interpreter runs bytecode all along, so the
    loop's thread shows a different line each time it is sampled, always in here."""
    deadline = clock() + seconds
    digest = b"polyloop"
    rounds = 0
    while clock() < deadline:
        digest = hashlib.sha256(digest).digest()
        rounds += 1
    return rounds


@dataclass(frozen=True)
class _Active:
    spec: FaultSpec
    expires_at: float
    generation: int


class Faults:
    """One service's fault state: off and empty at start, expiring by itself.

    ``active`` is a plain attribute the hot path reads; it is True from ``apply`` until
    ``clear`` or until a ``current()`` call finds the fault expired. The state itself is
    one immutable object swapped whole, so the loop never sees half of a new spec.
    """

    def __init__(
        self,
        hooks: LoopHooks | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        blockers: Mapping[str, Callable[[float], Any]] | None = None,
    ) -> None:
        self.hooks = hooks
        # the service's own ways to block (its ``block_kind``s beyond sleep and cpu)
        self.blockers = dict(blockers or {})
        self.clock = clock
        self.rng = rng
        self.active = False
        self.blocks = 0  # blocking calls made on the loop (read by tests and logs)
        self.failed = 0  # units of work failed on purpose
        self.throttle = LogThrottle(log, LOG_INTERVAL, clock)
        self._state: _Active | None = None
        self._generation = 0

    @property
    def kinds(self) -> tuple[str, ...]:
        """The ``block_kind``s this service takes (what ``parse_spec`` is given)."""
        return COMMON_BLOCK_KINDS + tuple(k for k in BLOCK_KINDS if k in self.blockers)

    def apply(self, spec: FaultSpec) -> None:
        """Replace whatever is active by ``spec`` (an empty spec clears)."""
        if spec.empty:
            self.clear()
            return
        self._generation += 1
        state = _Active(spec, self.clock() + spec.duration_s, self._generation)
        self._state = state
        self.active = True
        self.throttle.log("set", logging.WARNING, "fault set", fault=asdict(spec))
        if spec.block_ms and self.hooks is not None:
            # a partial, not a lambda: the stall's stack goes straight to _block_step
            self.hooks.call_from_thread(functools.partial(self._block_step, state.generation))

    def clear(self) -> None:
        """Turn every fault off now (a pending repeated block sees it and stops)."""
        was = self._state is not None
        self._generation += 1
        self._state = None
        self.active = False
        if was:
            self.throttle.log("cleared", logging.WARNING, "faults cleared")

    def current(self) -> FaultSpec | None:
        """The active spec, or None (clearing the state once it has expired)."""
        state = self._state
        if state is None:
            self.active = False
            return None
        if self.clock() >= state.expires_at:
            if self._state is state:
                self._state = None
                self.active = False
            return None
        return state.spec

    def should_fail(self, spec: FaultSpec) -> bool:
        """Draw once: True for ``fail_percent`` % of the calls (counted in ``failed``)."""
        if spec.fail_percent <= 0:
            return False
        if self.rng() * 100.0 < spec.fail_percent:
            self.failed += 1
            return True
        return False

    def describe(self) -> dict[str, Any]:
        """What ``GET /faults`` answers: the active faults and their remaining time."""
        spec = self.current()
        state = self._state
        if spec is None or state is None:
            return {"active": False, "faults": {}, "remaining_s": 0.0}
        faults: dict[str, Any] = {}
        if spec.block_ms:
            faults["block"] = {
                "ms": spec.block_ms,
                "every_second": spec.block_every_second,
                "kind": spec.block_kind,
            }
        if spec.latency_ms:
            faults["latency"] = {"ms": spec.latency_ms}
        if spec.fail_percent:
            faults["fail"] = {"percent": spec.fail_percent}
        remaining = max(0.0, state.expires_at - self.clock())
        return {"active": True, "faults": faults, "remaining_s": round(remaining, 3)}

    def _block_step(self, generation: int, due: float | None = None) -> None:
        # runs ON the loop: a newer apply/clear (another generation) or expiry stops it
        state = self._state
        if state is None or state.generation != generation or self.current() is None:
            return
        assert self.hooks is not None
        due = self.clock() if due is None else due
        seconds = state.spec.block_ms / 1000.0
        kind = state.spec.block_kind
        if kind == "sleep":
            block_with_sleep(seconds, self.hooks.block)
        elif kind == "cpu":
            block_with_cpu(seconds)
        else:
            self.blockers[kind](seconds)
        self.blocks += 1
        if state.spec.block_every_second:
            # one second start to start, on every loop: the next block is due a second
            # after this one was, whatever this one lasted (at once if that is past)
            now = self.clock()
            following = max(due + 1.0, now)
            step = functools.partial(self._block_step, generation, following)
            self.hooks.call_later(following - now, step)
