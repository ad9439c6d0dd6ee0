"""The swarm stack file generated from compose.yaml (deploy/swarm/stack.py): what swarm
rejects is gone, the rest of each service is kept, replicas and ports as the README says.

The Docker CLI's own offline check (``docker stack config``, no engine needed) reads the
generated file as ``docker stack deploy`` would; it is skipped when no docker CLI is on
PATH (outside CI only). Deploying it for real is tests/swarm (``make test-swarm``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.swarm import stack as swarm
from tests.stack import IN_CI

ROOT = Path(__file__).resolve().parents[2]
CORE = ["dns", "tcp-echo", "udp-echo", "resolver", "web"]
KEPT = ["user", "read_only", "cap_drop", "sysctls", "init", "stop_grace_period"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return swarm.load_compose()


def test_core_services_only_unless_load(compose: dict) -> None:
    assert list(swarm.stack(compose)["services"]) == CORE
    loaded = swarm.stack(compose, load=True)["services"]
    assert set(loaded) == {*CORE, "locust-master", "locust-worker"}


@pytest.mark.parametrize("name", [*CORE, "locust-master", "locust-worker"])
def test_each_service_keeps_what_swarm_supports(name: str, compose: dict) -> None:
    source = compose["services"][name]
    out = swarm.stack(compose, load=True)["services"][name]
    for key in ("mem_limit", "cpus", "pids_limit", "depends_on", "build", "security_opt"):
        assert key not in out, key
    for key in ("restart", "profiles", "tmpfs"):
        assert key not in out, key
    for key in KEPT:
        assert out.get(key) == source.get(key), key
    assert out.get("command") == source.get("command")
    # the same healthcheck, with the wider timing swarm gets (it replaces unhealthy tasks)
    assert out["healthcheck"]["test"] == source["healthcheck"]["test"]
    assert out["healthcheck"]["retries"] >= source["healthcheck"]["retries"]
    assert out["healthcheck"]["timeout"] == "10s"
    assert out["image"] == f"${{SWARM_IMAGE_PREFIX:-polyloop-}}{name}:${{SWARM_IMAGE_TAG:-latest}}"
    limits = out["deploy"]["resources"]["limits"]
    assert limits == {"memory": source["mem_limit"].upper(), "cpus": str(float(source["cpus"]))}
    assert out["deploy"]["endpoint_mode"] == "dnsrr"  # no IPVS here: no VIP
    assert out["deploy"]["restart_policy"]["condition"] == "any"
    assert out["deploy"]["replicas"] == f"${{{swarm.variable(name)}:-{swarm.REPLICAS[name]}}}"
    assert out["volumes"] == [
        {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 16 * 2**20, "mode": 0o1777}}
    ]
    for key, value in source["environment"].items():
        if key == "POLYLOOP_ADMIN_TOKEN":  # a secret instead (test_the_token_is_a_swarm_secret)
            continue
        expected = f"${{{key}:-}}" if value is None else str(value)
        expected = swarm.SWARM_ENV.get(name, {}).get(key, expected)
        assert out["environment"][key] == expected


def test_only_the_front_and_locust_ui_are_published_in_host_mode(compose: dict) -> None:
    services = swarm.stack(compose, load=True)["services"]
    published = {name: svc["ports"] for name, svc in services.items() if "ports" in svc}
    assert published == {
        "web": [{"target": 8080, "published": "${SWARM_WEB_PORT:-8081}", "protocol": "tcp",
                 "mode": "host"}],
        "locust-master": [{"target": 8089, "published": "${SWARM_LOCUST_PORT:-8090}",
                           "protocol": "tcp", "mode": "host"}],
    }  # fmt: skip
    for name, svc in services.items():
        placement = svc["deploy"].get("placement")
        assert (placement == {"max_replicas_per_node": 1}) is (name in published), name


def test_the_issue_replica_counts() -> None:
    assert {n: swarm.REPLICAS[n] for n in CORE} == {
        "tcp-echo": 3,
        "udp-echo": 2,
        "resolver": 2,
        "dns": 2,
        "web": 1,
    }
    assert swarm.variable("tcp-echo") == "SWARM_TCP_ECHO_REPLICAS"


def test_tmpfs_options_become_a_tmpfs_volume() -> None:
    assert swarm.tmpfs_volume("/tmp:size=16m,mode=1777") == {
        "type": "tmpfs",
        "target": "/tmp",
        "tmpfs": {"size": 16 * 2**20, "mode": 0o1777},
    }
    assert swarm.tmpfs_volume("/run") == {"type": "tmpfs", "target": "/run"}


def test_the_rendered_file_is_the_stack(compose: dict) -> None:
    text = swarm.render(compose)
    assert text.startswith("# GENERATED")
    assert yaml.safe_load(text) == swarm.stack(compose)


def docker_stack_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker") is None:
        if IN_CI:
            pytest.fail("no docker CLI on PATH", pytrace=False)
        pytest.skip("no docker CLI on PATH")
    return subprocess.run(
        ["docker", "stack", "config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        # the CLI's own parsing and interpolation; no engine is asked
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock", **env},
        check=False,
    )


def test_docker_accepts_the_file_and_interpolates_the_variables(
    compose: dict, tmp_path: Path
) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(swarm.render(compose, load=True))
    env = {"SWARM_TCP_ECHO_REPLICAS": "5", "SWARM_WEB_PORT": "26080", "WEB_MAX_BODY": "2048"}
    done = docker_stack_config(path, env)
    assert done.returncode == 0, done.stderr
    final = yaml.safe_load(done.stdout)["services"]
    assert final["tcp-echo"]["deploy"]["replicas"] == 5
    assert final["udp-echo"]["deploy"]["replicas"] == 2
    assert final["web"]["ports"][0]["published"] in (26080, "26080")
    assert final["web"]["environment"]["WEB_MAX_BODY"] == "2048"
    assert final["web"]["environment"]["WEB_TCP_POOL_SIZE"] == ""  # unset: the default


def test_docker_rejects_what_the_generator_removes(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("services:\n  a:\n    image: x\n    mem_limit: 256m\n")
    done = docker_stack_config(path, {})
    assert done.returncode != 0
    assert "forbidden" in done.stderr


def test_the_fronts_fault_api_is_off_by_default_on_swarm(compose: dict) -> None:
    """The front's host-mode port binds every interface of the node: beyond loopback."""
    from services.web.config import WebConfig

    env = swarm.stack(compose)["services"]["web"]["environment"]
    assert env["WEB_PUBLISHED_HOST"] == "0.0.0.0"
    assert env["WEB_FAULTS"] == "${WEB_FAULTS:-}"  # WEB_FAULTS=1 from the deploying shell
    deployed = {"LISTEN_HOST": env["LISTEN_HOST"], "WEB_PUBLISHED_HOST": "0.0.0.0"}
    assert WebConfig.from_env(deployed).faults_enabled is False
    assert WebConfig.from_env({**deployed, "WEB_FAULTS": "1"}).faults_enabled is True


