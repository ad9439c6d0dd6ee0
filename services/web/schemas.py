"""The shapes of the front's API: the OpenAPI ``components.schemas`` of ``GET /api/openapi.json``.

The limits come from the running config, so the document states what this instance accepts;
the fault bounds are ``services.common.faults``' own, the host-name rule the resolver's
(``services.common.hostname``).
"""

from __future__ import annotations

from typing import Any

from services.common import faults, hostname
from services.common.catalogue import NAMES
from services.web.backends import Backend
from services.web.config import WebConfig
from services.web.experiments import EXPERIMENTS, MAX_SECONDS, MIN_SECONDS
from services.web.faults import SERVICES as FAULT_SERVICES
from services.web.operations import ref
from services.web.scrape import LIVE_EVENTS, LIVE_FRAMES
from services.web.validation import MODES


def schemas(config: WebConfig) -> dict[str, Any]:
    names = {
        "type": "array",
        "minItems": 1,
        "maxItems": config.resolver_max_names,
        # a trailing dot is allowed beyond the 253 characters of the name
        "items": {
            "type": "string",
            "maxLength": hostname.MAX_LENGTH + 1,
            "pattern": hostname.PATTERN,
        },
        "description": "Host names; those under polyloop.test are served by the stack's dns",
    }
    timeout = {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": config.resolver_max_timeout,
        "default": config.resolve_default_timeout,
        "description": "Seconds the resolver waits before answering `timeout` for a name",
    }
    nullable_number = {"type": ["number", "null"]}
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status", "detail", "instance"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "field": {"type": "string", "description": "the request field at fault"},
                "backend": {
                    "enum": [backend.value for backend in Backend],
                    "description": "the backend at fault",
                },
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "BackendState": {
            "type": "object",
            "required": ["state", "latency_ms", "error", "replicas"],
            "properties": {
                "state": {"enum": ["up", "down"]},
                "latency_ms": nullable_number,
                "error": {"type": ["string", "null"]},
                "replicas": ref("Replicas"),
            },
        },
        "Replicas": {
            "type": "object",
            "description": "every replica the backend's name resolves to (backends/replicas.py)",
            "required": ["count", "up", "replicas"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "up": {"type": "integer", "minimum": 0},
                "replicas": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["address", "state", "calls", "failures", "error"],
                        "properties": {
                            "address": {"type": "string"},
                            "state": {"enum": ["up", "down"]},
                            "calls": {"type": "integer", "minimum": 0},
                            "failures": {"type": "integer", "minimum": 0},
                            "error": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "backends"],
            "properties": {
                "status": {"enum": ["ready", "unavailable"]},
                "backends": {
                    "type": "object",
                    "required": [backend.value for backend in Backend],
                    "additionalProperties": ref("BackendState"),
                },
            },
        },
        "ServiceLive": {
            "type": "object",
            "description": "What one service says of itself on its metrics port",
            "required": [
                "state",
                "rate",
                "lag_p99_ms",
                "blocked_ms",
                "error",
                "metrics",
                "stalls",
                "steady",
            ],
            "properties": {
                "state": {"enum": ["up", "down"]},
                "rate": {
                    "type": "number",
                    "minimum": 0,
                    "description": "requests/s served to others (the stack's own probes apart)",
                },
                "lag_p99_ms": {
                    **nullable_number,
                    "description": "event-loop lag p99 over the last 5 s",
                },
                "blocked_ms": {
                    "type": "number",
                    "minimum": 0,
                    "description": "blocked now: the longest the loop went without its timer in"
                    " the last 2 s, or the stall in progress if longer",
                },
                "error": {"type": ["string", "null"], "description": "why it is down"},
                "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                "stalls": {
                    "anyOf": [ref("StallsLive"), {"type": "null"}],
                    "description": "where its loop blocked (null: down, or not read yet)",
                },
                "steady": ref("Steady"),
                "replicas": {
                    "type": "array",
                    "description": "Each replica's own (the service adds them up: rates and"
                    " metrics summed, the worst lag and block)",
                    "items": {
                        "type": "object",
                        "required": ["address", "state", "rate", "lag_p99_ms", "blocked_ms"],
                        "properties": {
                            "address": {"type": "string"},
                            "state": {"enum": ["up", "down"]},
                            "rate": {"type": "number", "minimum": 0},
                            "lag_p99_ms": nullable_number,
                            "blocked_ms": {"type": "number", "minimum": 0},
                            "error": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        },
        "Steady": {
            "type": "object",
            "description": (
                "The front's steady client's calls to the service that ended in the last"
                " second (null figures when none did)"
            ),
            "required": ["p50_ms", "max_ms", "calls", "errors", "last_error", "in_flight_ms"],
            "properties": {
                "p50_ms": nullable_number,
                "max_ms": nullable_number,
                "calls": {"type": "integer", "minimum": 0},
                "errors": {"type": "integer", "minimum": 0},
                "last_error": {"type": ["string", "null"]},
                "in_flight_ms": {
                    **nullable_number,
                    "description": "how long the call still waiting has waited",
                },
            },
        },
        "Pong": {
            "type": "object",
            "required": ["pong"],
            "properties": {"pong": {"const": True}},
        },
        "Stack": {
            "type": "object",
            "required": ["services", "front_loop", "steady"],
            "properties": {
                "services": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "loop", "framework", "port", "transport", "backend"],
                        "properties": {
                            "name": {"enum": list(NAMES)},
                            "loop": {"type": "string"},
                            "framework": {"type": "string"},
                            "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                            "transport": {"enum": ["tcp", "udp", "udp+tcp"]},
                            "backend": {"type": "boolean"},
                        },
                    },
                },
                "front_loop": {"enum": ["asyncio", "uvloop"]},
                "steady": {
                    "type": "object",
                    "required": ["enabled", "rate", "timeout_s"],
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "rate": {"type": "number", "description": "calls/s to each service"},
                        "timeout_s": {"type": "number"},
                    },
                },
            },
        },
        **_stall_schemas(),
        **_experiment_schemas(),
        "Live": {
            "type": "object",
            "required": ["services", "front", "ts"],
            "properties": {
                "services": {
                    "type": "object",
                    "required": ["tcp-echo", "udp-echo", "resolver", "dns", "web"],
                    "additionalProperties": ref("ServiceLive"),
                },
                "front": {
                    "type": "object",
                    "description": "The front's own measurements of its backend calls",
                    "required": ["stats", "backends", "loop"],
                    "properties": {
                        "stats": {"type": "object"},
                        "backends": {
                            "type": "object",
                            "additionalProperties": ref("BackendState"),
                        },
                        "loop": {
                            "enum": ["asyncio", "uvloop"],
                            "description": "the event loop serving the front (`WEB_LOOP`)",
                        },
                    },
                },
                "ts": {"type": "number"},
            },
        },
        "EchoRequest": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": _message(config.max_message)},
        },
        "UdpEchoRequest": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": _message(
                    config.udp_max_message,
                    f": one datagram, udp-echo drops datagrams over {config.udp_max_datagram}"
                    " bytes",
                )
            },
        },
        "EchoResult": {
            "type": "object",
            "required": ["echo", "bytes", "latency_ms"],
            "properties": {
                "echo": {"type": "string"},
                "bytes": {"type": "integer", "minimum": 1},
                "latency_ms": {"type": "number", "minimum": 0},
            },
        },
        "ResolveRequest": {
            "type": "object",
            "required": ["names"],
            "properties": {
                "names": names,
                "timeout": timeout,
                "mode": {"enum": list(MODES), "default": "concurrent"},
            },
        },
        "ResolveAnswer": {
            "type": "object",
            "description": "The resolver's answer, passed through unchanged",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "addresses", "error"],
                        "properties": {
                            "name": {"type": "string"},
                            "addresses": {"type": "array", "items": {"type": "string"}},
                            "error": {"type": ["string", "null"]},
                            "elapsed_ms": nullable_number,
                        },
                    },
                },
                "elapsed_ms": nullable_number,
                "mode": {"enum": list(MODES)},
            },
        },
        "FanoutRequest": {
            "type": "object",
            "required": ["message", "names"],
            "properties": {
                "message": _message(config.udp_max_message, " (UDP)"),
                "names": names,
                "timeout": timeout,
            },
        },
        "FanoutResult": {
            "type": "object",
            "description": "One slot per part: its result, or a problem if that part failed",
            "required": ["tcp", "udp", "resolve", "failed", "elapsed_ms"],
            "properties": {
                "tcp": {"anyOf": [ref("EchoResult"), ref("Problem")]},
                "udp": {"anyOf": [ref("EchoResult"), ref("Problem")]},
                "resolve": {"anyOf": [ref("ResolveAnswer"), ref("Problem")]},
                "failed": {"type": "array", "items": {"enum": ["tcp", "udp", "resolve"]}},
                "elapsed_ms": {"type": "number", "minimum": 0},
            },
        },
        **_fault_schemas(),
    }


