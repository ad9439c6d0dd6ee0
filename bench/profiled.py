"""Run a service under cProfile, switched on and off by signals, counting CPU time only.

    .venv/bin/python -m bench.profiled OUT.prof services.resolver   # a module, or a script:
    .venv/bin/python -m bench.profiled OUT.prof bench/servers/pywsgi_resolve.py 27201
    kill -USR1 PID    # start profiling (after the warm-up)
    kill -USR2 PID    # stop and write OUT.prof (read it with python -m pstats OUT.prof)

Read the functions' own time ("tottime"): the cumulative times of code that switches
greenlets or awaits mix in other requests' work. Used by ``.venv/bin/python -m bench.profile``.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time


def main(out: str, target: str, *args: str) -> None:
    # perf_counter, not process_time: the CPU clock is a system call per event here, which
    # multiplied the cost of every Python call by four; a function's own time ("tottime")
    # still excludes the time the loop waits in epoll (that is the hub's, or the loop's)
    profile = cProfile.Profile(time.perf_counter)

    def begin(signum: int, frame: object) -> None:
        profile.enable()

    def end(signum: int, frame: object) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, begin)
    signal.signal(signal.SIGUSR2, end)
    sys.argv = [target, *args]
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
