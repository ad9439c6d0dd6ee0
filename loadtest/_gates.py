"""Pass/fail gates: when Locust quits, the run's stats against ``budgets.toml`` set the exit code.

``Budgets.load(path)`` reads and validates the budgets file, ``breaches(...)`` lists every
gate a finished run broke, in words a person can act on. ``arm`` (Locust's ``init`` event)
reads the file at start, so a bad file stops the run before any load is sent, and on quitting
sets ``environment.process_exit_code``, as Locust's docs show: 0 when every gate holds, 1 when
one is breached (each breach is logged). The file is ``loadtest/budgets.toml`` unless
``--budgets PATH`` or ``LOAD_BUDGETS=PATH`` names another. Workers skip the gates: only the
master sees all stats. Locust is imported only inside the hooks, so tests import this module.

Try it: ``LOAD_BUDGETS=/dev/null locust -f loadtest --headless -t 1s`` fails at once.
"""

from __future__ import annotations

import logging
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("loadtest.gates")

DEFAULT_PATH = Path(__file__).with_name("budgets.toml")


class BudgetError(ValueError):
    """The budgets file is missing or does not say what a gate needs."""


@dataclass(frozen=True)
class Budgets:
    """Failure-ratio ceiling and p95 budgets (ms), keyed ``"<Type> <Name>"`` as Locust shows."""

    max_fail_ratio: float
    default_p95_ms: float
    p95_ms: Mapping[str, float] = field(default_factory=dict)

    def p95_budget(self, key: str) -> float:
        return self.p95_ms.get(key, self.default_p95_ms)

    @classmethod
    def load(cls, path: str | Path) -> Budgets:
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except OSError as err:
            raise BudgetError(f"{path}: cannot read the budgets file ({err.strerror})") from None
        except tomllib.TOMLDecodeError as err:
            raise BudgetError(f"{path}: not valid TOML ({err})") from None
        ratio = _number(data.get("max_fail_ratio"), f"{path}: max_fail_ratio")
        if not 0 <= ratio <= 1:
            raise BudgetError(f"{path}: max_fail_ratio={ratio} must be a ratio in 0..1")
        table = data.get("p95_ms")
        if not isinstance(table, dict) or "default" not in table:
            raise BudgetError(f"{path}: needs a [p95_ms] table with a `default` budget")
        budgets = {key: _number(value, f"{path}: p95_ms.{key!r}") for key, value in table.items()}
        for key, value in budgets.items():
            if value <= 0:
                raise BudgetError(f"{path}: p95_ms.{key!r}={value} must be > 0 ms")
        default = budgets.pop("default")
        return cls(max_fail_ratio=ratio, default_p95_ms=default, p95_ms=budgets)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BudgetError(f"{what}: expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Measured:
    """One row of Locust's stats: a request type and name, its counts and its p95."""

    request_type: str
    name: str
    requests: int
    failures: int
    p95_ms: float

    @property
    def key(self) -> str:
        return f"{self.request_type} {self.name}"


def breaches(
    budgets: Budgets,
    rows: Iterable[Measured],
    *,
    crashes: int = 0,
) -> list[str]:
    """Every gate the run broke; an empty list means the run passes."""
    rows = [row for row in rows if row.requests > 0]
    requests = sum(row.requests for row in rows)
    failures = sum(row.failures for row in rows)
    found: list[str] = []
    if requests == 0:
        found.append("no request was made: nothing was measured, so nothing passed")
    elif failures / requests > budgets.max_fail_ratio:
        found.append(
            f"failure ratio {failures / requests:.2%} ({failures} of {requests}) "
            f"is above {budgets.max_fail_ratio:.2%}"
        )
    if crashes:
        found.append(f"the load code itself raised {crashes} time(s): see Locust's exceptions")
    for row in sorted(rows, key=lambda r: r.key):
        budget = budgets.p95_budget(row.key)
        if row.p95_ms > budget:
            found.append(f"{row.key}: p95 {row.p95_ms:g} ms is above its {budget:g} ms budget")
    return found


def add_budgets_option(parser: Any, **_kwargs: Any) -> None:
    """``--budgets PATH`` (``LOAD_BUDGETS``), for Locust's ``init_command_line_parser`` event."""
    parser.add_argument(
        "--budgets",
        env_var="LOAD_BUDGETS",
        default=str(DEFAULT_PATH),
        help="TOML file of pass/fail gates: max failure ratio and p95 budgets (ms) per request",
    )


def arm(environment: Any, **_kwargs: Any) -> None:
    """Locust's ``init`` event: read the budgets now; judge the run when Locust quits."""
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    path = getattr(options, "budgets", None) or DEFAULT_PATH
    try:
        budgets = Budgets.load(path)
    except BudgetError as err:
        raise SystemExit(f"loadtest gates: {err}") from None
    logger.info("gates armed from %s", path)

    def apply_gates(environment: Any, **_kwargs: Any) -> None:
        rows = [
            Measured(
                entry.method or "",
                entry.name,
                entry.num_requests,
                entry.num_failures,
                entry.get_response_time_percentile(0.95),
            )
            for entry in environment.stats.entries.values()
        ]
        crashes = sum(e["count"] for e in environment.runner.exceptions.values())
        found = breaches(budgets, rows, crashes=crashes)
        for breach in found:
            logger.error("gate breached: %s", breach)
        if found:
            logger.error("load run FAILED %d gate(s) of %s", len(found), path)
        else:
            logger.info("load run passed every gate of %s", path)
        environment.process_exit_code = 1 if found else 0

    environment.events.quitting.add_listener(apply_gates)