def _stall_schemas() -> dict[str, Any]:
    # what services.common.loops.stalls serves on each control port (GET /stalls)
    stack = {
        "type": "array",
        "items": {"type": "string", "description": "path:line in function"},
        "description": "the loop thread's stack, innermost frame LAST",
    }
    number = {"type": "number", "minimum": 0}
    cut = {
        "stack": {**stack, "maxItems": LIVE_FRAMES, "description": "its innermost frames"},
        "frames": {"type": "integer", "minimum": 0, "description": "how many it has in all"},
    }
    return {
        "StallEvent": {
            "type": "object",
            "required": ["at", "duration_ms", "stack"],
            "properties": {
                "at": {"type": "number", "description": "when it began (unix seconds)"},
                "duration_ms": {
                    **number,
                    "description": "how late the loop's timer fired (at most one lag "
                    "interval shorter than the blocking call)",
                },
                "stack": {
                    **stack,
                    "description": "the stack seen most while it lasted, innermost LAST; "
                    "empty when the watchdog could not run during it",
                },
            },
        },
        "ServiceStalls": {
            "type": "object",
            "description": "A service's GET /stalls; one that does not answer is 'down'",
            "properties": {
                "service": {"type": ["string", "null"]},
                "loop": {"enum": ["twisted", "asyncio", "gevent"]},
                "threshold_ms": number,
                "watchdog": {
                    "type": ["object", "null"],
                    "description": "null: POLYLOOP_STALL_WATCHDOG=0 (no stacks)",
                },
                "stalls_total": {"type": "integer", "minimum": 0},
                "stalled_seconds_total": number,
                "stalled_now": {
                    "type": ["object", "null"],
                    "required": ["since_ms", "stack"],
                    "properties": {"since_ms": number, "stack": stack},
                },
                "events": {
                    "type": "array",
                    "items": ref("StallEvent"),
                    "description": "the newest POLYLOOP_STALL_EVENTS stalls, oldest first",
                },
                "state": {"enum": ["down"]},
                "detail": {"type": "string"},
            },
        },
        "Stalls": {
            "type": "object",
            "required": ["services"],
            "properties": {
                "services": {
                    "type": "object",
                    "required": list(NAMES),
                    "additionalProperties": ref("ServiceStalls"),
                }
            },
        },
        "StallsLive": {
            "type": "object",
            "description": "GET /stalls in short: the stall in progress, the last few",
            "required": ["threshold_ms", "stalls_total", "stalled_now", "events"],
            "properties": {
                "threshold_ms": number,
                "stalls_total": {"type": "integer", "minimum": 0},
                "stalled_now": {
                    "type": ["object", "null"],
                    "required": ["since_ms", "stack", "frames"],
                    "properties": {"since_ms": number, **cut},
                },
                "events": {
                    "type": "array",
                    "maxItems": LIVE_EVENTS,
                    "items": {
                        "type": "object",
                        "required": ["at", "duration_ms", "stack", "frames"],
                        "properties": {"at": {"type": "number"}, "duration_ms": number, **cut},
                    },
                },
            },
        },
    }


