"""Typed application keys shared by the front's modules (aiohttp's ``web.AppKey``)."""

from __future__ import annotations

from aiohttp import web

from services.web.backends.clients import BackendClients
from services.web.config import WebConfig
from services.web.metrics import Metrics
from services.web.stats import BackendStats

STATS = web.AppKey("stats", BackendStats)
CONFIG = web.AppKey("config", WebConfig)
METRICS = web.AppKey("metrics", Metrics)
# set while the app runs (between startup and cleanup, by app.backends_ctx)
CLIENTS = web.AppKey("backend_clients", BackendClients)
