"""The biggest block must not get a service killed: every healthcheck waits longer than the
longest block a fault can put on a loop, and the orchestrators wait longer than the check.

A fault blocks a loop for at most ``MAX_BLOCK_MS`` (2 s), every second if asked; a
healthcheck that gave up within 2 s failed whenever it landed at the start of a block (7 of
27 runs of the resolver's), and three failures in a row are an unhealthy container, which
Swarm and Kubernetes replace. The decision (services/common/healthcheck.py): the checks ask
the real protocol through the loop and wait ``healthcheck.TIMEOUT`` for it, above one block;
blocks of 2 s every second (start to start) leave the loop a single turn between them, too
few for any round trip, so a failed check asks the control port (answered off the loop)
whether a fault is set, and a service blocked on purpose is healthy.

Starts each service itself (devstack, free ports) and blocks its loop through its control
port. Run: .venv/bin/pytest tests/unit/test_healthcheck_blocks.py
"""

from __future__ import annotations

import functools
import importlib
import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deploy.swarm import stack as swarm
from devstack import ROOT, SERVICES, Process, start, stop
from services.common import healthcheck
from services.common.faults import MAX_BLOCK_MS

TOKEN = secrets.token_urlsafe(16)
EVERY_SERVICE = pytest.mark.parametrize("name", list(SERVICES))


def _seconds(text: str) -> float:
    return float(str(text).rstrip("s"))


@EVERY_SERVICE
def test_each_check_waits_longer_than_the_longest_block(name: str) -> None:
    module = importlib.import_module(SERVICES[name].healthcheck)
    # udp-echo waits that long on each of its tries
    assert module.TIMEOUT >= MAX_BLOCK_MS / 1000 + 0.5, name


def test_the_orchestrators_wait_longer_than_a_check() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    # the interpreter's start and the check's own wait, within the container's timeout
    margin = healthcheck.TIMEOUT + 2
    for name in SERVICES:
        timing = compose["services"][SERVICES[name].label]["healthcheck"]
        assert _seconds(timing["timeout"]) >= margin, name
    assert _seconds(swarm.SWARM_HEALTH_TIMING["timeout"]) >= margin
    for manifest in (ROOT / "deploy" / "k8s" / "base").glob("*.yaml"):
        for document in yaml.safe_load_all(manifest.read_text()):
            if not document or document.get("kind") != "Deployment":
                continue
            for container in document["spec"]["template"]["spec"]["containers"]:
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert container[probe]["timeoutSeconds"] >= margin, (manifest, probe)


@pytest.fixture(params=list(SERVICES))
def blocked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Process]:
    name = request.param
    process = start(name, {"POLYLOOP_ADMIN_TOKEN": TOKEN}, log=tmp_path / f"{name}.log")
    try:
        yield process
    finally:
        stop(process)


def _faults(process: Process, method: str, spec: dict | None = None) -> None:
    port = process.env[process.service.entry.metrics_port_variable]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/faults",
        data=json.dumps(spec).encode() if spec is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def test_the_biggest_block_fails_no_healthcheck(blocked: Process) -> None:
    process = blocked
    name = process.service.label
    check = importlib.import_module(process.service.healthcheck).check
    control = int(process.env[process.service.entry.metrics_port_variable])

    def verdict() -> str | None:
        # a short wait: the loop answers nothing in time anyway, the control port decides
        quick = functools.partial(check, timeout=0.5)
        return healthcheck.verdict(name, process.port, quick, control=control)

    # one block of the largest size: the protocol's answer comes, late
    _faults(process, "PUT", {"block_ms": MAX_BLOCK_MS})
    assert check(process.port) is None
    # the largest every second: the loop is never free long enough; the check says healthy
    _faults(process, "PUT", {"block_ms": MAX_BLOCK_MS, "block_every_second": True})
    try:
        reasons = [verdict(), verdict()]
        time.sleep(1.5)  # to land in the middle of a later block, not to wait for anything
        reasons.append(verdict())
    finally:
        _faults(process, "DELETE")
    assert reasons == [None, None, None], reasons
    # cleared (a block in progress still ends first): the protocol alone decides again
    assert not healthcheck.fault_set(name, control=control)
    assert check(process.port) is None