def _experiment_schemas() -> dict[str, Any]:
    nullable_number = {"type": ["number", "null"]}
    figures = {
        "type": "object",
        "description": "Each service's figures over one phase (empty until it has run)",
        "properties": {
            "seconds": {"type": "number", "minimum": 0},
            "services": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "steady_p50_ms": nullable_number,
                        "steady_max_ms": nullable_number,
                        "steady_calls": {"type": "integer", "minimum": 0},
                        "steady_errors": {"type": "integer", "minimum": 0},
                        "steady_last_error": {"type": ["string", "null"]},
                        "lag_p99_ms": nullable_number,
                        "rate": nullable_number,
                        "blocked_max_ms": nullable_number,
                        "down_seconds": {"type": "integer", "minimum": 0},
                    },
                },
            },
            "concurrent": ref("ContrastFigures"),
            "sequential": ref("ContrastFigures"),
        },
    }
    return {
        "ExperimentRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["experiment", "service"],
            "properties": {
                "experiment": {"enum": list(EXPERIMENTS)},
                "service": {"enum": list(NAMES), "description": "one of the experiment's"},
                "duration_s": {
                    "type": "number",
                    "minimum": MIN_SECONDS,
                    "maximum": MAX_SECONDS,
                    "description": "seconds under the fault (default WEB_EXPERIMENT_SECONDS)",
                },
            },
        },
        "ExperimentKind": {
            "type": "object",
            "required": ["id", "title", "watch_for", "services", "duration_s"],
            "properties": {
                "id": {"enum": list(EXPERIMENTS)},
                "title": {"type": "string"},
                "watch_for": {"type": "string"},
                "services": {"type": "array", "items": {"enum": list(NAMES)}},
                "duration_s": {"type": "number", "minimum": 0},
            },
        },
        "Experiment": {
            "type": "object",
            "required": [
                "run",
                "experiment",
                "service",
                "title",
                "watch_for",
                "state",
                "phase",
                "started_at",
                "ends_at",
                "duration_s",
                "baseline_s",
                "verdict",
                "reason",
                "figures",
            ],
            "properties": {
                "run": {"type": "integer", "minimum": 1},
                "experiment": {"enum": list(EXPERIMENTS)},
                "service": {"enum": list(NAMES)},
                "title": {"type": "string"},
                "watch_for": {"type": "string"},
                "state": {"enum": ["running", "done", "stopped", "failed"]},
                "phase": {"enum": ["before", "during", "after"]},
                "started_at": {"type": "number", "description": "unix seconds"},
                "ends_at": {"type": "number", "description": "unix seconds, when it will end"},
                "duration_s": {"type": "number", "description": "seconds under the fault"},
                "baseline_s": {"type": "number", "description": "seconds measured before it"},
                "verdict": {
                    "type": ["string", "null"],
                    "description": "in words, every figure from the run; null while it runs",
                },
                "reason": {"type": ["string", "null"], "description": "why it failed"},
                "figures": {
                    "type": "object",
                    "required": ["before", "during"],
                    "properties": {"before": figures, "during": figures},
                },
            },
        },
        "ContrastFigures": {
            "type": "object",
            "required": ["names", "resolved", "elapsed_ms"],
            "properties": {
                "names": {"type": "integer", "minimum": 0},
                "resolved": {"type": "integer", "minimum": 0},
                "elapsed_ms": {"type": "number", "minimum": 0},
                "resolver_elapsed_ms": nullable_number,
            },
        },
        "Experiments": {
            "type": "object",
            "required": ["enabled", "available", "current", "last"],
            "properties": {
                "enabled": {"type": "boolean", "description": "POST/DELETE allowed (WEB_FAULTS)"},
                "available": {"type": "array", "items": ref("ExperimentKind")},
                "current": {"anyOf": [ref("Experiment"), {"type": "null"}]},
                "last": {"anyOf": [ref("Experiment"), {"type": "null"}]},
            },
        },
    }


