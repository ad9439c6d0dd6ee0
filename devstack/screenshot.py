"""The README's screenshot of the dashboard, taken from the running stack with the real Chromium.

    make screenshot                                   # = the command below, the stack up
    .venv/bin/python -m devstack.screenshot [--experiment block] [--service resolver]
        [--seconds 12] [--out docs/img/dashboard.png] [--idle]

Starts an experiment through the front (``POST /api/experiments``: ``block`` on the
resolver by default), opens the dashboard at 1440x900 in Chromium (``/usr/bin/chromium``,
or ``$CHROMIUM``; driven by Playwright, never a downloaded browser), waits until the fault
has held for ``--seconds``, saves the viewport as a PNG and stops the experiment. ``--idle``
takes the dashboard as it is, without starting anything. The front is ``WEB_HOST`` /
``WEB_PORT`` (127.0.0.1:8080 unless set), as for every other client.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devstack import ROOT

VIEWPORT = {"width": 1440, "height": 900}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
OUT = ROOT / "docs" / "img" / "dashboard.png"
MAX_BYTES = 300_000  # the README shows it: a PNG of reasonable size
SETTLE_S = 3.0  # the charts draw a second of data per feed message


def front() -> str:
    host = os.environ.get("WEB_HOST", "").strip() or "127.0.0.1"
    port = os.environ.get("WEB_PORT", "").strip() or "8080"
    return f"http://{host}:{port}"


def call(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    # the URL is built here from WEB_HOST and WEB_PORT: always http
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


def wait_for(what: str, ready: Any, deadline_s: float) -> None:
    """Poll ``ready()`` every 0.25 s until it is true; SystemExit past the deadline."""
    end = time.monotonic() + deadline_s
    while not ready():
        if time.monotonic() > end:
            raise SystemExit(f"screenshot: gave up waiting for {what} after {deadline_s:g} s")
        time.sleep(0.25)


def start_experiment(base: str, experiment: str, service: str, seconds: float) -> None:
    state = call(f"{base}/api/experiments")
    if not state["enabled"]:
        raise SystemExit("screenshot: this front's experiments are off (WEB_FAULTS)")
    if state["current"] is not None:
        raise SystemExit("screenshot: an experiment is running already; let it end first")
    run = call(
        f"{base}/api/experiments",
        "POST",
        {"experiment": experiment, "service": service, "duration_s": seconds + 10},
    )
    print(f"screenshot: started {run['title']} on {service}", file=sys.stderr)


def under_fault_for(base: str, seconds: float) -> bool:
    run = call(f"{base}/api/experiments/current")
    if run["state"] != "running":
        raise SystemExit(f"screenshot: the experiment ended early: {run['verdict']}")
    return run["phase"] == "during" and run["figures"]["during"].get("seconds", 0) >= seconds


def stop_experiment(base: str) -> None:
    try:
        call(f"{base}/api/experiments/current", "DELETE")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:  # 404: it had ended already
            raise


def shoot(base: str, out: Path, ready: Any, deadline_s: float) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM", "").strip() or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{base}/", wait_until="load")
            page.wait_for_function("document.querySelector('#feed')?.dataset.state === 'live'")
            wait_for("the picture", ready, deadline_s)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), type="png")
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devstack.screenshot", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--experiment", default="block", help="an id of GET /api/experiments")
    parser.add_argument("--service", default="resolver", help="the service it runs on")
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="how long the fault has held at the shot"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="the PNG to write")
    parser.add_argument("--idle", action="store_true", help="start no experiment")
    args = parser.parse_args(argv)
    base = front()
    if args.idle:
        settled = time.monotonic() + SETTLE_S
        shoot(base, args.out, lambda: time.monotonic() >= settled, SETTLE_S + 5)
    else:
        start_experiment(base, args.experiment, args.service, args.seconds)
        try:
            shoot(base, args.out, lambda: under_fault_for(base, args.seconds), args.seconds + 30)
        finally:
            stop_experiment(base)
    size = args.out.stat().st_size
    print(f"screenshot: {args.out} ({size // 1024} KiB, 1440x900)", file=sys.stderr)
    if size > MAX_BYTES:
        print(
            f"screenshot: larger than {MAX_BYTES // 1000} kB: too big for the README",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
