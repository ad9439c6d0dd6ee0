"""The stack as LOCAL PROCESSES: what ``make up`` runs when no Docker engine answers.

    .venv/bin/python -m devstack up     start the five services on 127.0.0.1, each once healthy
    .venv/bin/python -m devstack down   SIGTERM them (SIGKILL after a grace), wait until gone
    .venv/bin/python -m devstack ps     pid and state of each
    .venv/bin/python -m devstack logs   follow their logs (.run/<service>.log)

Ports come from the same variables as compose (WEB_PORT, TCP_ECHO_PORT, ...; README
defaults). ``POLYLOOP_PYPY=1`` runs dns and tcp_echo on build/pypy-venv. State lives in
.run/: a pid file per service, its log, and ``mode`` ("local"), which the tests read.
``scripts/stack.sh`` (``make up|down|ps|logs``) calls this; it handles containers itself.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack import ROOT, SERVICES, STOP_GRACE, Service, StartError, start

RUN = ROOT / ".run"
ENV_FILE = ROOT / ".env"  # compose's own: every `docker compose` command here reads it
TOKEN_VARIABLE = "POLYLOOP_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a value
PYPY = ROOT / "build" / "pypy-venv" / "bin" / "python"


def say(message: str) -> None:
    # the user's terminal, like scripts/stack.sh's own lines (stderr keeps stdout for data)
    print(f"[polyloop] {message}", file=sys.stderr, flush=True)


def pypy_wanted() -> bool:
    return os.environ.get("POLYLOOP_PYPY", "0").lower() in {"1", "true", "yes"}


def pid_file(service: Service) -> Path:
    return RUN / f"{service.name}.pid"


def running_pid(service: Service) -> int | None:
    """The pid in .run/<name>.pid if that process is alive and still runs this service
    (a pid file left by a crash may name a pid reused since)."""
    try:
        pid = int(pid_file(service).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if service.module.encode() in cmdline.split(b"\0") else None


def stack_env() -> dict[str, str]:
    """Every service's port variables, from the environment or the README defaults: each
    service is told where the others are."""
    env = {}
    for service in SERVICES.values():
        for variable, default in service.ports.items():
            env[variable] = os.environ.get(variable, "").strip() or str(default)
    # as in the PyPy images (services/Dockerfile says why)
    env["PYPY_GC_NURSERY"] = os.environ.get("PYPY_GC_NURSERY", "4MB")
    env[TOKEN_VARIABLE] = admin_token()
    return env


def admin_token(env_file: Path = ENV_FILE) -> str:
    """``POLYLOOP_ADMIN_TOKEN`` when set, else the one in ``.env``, made once and written there.

    The shared secret that changes faults: random, the same for every service of the stack
    and across ``make up`` runs (so a shell that read it once keeps working). ``.env`` in
    the project folder is compose's own file: every ``docker compose`` command run there
    reads it, so each of them (``--scale``, ``--profile load up``...) passes the same token
    and recreates nothing. It is gitignored and outside the images' build context, and
    readable by its owner only; the other lines of a ``.env`` the user keeps stay as they
    are. A token an earlier version left in ``.run/admin-token`` is taken over.
    """
    given = os.environ.get(TOKEN_VARIABLE, "").strip()
    if given:
        return given
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    for line in lines:
        name, _, value = line.partition("=")
        if name.strip() == TOKEN_VARIABLE and value.strip().strip("'\""):
            return value.strip().strip("'\"")
    legacy = env_file.parent / ".run" / "admin-token"
    token = legacy.read_text().strip() if legacy.exists() else ""
    token = token or secrets.token_urlsafe(32)
    kept = [line for line in lines if line.partition("=")[0].strip() != TOKEN_VARIABLE]
    note = "# the stack's secret that changes faults (written by make up; never commit it)"
    text = "\n".join([*kept, note, f"{TOKEN_VARIABLE}={token}"])
    # written whole beside it, owner-only from the start, then moved in place: never a
    # moment where others may read the token, nor a half-written .env
    temporary = env_file.with_name(f".env.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text + "\n")
    os.replace(temporary, env_file)
    return token


def up() -> int:
    say("running the five services as LOCAL PROCESSES on 127.0.0.1")
    say(f"(same code, same config variables; 'make down' stops them; logs in {RUN.name}/*.log)")
    if pypy_wanted():
        say(f"POLYLOOP_PYPY=1: dns and tcp_echo on PyPy ({PYPY.relative_to(ROOT)})")
        subprocess.run(["bash", "scripts/pypy-venv.sh"], cwd=ROOT, check=True)
    RUN.mkdir(exist_ok=True)
    # first: if a service fails to start, `make down` still stops the ones already running
    (RUN / "mode").write_text("local\n")
    env = stack_env()
    for service in SERVICES.values():
        if running_pid(service) is not None:
            say(f"{service.label} already running")
            continue
        python = PYPY if pypy_wanted() and service.pypy else sys.executable
        try:
            process = start(service.name, env, python=python, log=RUN / f"{service.name}.log")
        except StartError as exc:
            say(str(exc))
            return 1
        pid_file(service).write_text(f"{process.pid}\n")
        say(f"{service.label} healthy (pid {process.pid}, {service.port_variable}={process.port})")
    say("stack is up as local processes")
    return 0


def down() -> int:
    stopping: list[tuple[Service, int]] = []
    for service in SERVICES.values():
        pid = running_pid(service)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            stopping.append((service, pid))
    deadline = time.monotonic() + STOP_GRACE
    for service, pid in stopping:
        # not our children (an earlier `up` started them): poll until the pid is gone
        while running_pid(service) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # polling interval, not synchronisation
        if running_pid(service) is not None:
            say(f"{service.label} (pid {pid}) ignored SIGTERM for {STOP_GRACE:.0f} s: SIGKILL")
            os.kill(pid, signal.SIGKILL)
    for service in SERVICES.values():
        pid_file(service).unlink(missing_ok=True)
    if (RUN / "mode").exists() and (RUN / "mode").read_text().strip() == "local":
        (RUN / "mode").unlink()
    say(f"local processes stopped ({len(stopping)} were running)")
    return 0


def ps() -> int:
    for service in SERVICES.values():
        pid = running_pid(service)
        state = "running" if pid is not None else "stopped"
        print(f"{service.label:<10} pid {pid or '-':<8} {state}")
    return 0


def logs() -> int:
    files = sorted(str(path) for path in RUN.glob("*.log"))
    if not files:
        say(f"no logs in {RUN}")
        return 1
    os.execvp("tail", ["tail", "-n", "50", "-f", *files])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devstack", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "ps", "logs", "token"])
    command = parser.parse_args(argv).command
    return {"up": up, "down": down, "ps": ps, "logs": logs, "token": token}[command]()


def token() -> int:
    """Print the stack's admin token (made and written into ``.env`` if needed): ``make up``
    calls it first; ``kubectl create secret`` and ``scripts/swarm.sh`` read it from here."""
    print(admin_token())
    return 0


if __name__ == "__main__":
    sys.exit(main())
