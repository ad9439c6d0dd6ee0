"""How loadtest/ is laid out for ``locust -f loadtest``; no stack needed.

Locust loads every module of the folder whose name does not start with ``_``, each as a
top-level module of its own: such a module imported again as ``loadtest.<name>`` would run
twice (its event hooks registered twice). So nothing imports them, and what the tests import
(the ``_`` modules behind the hooks) must not import Locust, which would monkey-patch this
process with gevent.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from loadtest import _fault_schedule, _targets
from services.common import catalogue
from tests.stack import ROOT

LOADTEST = ROOT / "loadtest"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_nothing_imports_a_module_locust_loads_by_itself() -> None:
    loaded_by_locust = {f"loadtest.{p.stem}" for p in LOADTEST.glob("*.py") if p.stem[0] != "_"}
    assert "loadtest.hooks" in loaded_by_locust
    for source in [*LOADTEST.glob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        twice = imported_modules(source) & loaded_by_locust
        assert not twice, f"{source.relative_to(ROOT)} imports {twice}: Locust loads it already"


def test_the_modules_tests_import_do_not_import_locust() -> None:
    code = (
        "import sys, loadtest._gates, loadtest._fault_schedule, loadtest._targets;"
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_the_targets_are_the_catalogues_services() -> None:
    targets = _targets.from_env({})
    assert list(targets) == list(catalogue.NAMES)
    for service in catalogue.SERVICES:
        assert targets[service.name] == _targets.Target("127.0.0.1", service.port)
        assert service.name in _targets.STACK_HOSTS
    moved = _targets.from_env({"DNS_HOST": "dns", "DNS_PORT": "53"})
    assert moved["dns"] == _targets.Target("dns", 53)
    assert _fault_schedule.SERVICES == catalogue.NAMES


def test_the_front_is_the_host_option_or_the_web_target() -> None:
    targets = _targets.from_env({"WEB_PORT": "18080"})
    assert _targets.front_url(None, targets) == "http://127.0.0.1:18080"
    assert _targets.front_url("http://web:8080/", targets) == "http://web:8080"
