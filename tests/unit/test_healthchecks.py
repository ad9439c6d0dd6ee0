"""The five healthchecks keep one contract (services/common/healthcheck.py): a
``check(port, host="127.0.0.1", timeout=...) -> str | None`` and a shared ``main`` that
exits 0 when healthy, else 1 with ONE JSON line on stdout (``"msg": "unhealthy"``, the
``reason``, the ``port``) and nothing on stderr. The healthy path is what every process test
waits on (devstack.start polls these very modules). Needs nothing running."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys

import pytest

from devstack import ROOT, SERVICES, Service, free_port

EVERY_SERVICE = pytest.mark.parametrize("service", SERVICES.values(), ids=list(SERVICES))


def run_healthcheck(service: Service, port: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", service.healthcheck],
        cwd=ROOT,
        env={**os.environ, service.port_variable: port},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@EVERY_SERVICE
def test_nothing_listening_exits_1_with_one_json_line(service: Service) -> None:
    port = free_port()
    done = run_healthcheck(service, str(port))
    assert done.returncode == 1
    assert done.stderr == ""
    (line,) = [json.loads(text) for text in done.stdout.splitlines()]
    assert (line["level"], line["msg"], line["port"]) == ("error", "unhealthy", port)
    assert line["service"] == f"{service.label}-healthcheck"
    assert f"127.0.0.1:{port}" in line["reason"]


@EVERY_SERVICE
def test_a_bad_port_variable_exits_1_with_one_json_line(service: Service) -> None:
    done = run_healthcheck(service, "70000")
    assert done.returncode == 1
    assert done.stderr == ""
    (line,) = [json.loads(text) for text in done.stdout.splitlines()]
    assert line["msg"] == "unhealthy"
    assert f"{service.port_variable}=70000" in line["reason"]


@EVERY_SERVICE
def test_every_check_has_the_same_signature(service: Service) -> None:
    check = importlib.import_module(service.healthcheck).check
    parameters = list(inspect.signature(check).parameters.values())
    assert [p.name for p in parameters[:3]] == ["port", "host", "timeout"]
    assert parameters[1].default == "127.0.0.1"
    assert inspect.signature(check).return_annotation == "str | None"
