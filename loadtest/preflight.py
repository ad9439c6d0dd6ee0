"""Checks made once Locust has parsed its options, before any load is sent.

- ``-H/--host`` may only point at loopback or the stack's containers, like every
  target variable (``_targets``): a load run never leaves this machine's stack.
- ``--tags``/``--exclude-tags`` select Users too: a User left with no task by the
  tags is dropped from the run (Locust alone would start it and fail), so
  ``--tags dns`` runs only ``DnsUser``. A User can also be chosen by class name:
  ``locust -f loadtest DnsUser``.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from locust import events
from locust.env import Environment

from loadtest._targets import is_stack_host

logger = logging.getLogger("loadtest.preflight")


@events.init.add_listener
def check_host_and_tags(environment: Environment, **_kwargs) -> None:
    if environment.host:
        host = urlsplit(environment.host).hostname or ""
        if not is_stack_host(host):
            raise SystemExit(
                f"--host {environment.host}: load goes only to loopback or the stack's containers"
            )
    options = environment.parsed_options
    tags = set(getattr(options, "tags", None) or []) or None
    excluded = set(getattr(options, "exclude_tags", None) or []) or None
    if tags is None and excluded is None:
        return
    kept = [user for user in environment.user_classes if _has_a_task(user, tags, excluded)]
    dropped = sorted(user.__name__ for user in environment.user_classes if user not in kept)
    if not kept:
        raise SystemExit(f"--tags {tags} / --exclude-tags {excluded}: no User has a task left")
    if dropped:
        logger.info("tags leave no task to %s: not run", ", ".join(dropped))
    environment.user_classes[:] = kept


def _has_a_task(user: type, tags: set[str] | None, excluded: set[str] | None) -> bool:
    # the same rule as Locust's filter_tasks_by_tags, for the Users' own @task functions
    for task in user.tasks:
        task_tags = getattr(task, "locust_tag_set", set())
        if tags is not None and not task_tags & tags:
            continue
        if excluded is not None and task_tags & excluded:
            continue
        return True
    return False
