"""The Docker Swarm stack file, derived from compose.yaml (never a second copy to keep in step).

    .venv/bin/python -m deploy.swarm.stack > build/swarm/stack.yaml     # what make swarm-up does
    .venv/bin/python -m deploy.swarm.stack --load > build/swarm/stack.yaml  # with Locust (load)
    docker stack deploy --resolve-image never -c build/swarm/stack.yaml polyloop-swarm

What changes from compose.yaml, and why (README "Docker Swarm" says the same):

- healthchecks keep their command but get swarm's own timing (``SWARM_HEALTH_TIMING``):
  swarm replaces an unhealthy task, compose only reports it;
- ``mem_limit`` / ``cpus`` become ``deploy.resources.limits`` (``docker stack deploy``
  rejects the first and ignores the second); ``restart: unless-stopped`` becomes
  ``deploy.restart_policy`` (``condition: any``).
- ``build``, ``depends_on``, ``security_opt``, ``pids_limit`` and ``profiles`` are dropped:
  stack deploy ignores or rejects them (README: what swarm cannot apply). Without
  ``depends_on`` nothing waits for anything: each service copes with a peer that is not
  there yet (the front answers 503, the resolver exits and swarm starts it again).
- Every service gets ``image:`` (``${SWARM_IMAGE_PREFIX:-polyloop-}<service>:latest``, the
  names compose's build gives them; point the prefix at a registry for several nodes),
  ``deploy.replicas`` from ``SWARM_<SERVICE>_REPLICAS`` and ``endpoint_mode: dnsrr``: this
  kernel has no IPVS, so VIPs and the routing mesh do not answer (scripts/swarm.sh checks),
  and with dnsrr the service name resolves to every task, which is what the front needs.
- Only the front (and Locust's UI with ``--load``) is published, in ``mode: host``
  (``SWARM_WEB_PORT``, ``SWARM_LOCUST_PORT``), at most one task per node (the port binds
  once): the backends' host ports of compose are not published. A host-mode port binds
  every interface of the node, so the front is told so (``WEB_PUBLISHED_HOST=0.0.0.0``):
  its fault API is off unless the deploying shell sets ``WEB_FAULTS=1``.
- The admin token is a Swarm secret (``polyloop_admin_token``, made by
  ``scripts/swarm.sh`` from the stack's token before deploying: every ``docker stack
  deploy`` keeps it), mounted in each of the stack's services at
  ``/run/secrets/polyloop_admin_token``, readable by the service's user only, and named by
  ``POLYLOOP_ADMIN_TOKEN_FILE``; no service gets it as a variable.
- A value-less ``environment:`` entry (compose passes the host's value through) becomes
  ``${NAME:-}``: stack deploy interpolates it from the deploying shell; empty means the
  service's own default.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from services.common.catalogue import NAMES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"

# the replica counts, each overridable by SWARM_<SERVICE>_REPLICAS
REPLICAS = {
    "tcp-echo": 3,
    "udp-echo": 2,
    "resolver": 2,
    "dns": 2,
    "web": 1,
    "locust-master": 1,
    "locust-worker": 2,
}
# what the host must reach: (service, in-network port, variable, default host port)
PUBLISHED = {
    "web": (8080, "SWARM_WEB_PORT", 8081),
    "locust-master": (8089, "SWARM_LOCUST_PORT", 8090),
}
LOAD_SERVICES = ("locust-master", "locust-worker")
# what a service is told differently from compose: where the front is reached (every
# interface of the node, its host-mode port) decides its fault API's default
SWARM_ENV = {"web": {"WEB_PUBLISHED_HOST": "0.0.0.0"}}
# the stack's token, a secret of the swarm (scripts/swarm.sh creates it), for the services
SECRET = "polyloop_admin_token"  # noqa: S105 - the secret's name, not its value
TOKEN_FILE = f"/run/secrets/{SECRET}"
NETWORK = "polyloop"
# compose keys stack deploy ignores or rejects (README: what swarm cannot apply)
DROPPED = ("build", "depends_on", "security_opt", "pids_limit", "profiles", "restart")
MOVED = ("mem_limit", "cpus")
# Swarm acts on health where compose only reports it: a task that fails its healthcheck
# `retries` times is stopped and replaced, and a task joins its service's name only once
# healthy, so its first check comes sooner than compose's 30 s (10 s: the five checks cost
# ~1.5 % of a core, against 5 % at 3 s); 5 tries, and the same 10 s timeout, above the longest
# block a fault can put on a loop (the check itself, the same command, is unchanged).
SWARM_HEALTH_TIMING = {"interval": "10s", "timeout": "10s", "retries": 5, "start_period": "60s"}


def variable(service: str) -> str:
    """``tcp-echo`` → ``SWARM_TCP_ECHO_REPLICAS``."""
    return "SWARM_" + re.sub(r"[^A-Z0-9]", "_", service.upper()) + "_REPLICAS"


def passthrough(name: str) -> str:
    """``NAME`` → ``${NAME:-}``: the deploying shell's value, empty (the default) when unset."""
    return "${" + name + ":-}"


