"""Typed application keys shared by the front's modules (aiohttp's ``web.AppKey``)."""

from __future__ import annotations

from aiohttp import web

from services.web.stats import BackendStats

STATS = web.AppKey("stats", BackendStats)
