"""Everything the benchmark needs besides the venv: the C client and server compiled
with the system compiler, wrk and dnsperf from Debian, and optionally PyPy with Twisted.

Missing Debian tools are installed with apt-get when running as root; otherwise the
harness says what is missing and skips the cells that need it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import ROOT

LOG = logging.getLogger("bench.build")
BUILD = ROOT / "build" / "bench"
C_SOURCES = {"echo_client": "echo_client.c", "echo_server": "echo_server.c"}
APT_TOOLS = {"wrk": "wrk", "dnsperf": "dnsperf", "pypy3": "pypy3"}
# Twisted 26.x needs Python >= 3.10; Debian bookworm's pypy3 is 3.9, so the newest
# Twisted that installs there is pinned for the PyPy runs.
PYPY_TWISTED = "twisted==26.4.0"


@dataclass
class Toolbox:
    """Paths of what was found or built; ``missing`` says what was not and why."""

    client: Path | None = None
    server: Path | None = None
    wrk: str | None = None
    dnsperf: str | None = None
    pypy: Path | None = None
    missing: list[str] = field(default_factory=list)


def compile_c(out_dir: Path = BUILD) -> tuple[Path, Path]:
    """gcc -O2 both C programs into build/bench/ (the build fails loudly if gcc does)."""
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("no C compiler: apt-get install gcc")
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    for binary, source in C_SOURCES.items():
        target = out_dir / binary
        cmd = [compiler, "-O2", "-Wall", "-o", str(target), str(ROOT / "bench" / "c" / source)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)  # noqa: S603
        built.append(target)
    return built[0], built[1]


def apt_install(packages: list[str]) -> bool:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    LOG.info("installing %s with apt-get", " ".join(packages))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:  # noqa: S603
            LOG.warning("apt-get failed: %s", " ".join(cmd))
            return False
    return True


def pypy_venv(pypy3: str) -> Path | None:
    """build/bench/pypy-venv with Twisted, made once and reused."""
    venv = BUILD / "pypy-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import twisted"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:  # noqa: S603
        return python
    LOG.info("making %s with %s (a few minutes the first time)", venv, PYPY_TWISTED)
    steps = [
        [pypy3, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", PYPY_TWISTED],
    ]
    for cmd in steps:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)  # noqa: S603
        if result.returncode != 0:
            LOG.warning("pypy venv step failed: %s: %s", cmd, result.stderr[-500:])
            return None
    return python


def prepare(want_pypy: bool = True) -> Toolbox:
    tools = Toolbox()
    tools.client, tools.server = compile_c()
    wanted = [name for name in APT_TOOLS if name != "pypy3" or want_pypy]
    absent = [name for name in wanted if shutil.which(name) is None]
    if absent and not apt_install([APT_TOOLS[name] for name in absent]):
        LOG.warning("missing %s (not root, or apt-get failed)", ", ".join(absent))
    tools.wrk = shutil.which("wrk")
    tools.dnsperf = shutil.which("dnsperf")
    if tools.wrk is None:
        tools.missing.append("wrk (apt-get install wrk): HTTP cells skipped")
    if tools.dnsperf is None:
        tools.missing.append("dnsperf (apt-get install dnsperf): DNS cells skipped")
    if want_pypy:
        pypy3 = shutil.which("pypy3")
        tools.pypy = pypy_venv(pypy3) if pypy3 else None
        if tools.pypy is None:
            tools.missing.append("pypy3 + Twisted (apt-get install pypy3): PyPy cells skipped")
    return tools