def test_the_token_is_a_swarm_secret_every_service_reads(compose: dict) -> None:
    """Every `docker stack deploy` keeps it: a secret of the swarm, never a variable of
    the deploying shell; each service reads it from the file its user alone may read."""

    out = swarm.stack(compose, load=True)
    assert out["secrets"] == {"polyloop_admin_token": {"external": True}}
    for name, service in out["services"].items():
        assert "POLYLOOP_ADMIN_TOKEN" not in service["environment"], name
        if name not in CORE:
            assert "secrets" not in service, name  # Locust never needs it
            continue
        (secret,) = service["secrets"]
        assert (secret["source"], secret["uid"], secret["mode"]) == (
            "polyloop_admin_token",
            "10001",
            0o400,
        )
        path = service["environment"]["POLYLOOP_ADMIN_TOKEN_FILE"]
        assert path == "/run/secrets/polyloop_admin_token"


def test_a_service_reads_its_token_from_the_file(tmp_path: Path) -> None:
    from services.common.control import ControlSettings
    from services.common.settings import ConfigError

    secret = tmp_path / "polyloop_admin_token"
    secret.write_text("from-the-secret\n")
    env = {"POLYLOOP_ADMIN_TOKEN_FILE": str(secret)}
    assert ControlSettings.from_env(env).admin_token == "from-the-secret"
    # the variable itself wins; a missing file is named, its content never
    both = {**env, "POLYLOOP_ADMIN_TOKEN": "explicit"}
    assert ControlSettings.from_env(both).admin_token == "explicit"
    with pytest.raises(ConfigError, match="POLYLOOP_ADMIN_TOKEN_FILE"):
        ControlSettings.from_env({"POLYLOOP_ADMIN_TOKEN_FILE": str(tmp_path / "nope")})
