"""The OpenAPI 3.1 description of the front, served at ``GET /api/openapi.json``.

Every route the app registers is here (static files aside) with its request and response
schemas, errors included as ``application/problem+json`` (RFC 9457). The limits come
from the running config, so the document states what this instance accepts.

Try it: curl -s http://127.0.0.1:8080/api/openapi.json | python -m json.tool
"""

from __future__ import annotations

from typing import Any

from services.common import hostname
from services.web.backends import Backend
from services.web.config import WebConfig
from services.web.validation import MODES

JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": _ref("Problem")}}}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(schema)}}}


def _post(summary: str, request: str, ok: str, *, backend: bool = True) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": _json("Success", ok),
        "400": _problem("The body is not valid JSON"),
        "405": _problem("Method not allowed"),
        "408": _problem("The body did not arrive whole within WEB_BODY_TIMEOUT"),
        "413": _problem("The body is larger than WEB_MAX_BODY"),
        "422": _problem("Valid JSON of the wrong shape; `field` names the culprit"),
        "500": _problem("Unexpected error (no internals disclosed)"),
    }
    if backend:
        responses |= {
            "502": _problem("The backend answered something unexpected"),
            "503": _problem("The backend is down (answered at once)"),
            "504": _problem("The backend did not answer within the timeout"),
        }
    return {"post": {"summary": summary, "requestBody": _body(request), "responses": responses}}


def _get(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": responses | {"405": _problem("Method not allowed")},
        }
    }


def _schemas(config: WebConfig) -> dict[str, Any]:
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
                "replicas": _ref("Replicas"),
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
                    "additionalProperties": _ref("BackendState"),
                },
            },
        },
        "ServiceLive": {
            "type": "object",
            "description": "What one service says of itself on its metrics port",
            "required": ["state", "rate", "lag_p99_ms", "blocked_ms", "error", "metrics"],
            "properties": {
                "state": {"enum": ["up", "down"]},
                "rate": {"type": "number", "minimum": 0, "description": "requests/s, any client"},
                "lag_p99_ms": {
                    **nullable_number,
                    "description": "event-loop lag p99 over the last 5 s",
                },
                "blocked_ms": {"type": "number", "minimum": 0, "description": "blocked now"},
                "error": {"type": ["string", "null"], "description": "why it is down"},
                "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
            },
        },
        "Live": {
            "type": "object",
            "required": ["services", "front", "ts"],
            "properties": {
                "services": {
                    "type": "object",
                    "required": ["tcp-echo", "udp-echo", "resolver", "dns", "web"],
                    "additionalProperties": _ref("ServiceLive"),
                },
                "front": {
                    "type": "object",
                    "description": "The front's own measurements of its backend calls",
                    "required": ["stats", "backends"],
                    "properties": {
                        "stats": {"type": "object"},
                        "backends": {
                            "type": "object",
                            "additionalProperties": _ref("BackendState"),
                        },
                    },
                },
                "ts": {"type": "number"},
            },
        },
        "EchoRequest": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": config.max_message,
                    "description": f"At most {config.max_message} bytes in UTF-8",
                }
            },
        },
        "UdpEchoRequest": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": config.udp_max_message,
                    "description": (
                        f"At most {config.udp_max_message} bytes in UTF-8: one datagram, "
                        f"udp-echo drops datagrams over {config.udp_max_datagram} bytes"
                    ),
                }
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
                "message": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": config.udp_max_message,
                    "description": f"At most {config.udp_max_message} bytes in UTF-8 (UDP)",
                },
                "names": names,
                "timeout": timeout,
            },
        },
        "FanoutResult": {
            "type": "object",
            "description": "One slot per part: its result, or a problem if that part failed",
            "required": ["tcp", "udp", "resolve", "failed", "elapsed_ms"],
            "properties": {
                "tcp": {"anyOf": [_ref("EchoResult"), _ref("Problem")]},
                "udp": {"anyOf": [_ref("EchoResult"), _ref("Problem")]},
                "resolve": {"anyOf": [_ref("ResolveAnswer"), _ref("Problem")]},
                "failed": {"type": "array", "items": {"enum": ["tcp", "udp", "resolve"]}},
                "elapsed_ms": {"type": "number", "minimum": 0},
            },
        },
    }


def openapi_document(config: WebConfig) -> dict[str, Any]:
    """The OpenAPI 3.1 document for an app built with `config`."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "polyloop web front",
            "version": "0.1.0",
            "description": (
                "The aiohttp front of polyloop: echoes over TCP (Twisted) and UDP (asyncio), "
                "resolves names (gevent), fans out to all three at once. Errors are "
                f"application/problem+json; request bodies are limited to {config.max_body} "
                "bytes."
            ),
        },
        "paths": {
            "/": _get(
                "The live dashboard (HTML)",
                {"200": {"description": "The page", "content": {"text/html": {}}}},
            ),
            "/healthz": _get("The front is serving", {"200": _json("Serving", "Health")}),
            "/readyz": _get(
                "Every backend answers a real round trip",
                {
                    "200": _json("All four backends are up", "Readiness"),
                    "503": _json("At least one backend is down", "Readiness"),
                },
            ),
            "/metrics": _get(
                "Prometheus metrics of the front",
                {"200": {"description": "Text exposition", "content": {"text/plain": {}}}},
            ),
            "/api/live": _get(
                "Every service's own rate and loop lag, and the front's view of its backends",
                {"200": _json("What the dashboard shows", "Live")},
            ),
            "/api/openapi.json": _get(
                "This document",
                {"200": {"description": "OpenAPI 3.1", "content": {JSON: {}}}},
            ),
            "/api/echo/tcp": _post("Echo a message via tcp-echo", "EchoRequest", "EchoResult"),
            "/api/echo/udp": _post("Echo a message via udp-echo", "UdpEchoRequest", "EchoResult"),
            "/api/resolve": _post(
                "Resolve names via the resolver", "ResolveRequest", "ResolveAnswer"
            ),
            "/api/fanout": _post(
                "TCP echo, UDP echo and resolve concurrently",
                "FanoutRequest",
                "FanoutResult",
                backend=False,
            ),
        },
        "components": {"schemas": _schemas(config)},
        # OpenAPI has no way to describe a WebSocket: /ws/live is left out of `paths`
        # (a plain GET there only ever gets a 400) and said here instead
        "x-websockets": {
            "/ws/live": {
                "description": (
                    "WebSocket (RFC 6455), one-way: one JSON message a second, "
                    '`{"type": "stats", "ts", "stats", "backends", "services"}` '
                    "(`services` as in GET /api/live). At most WEB_LIVE_MAX_CLIENTS clients "
                    "(the next is closed with 1013); a client message over "
                    "WEB_LIVE_MAX_MESSAGE bytes closes it with 1009."
                ),
            }
        },
    }
