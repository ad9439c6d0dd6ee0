"""Load shapes, chosen by ``LOAD_SHAPE``: ``step`` (a staircase ramp) or ``spike``.

Locust uses a shape class found in ``-f`` automatically (the first one if there are
several), so a shape here is only *concrete* when ``LOAD_SHAPE`` names it: the
default run (``LOAD_SHAPE`` unset) is a plain ``-u``/``-r``/``-t`` run. Both shapes
read the common options (``use_common_options``): ``-u`` is the peak, ``-r`` the
spawn rate, ``-t`` the whole run (60 s when not given); they stop by themselves.

Try: ``LOAD_SHAPE=step locust -f loadtest --headless -u 30 -r 10 -t 60s``. Any other value
stops Locust at its ``init`` with one line saying which values it takes.
"""

from __future__ import annotations

import math
import os

from locust import LoadTestShape, events

CHOSEN = os.environ.get("LOAD_SHAPE", "").strip().lower()

DEFAULT_RUN_TIME = 60  # seconds, when -t is not given: a shape run is bounded too


class _CommonOptions:
    """Peak users, spawn rate and duration from ``-u``, ``-r`` and ``-t``."""

    runner: object

    def _options(self) -> tuple[int, float, float]:
        options = self.runner.environment.parsed_options
        peak = max(1, int(getattr(options, "num_users", None) or 1))
        rate = float(getattr(options, "spawn_rate", None) or peak)
        duration = float(getattr(options, "run_time", None) or DEFAULT_RUN_TIME)
        return peak, rate, duration


class StepRampShape(_CommonOptions, LoadTestShape):
    """Five equal steps up to ``-u`` users, each held a fifth of the run time."""

    abstract = CHOSEN != "step"
    use_common_options = True
    steps = 5

    def tick(self) -> tuple[int, float] | None:
        peak, rate, duration = self._options()
        elapsed = self.get_run_time()
        if elapsed >= duration:
            return None
        step = min(self.steps, int(elapsed / (duration / self.steps)) + 1)
        return math.ceil(peak * step / self.steps), rate


class SpikeShape(_CommonOptions, LoadTestShape):
    """A fifth of ``-u`` as baseline, a sudden spike to ``-u`` for the middle fifth, back."""

    abstract = CHOSEN != "spike"
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        peak, rate, duration = self._options()
        elapsed = self.get_run_time()
        if elapsed >= duration:
            return None
        baseline = max(1, peak // 5)
        if 0.4 * duration <= elapsed < 0.6 * duration:
            return peak, max(rate, float(peak))  # all at once: that is the spike
        return baseline, rate


@events.init.add_listener
def check_the_shape(**_kwargs) -> None:
    if CHOSEN not in {"", "step", "spike"}:
        raise SystemExit(f"LOAD_SHAPE={CHOSEN!r}: expected step, spike, or unset for a plain run")