def tmpfs_volume(spec: str) -> dict[str, Any]:
    """``/tmp:size=16m,mode=1777`` → a ``type: tmpfs`` volume of that size and mode."""
    target, _, options = spec.partition(":")
    volume: dict[str, Any] = {"type": "tmpfs", "target": target}
    sizes = {"k": 2**10, "m": 2**20, "g": 2**30}
    tmpfs: dict[str, int] = {}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "size":
            unit = value[-1:].lower()
            tmpfs["size"] = int(value[:-1]) * sizes[unit] if unit in sizes else int(value)
        elif key == "mode":
            tmpfs["mode"] = int(value, 8)
    if tmpfs:
        volume["tmpfs"] = tmpfs
    return volume


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    """compose.yaml as data, anchors and ``<<`` merges resolved (PyYAML's safe loader)."""
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def swarm_service(name: str, service: dict[str, Any]) -> dict[str, Any]:
    """One compose service turned into its swarm form (see the module docstring)."""
    out = {k: copy.deepcopy(v) for k, v in service.items() if k not in DROPPED + MOVED}
    out = {"image": f"${{SWARM_IMAGE_PREFIX:-polyloop-}}{name}:${{SWARM_IMAGE_TAG:-latest}}", **out}
    env = out.get("environment") or {}
    out["environment"] = {k: passthrough(k) if v is None else str(v) for k, v in env.items()}
    out["environment"].update(SWARM_ENV.get(name, {}))
    out["environment"].pop("POLYLOOP_ADMIN_TOKEN", None)
    if name in NAMES:
        out["environment"]["POLYLOOP_ADMIN_TOKEN_FILE"] = TOKEN_FILE
        uid, _, gid = str(service.get("user", "0:0")).partition(":")
        out["secrets"] = [
            {"source": SECRET, "target": SECRET, "uid": uid, "gid": gid or uid, "mode": 0o400}
        ]
    out.pop("ports", None)
    # stack deploy ignores the `tmpfs:` key; a volume of type tmpfs is its way to the same
    tmpfs = out.pop("tmpfs", [])
    if tmpfs:
        out["volumes"] = [tmpfs_volume(spec) for spec in tmpfs]
    if name in PUBLISHED:
        target, var, default = PUBLISHED[name]
        out["ports"] = [
            {
                "target": target,
                "published": f"${{{var}:-{default}}}",
                "protocol": "tcp",
                "mode": "host",
            }
        ]
    limits: dict[str, str] = {}
    if "mem_limit" in service:
        limits["memory"] = str(service["mem_limit"]).upper()
    if "cpus" in service:
        limits["cpus"] = str(float(service["cpus"]))
    if "healthcheck" in out:
        out["healthcheck"] = {**out["healthcheck"], **SWARM_HEALTH_TIMING}
    out["networks"] = [NETWORK]
    out["deploy"] = {
        "replicas": f"${{{variable(name)}:-{REPLICAS.get(name, 1)}}}",
        "endpoint_mode": "dnsrr",
        "resources": {"limits": limits},
        "restart_policy": {"condition": "any", "delay": "2s"},
        "update_config": {"parallelism": 1, "order": "stop-first"},
    }
    if name in PUBLISHED:
        # a host-mode port binds once per node: a second task there could only fail
        out["deploy"]["placement"] = {"max_replicas_per_node": 1}
    return out


def stack(compose: dict[str, Any], *, load: bool = False) -> dict[str, Any]:
    """The whole stack file: the services of no profile, and Locust's with `load`. The
    `observe` profile (Prometheus) stays compose's: it scrapes one container per service."""
    services = {
        name: swarm_service(name, svc)
        for name, svc in compose["services"].items()
        if set(svc.get("profiles", [])) <= ({"load"} if load else set())
    }
    return {
        "services": services,
        "networks": {NETWORK: {"driver": "overlay", "attachable": True}},
        "secrets": {SECRET: {"external": True}},
    }


HEADER = """\
# GENERATED by `python -m deploy.swarm.stack` from compose.yaml: do not edit, edit compose.yaml.
# make swarm-up deploys it: docker stack deploy --resolve-image never -c THIS polyloop-swarm
"""


def render(compose: dict[str, Any], *, load: bool = False) -> str:
    return HEADER + yaml.safe_dump(stack(compose, load=load), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", action="store_true", help="add Locust (compose profile load)")
    parser.add_argument("--compose", type=Path, default=COMPOSE)
    args = parser.parse_args(argv)
    sys.stdout.write(render(load_compose(args.compose), load=args.load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
