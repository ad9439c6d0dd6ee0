"""Pass/fail gates: when Locust quits, the run's stats against ``budgets.toml`` set the exit code.

``environment.process_exit_code`` is set in a ``quitting`` listener, as Locust's docs
show: 0 when every gate holds, 1 when one is breached (each breach is logged). The
budgets file is ``loadtest/budgets.toml`` unless ``--budgets PATH`` or
``LOAD_BUDGETS=PATH`` names another; it is read at start, so a bad file fails the
run before any load is sent. Workers skip the gates: only the master sees all stats.

Try it: ``LOAD_BUDGETS=/dev/null locust -f loadtest --headless -t 1s`` fails at once.
"""

from __future__ import annotations

import logging

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtest._budgets import DEFAULT_PATH, BudgetError, Budgets, Measured, breaches

logger = logging.getLogger("loadtest.gates")


@events.init_command_line_parser.add_listener
def add_budgets_option(parser, **_kwargs) -> None:
    parser.add_argument(
        "--budgets",
        env_var="LOAD_BUDGETS",
        default=str(DEFAULT_PATH),
        help="TOML file of pass/fail gates: max failure ratio and p95 budgets (ms) per request",
    )


@events.init.add_listener
def arm_gates(environment: Environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    path = environment.parsed_options.budgets if environment.parsed_options else DEFAULT_PATH
    try:
        budgets = Budgets.load(path)
    except BudgetError as err:
        raise SystemExit(f"loadtest gates: {err}") from None
    logger.info("gates armed from %s", path)

    @environment.events.quitting.add_listener
    def apply_gates(environment: Environment, **_kwargs) -> None:
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
