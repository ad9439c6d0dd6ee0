"""``WEB_LOOP``: the front as a process on asyncio's loop or on uvloop, and ``GET /api/live``
saying which one serves it (the dashboard shows it).

Starts ``python -m services.web`` itself (devstack, free ports; no backend needed).
Run: .venv/bin/pytest tests/unit/test_web_loop.py
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import Process, start, stop


@pytest.fixture(params=["asyncio", "uvloop"])
def front(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Process]]:
    process = start("web", {"WEB_LOOP": request.param, "LOG_LEVEL": "INFO"}, log=tmp_path / "w")
    try:
        yield request.param, process
    finally:
        stop(process)


def test_the_front_runs_on_the_loop_it_is_told_and_says_so(front) -> None:
    loop, process = front
    with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/api/live", timeout=5) as r:
        live = json.load(r)
    assert live["front"]["loop"] == loop
    records = [json.loads(line) for line in process.log_lines()]
    assert any(r["msg"] == "web front starting" and r["loop"] == loop for r in records)
