"""The suite's event hooks, registered once: what runs around the Users, not in them.

Locust loads this module with the Users (``-f loadtest``). At each process's ``init``, before
any load is sent, a setting that cannot work stops Locust with one line saying why:

- the targets (``_targets``: every ``<SERVICE>_HOST``/``_PORT``, ``LOAD_TIMEOUT``) and
  ``-H/--host`` may only point at loopback or the stack's containers; every base User is
  aimed at its service (``_users.aim``);
- ``--tags``/``--exclude-tags`` select Users too: a User left with no task by the tags is
  dropped from the run (Locust alone would start it and fail), so ``--tags dns`` runs only
  ``DnsUser``. A User can also be chosen by class name: ``locust -f loadtest DnsUser``;
- the pass/fail gates (``_gates``: ``--budgets``/``LOAD_BUDGETS``) and the ``LOAD_FAULTS``
  schedule (``_fault_schedule``) are read and checked, then hooked to the run.

The logic lives in those modules, which import Locust only inside these hooks, so the tests
import them; this module only wires them to Locust's events.
"""

from __future__ import annotations

import logging

from locust import events
from locust.env import Environment

from loadtest import _fault_schedule, _gates, _targets, _users

logger = logging.getLogger("loadtest.hooks")

events.init_command_line_parser.add_listener(_gates.add_budgets_option)


@events.init.add_listener
def preflight(environment: Environment, **_kwargs) -> None:
    try:
        targets = _targets.from_env()
        timeout = _targets.timeout_from_env()
        if environment.host:
            _targets.check_host_option(environment.host)
    except _targets.TargetError as err:
        raise SystemExit(f"loadtest: {err}") from None
    _users.aim(targets, timeout)
    _drop_users_without_a_task(environment)
    _fault_schedule.arm(environment, targets)
    _gates.arm(environment)


def _drop_users_without_a_task(environment: Environment) -> None:
    options = environment.parsed_options
    tags = set(getattr(options, "tags", None) or []) or None
    excluded = set(getattr(options, "exclude_tags", None) or []) or None
    if tags is None and excluded is None:
        return
    kept = _users.with_a_task(environment.user_classes, tags, excluded)
    dropped = sorted(user.__name__ for user in environment.user_classes if user not in kept)
    if not kept:
        raise SystemExit(f"--tags {tags} / --exclude-tags {excluded}: no User has a task left")
    if dropped:
        logger.info("tags leave no task to %s: not run", ", ".join(dropped))
    environment.user_classes[:] = kept
