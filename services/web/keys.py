"""Typed application keys shared by the front's modules (aiohttp's ``web.AppKey``)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from services.common.faults import Faults
from services.common.loops import Watch
from services.web.backends.clients import BackendClients
from services.web.config import WebConfig
from services.web.metrics import Metrics
from services.web.stats import BackendStats

STATS = web.AppKey("stats", BackendStats)
CONFIG = web.AppKey("config", WebConfig)
METRICS = web.AppKey("metrics", Metrics)
# the OpenAPI document of GET /api/openapi.json, written by create_app (openapi.py)
OPENAPI = web.AppKey("openapi", dict)
# set while the app runs (between startup and cleanup, by app.backends_ctx)
CLIENTS = web.AppKey("backend_clients", BackendClients)
# the front's own fault state, and the session that reaches the services' control ports
FAULTS = web.AppKey("faults", Faults)
FAULT_SESSION = web.AppKey("fault_session", aiohttp.ClientSession)
# what watches the front's own loop (lag timer, fault hooks, control port), while it runs
WATCH = web.AppKey("watch", Watch)
