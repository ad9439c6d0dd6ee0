"""A command run as the tests run one: from the repository's root, its output captured as
text, a deadline, and its exit code left for the test to assert."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(
    command: list[str], *, timeout: float, cwd: Path | str = ROOT, **options: Any
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` from ``cwd`` (the root unless said), captured text output and no
    ``check``; ``options`` (``env``, ``input``...) go through as they are."""
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **options,
    )


LOCUST = str(Path(sys.executable).with_name("locust"))  # this venv's


def run_load_gates(
    reports: Path, args: tuple[str, ...], env: dict[str, str], *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """scripts/load_gates.sh (the ``make load`` recipe) with this venv's Locust, its reports
    under ``reports``: none of the caller's ``LOAD_`` settings, only those of ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOAD_")}
    base.update(LOCUST=LOCUST, LOAD_REPORTS=str(reports))
    base.update(env)
    return run(["bash", "scripts/load_gates.sh", *args], env=base, timeout=timeout)
