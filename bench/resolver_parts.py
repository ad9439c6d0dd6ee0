"""Where do the resolver's µs per request go? Each part of ``POST /resolve`` timed alone.

    .venv/bin/python -m bench.resolver_parts [--calls 3000]

In this process (gevent-patched, pinned to the server core), with a dns service started
as a local process: the resolver's WSGI app called directly with one cached name, then
each piece it is made of, and the minimal pywsgi program's app doing the same job, each
the best of five rounds of ``--calls`` calls, in CPU µs per call (``time.process_time``).
No sockets and no pywsgi here (both programs share that part), so the first two lines'
difference is the resolver's own cost. Not a test: the figures follow the machine.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from http import HTTPStatus  # noqa: E402

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from bench.procs import ROOT, Servers, cores  # noqa: E402
from bench.servers.pywsgi_resolve import application as minimal_app  # noqa: E402
from bench.stack import start  # noqa: E402
from services.common.logging import setup_logging  # noqa: E402
from services.resolver.api import ResolverApp  # noqa: E402
from services.resolver.request import Limits, parse_request  # noqa: E402
from services.resolver.resolve import Resolver  # noqa: E402

NAME = "www.polyloop.test"
BODY = json.dumps({"names": [NAME]}).encode()
log = logging.getLogger("bench.resolver_parts")


def environ() -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/resolve",
        "CONTENT_LENGTH": str(len(BODY)),
        "wsgi.input": io.BytesIO(BODY),
    }


def start_response(status: str, headers: list, exc_info: object = None) -> None:
    pass


def cost(func: Callable[[], object], calls: int) -> float:
    """Best of five rounds: CPU µs per call of ``func``."""
    func()
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(calls):
            func()
        best = min(best, (time.process_time() - started) / calls * 1e6)
    return best


def parts(app: ResolverApp, resolver: Resolver) -> list[tuple[str, Callable[[], object]]]:
    metrics = app.metrics
    answer = {
        "results": [{"name": NAME, "addresses": ["192.0.2.10"], "error": None, "elapsed_ms": 0.1}],
        "elapsed_ms": 0.2,
        "mode": "concurrent",
    }

    def far() -> float:
        return time.monotonic() + 5

    def pool_of_one() -> None:
        pool = Pool(resolver.pool_size)
        jobs = [pool.spawn(int)]
        gevent.joinall(jobs, timeout=5)
        pool.kill(block=True, timeout=1)

    def two_greenlets() -> None:
        jobs = [gevent.spawn(int) for _ in range(2)]
        gevent.joinall(jobs)
        gevent.killall(jobs)

    return [
        ("resolver: the whole WSGI app, 1 cached name", lambda: app(environ(), start_response)),
        ("minimal: the whole WSGI app, same job", lambda: minimal_app(environ(), start_response)),
        ("  parse_request (json.loads + validation)", lambda: parse_request(BODY, app.limits)),
        ("  json.loads alone", lambda: json.loads(BODY)),
        ("  resolve_many (Pool + joinall + lookup)", lambda: resolver.resolve_many([NAME], 5.0)),
        ("    lookups.known (both answers cached)", lambda: resolver.lookups.known(NAME)),
        (
            "    lookups.ask (A greenlet + AAAA, from cache)",
            lambda: resolver.lookups.ask(NAME, far()),
        ),
        ("    Pool(256) + spawn + joinall + kill, empty job", pool_of_one),
        ("    2 x spawn + joinall + killall, empty jobs", two_greenlets),
        ("  json.dumps of the answer", lambda: json.dumps(answer).encode()),
        ("  app._body (read the body, check its size)", lambda: app._body(environ())),
        ("  HTTPStatus(200).phrase", lambda: HTTPStatus(200).phrase),
        (
            "  metrics: count_request(...)",
            lambda: metrics.count_request("POST", "/resolve", "200"),
        ),
        ("  metrics: time_resolve(mode, s)", lambda: metrics.time_resolve("concurrent", 0.001)),
        ("  metrics: count_names(outcome)", lambda: metrics.count_names("ok", 1)),
        (
            "  log.info('resolved', extra=...) below the level",
            lambda: logging.getLogger("services.resolver.api").info("resolved", extra={"n": 1}),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m bench.resolver_parts", description=__doc__
    )
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--log-level", default="WARNING", help="the resolver's LOG_LEVEL")
    args = parser.parse_args(argv)
    setup_logging("resolver", args.log_level)
    with Servers(ROOT / "reports" / "bench" / "logs" / "resolver-parts") as servers:
        dns_port = start(servers, ("dns",)).dns
        os.sched_setaffinity(0, cores()[0])
        resolver = Resolver("127.0.0.1", dns_port, cache_size=10_000)
        app = ResolverApp(resolver, Limits())
        app(environ(), start_response)  # fills the cache
        rows = [(label, cost(func, args.calls)) for label, func in parts(app, resolver)]
    whole = rows[0][1]
    out = [f"{'part':52s} {'µs/call':>8s} {'of app':>7s}"]
    out += [f"{label:52s} {us:8.1f} {us / whole:7.0%}" for label, us in rows]
    out.append(f"{'resolver app - minimal app':52s} {whole - rows[1][1]:8.1f}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
