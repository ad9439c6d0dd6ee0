"""Every container of the compose project is hardened, read from `docker inspect`.

Needs the stack in containers (`make up` with a Docker engine). The test walks every
running container of the project, so a new service cannot slip in without the same
hardening: non-root user, read-only root filesystem, all capabilities dropped,
no-new-privileges, memory/CPU/pids limits, no Docker socket, a healthcheck, a restart
policy, and published ports bound to POLYLOOP_BIND (127.0.0.1 by default).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.stack import Stack, compose

pytestmark = pytest.mark.compose

CORE_SERVICES = {"dns", "tcp-echo", "udp-echo", "resolver", "web"}


@pytest.fixture(scope="module")
def inspected(in_containers: str) -> list[dict]:
    ids = compose("ps", "--quiet").stdout.split()
    out = subprocess.run(
        ["docker", "inspect", *ids], capture_output=True, text=True, check=True, timeout=30
    )
    return json.loads(out.stdout)


def _service(container: dict) -> str:
    return container["Config"]["Labels"]["com.docker.compose.service"]


def deviations(container: dict, bind: str) -> list[str]:
    config, host = container["Config"], container["HostConfig"]
    found = []
    user = config.get("User") or ""
    if user in {"", "root", "0"} or user.startswith(("0:", "root:")) or user.endswith(":0"):
        found.append(f"runs as user {user!r} (root or gid 0)")
    if not host.get("ReadonlyRootfs"):
        found.append("root filesystem is writable")
    if [c.upper() for c in host.get("CapDrop") or []] != ["ALL"]:
        found.append(f"cap_drop is {host.get('CapDrop')}, not [ALL]")
    if host.get("CapAdd"):
        found.append(f"adds capabilities {host['CapAdd']}")
    if "no-new-privileges:true" not in (host.get("SecurityOpt") or []):
        found.append("no-new-privileges is not set")
    if host.get("Privileged"):
        found.append("privileged")
    if not host.get("Memory"):
        found.append("no memory limit")
    if not (host.get("NanoCpus") or host.get("CpuQuota")):
        found.append("no CPU limit")
    if not host.get("PidsLimit") or host["PidsLimit"] <= 0:
        found.append("no pids limit")
    for mount in container.get("Mounts") or []:
        if "docker.sock" in (mount.get("Source") or ""):
            found.append("mounts the Docker socket")
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE":
        found.append("no healthcheck")
    if (host.get("RestartPolicy") or {}).get("Name") not in {"always", "unless-stopped"}:
        found.append(f"restart policy {host.get('RestartPolicy')}")
    for port, bindings in (host.get("PortBindings") or {}).items():
        for binding in bindings or []:
            if binding.get("HostIp") != bind:
                found.append(f"{port} published on {binding.get('HostIp')!r}, not {bind!r}")
    return found


def test_every_core_service_runs_in_its_own_container(inspected: list[dict]) -> None:
    running = {_service(c) for c in inspected if c["State"]["Running"]}
    assert running >= CORE_SERVICES


def test_every_container_is_hardened(inspected: list[dict], stack: Stack) -> None:
    problems = {_service(c): deviations(c, stack.bind) for c in inspected}
    assert {name: found for name, found in problems.items() if found} == {}


def test_each_service_has_its_own_image(inspected: list[dict]) -> None:
    images = {_service(c): c["Image"] for c in inspected if _service(c) in CORE_SERVICES}
    assert len(set(images.values())) == len(CORE_SERVICES)


def test_the_deviation_check_catches_a_root_writable_container() -> None:
    """The check itself must fail on an unhardened container (no vacuous pass)."""
    bare = {
        "Config": {"User": "", "Healthcheck": None},
        "HostConfig": {"ReadonlyRootfs": False, "CapDrop": None, "PortBindings": {}},
        "Mounts": [{"Source": "/var/run/docker.sock"}],
    }
    found = " | ".join(deviations(bare, "127.0.0.1"))
    for expected in (
        "root",
        "writable",
        "cap_drop",
        "no-new-privileges",
        "memory",
        "pids",
        "Docker socket",
        "healthcheck",
        "restart policy",
    ):
        assert expected in found