def _fault_schemas() -> dict[str, Any]:
    # the bounds are services.common.faults' own: one definition
    return {
        "FaultSpec": {
            "type": "object",
            "additionalProperties": False,
            "description": "All faults at once (a new PUT replaces the old; all zero clears)",
            "properties": {
                "block_ms": {"type": "integer", "minimum": 0, "maximum": faults.MAX_BLOCK_MS},
                "block_every_second": {"type": "boolean", "default": False},
                "block_kind": {
                    "enum": list(faults.BLOCK_KINDS),
                    "default": "sleep",
                    "description": "what blocks the loop: sleep (a blocking sleep), cpu "
                    "(pure-Python work), sync_dns (the resolver only: a zone lookup over "
                    "the un-patched socket module); another is a 422 naming block_kind",
                },
                "latency_ms": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": faults.MAX_LATENCY_MS,
                },
                "fail_percent": {"type": "number", "minimum": 0, "maximum": 100},
                "duration_s": {
                    "type": "number",
                    "minimum": 1,
                    "maximum": faults.MAX_DURATION_S,
                    "default": faults.DEFAULT_DURATION_S,
                },
            },
        },
        "FaultState": {
            "type": "object",
            "description": "What is active now on the service's replicas (active while one"
            " is); a service none of whose replicas answers is 'down'",
            "properties": {
                "active": {"type": "boolean"},
                "faults": {"type": "object"},
                "remaining_s": {"type": "number", "minimum": 0},
                "state": {"enum": ["down"]},
                "detail": {"type": "string"},
                "replicas": {"type": "array", "items": ref("ReplicaFaults")},
            },
        },
        "ReplicaFaults": {
            "type": "object",
            "description": "One replica's faults, or why it did not answer",
            "required": ["address", "state"],
            "properties": {
                "address": {"type": "string"},
                "state": {"enum": ["up", "down"]},
                "active": {"type": "boolean"},
                "faults": {"type": "object"},
                "remaining_s": {"type": "number", "minimum": 0},
                "token": {
                    "enum": ["accepted", "refused", "missing", "configured", None],
                    "description": "whether it holds the front's token ('missing': none)",
                },
                "detail": {"type": ["string", "null"]},
            },
        },
        "Faults": {
            "type": "object",
            "required": ["enabled", "token", "services"],
            "properties": {
                "enabled": {
                    "type": "boolean",
                    "description": "PUT/DELETE allowed (WEB_FAULTS; off where the front is"
                    " reached beyond loopback)",
                },
                "token": {
                    "type": "object",
                    "required": ["state", "detail"],
                    "description": "Whether the front and every replica hold the same"
                    " POLYLOOP_ADMIN_TOKEN: 'ok'; 'missing' (one holds none: nothing can be"
                    " changed there), 'mismatch' (one holds another), 'unknown' (not read"
                    " yet); `detail` says it in words",
                    "properties": {
                        "state": {"enum": ["ok", "missing", "mismatch", "unknown"]},
                        "detail": {"type": ["string", "null"]},
                    },
                },
                "services": {
                    "type": "object",
                    "properties": {name: ref("FaultState") for name in FAULT_SERVICES},
                },
            },
        },
    }


def _message(max_bytes: int, why: str = "") -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_bytes,
        "description": f"At most {max_bytes} bytes in UTF-8{why}",
    }
