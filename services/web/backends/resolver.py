"""The gevent resolver, over one pooled keep-alive ``aiohttp.ClientSession``.

``resolve`` passes a validated request to ``POST /resolve`` and returns the resolver's
answer as it came; ``ping`` is ``GET /healthz`` for readiness.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from services.web.backends import Backend
from services.web.errors import BadBackendReply

NAME = Backend.RESOLVER


class ResolverClient:
    def __init__(self, host: str, port: int, *, limit: int) -> None:
        self.base_url = f"http://{host}:{port}"
        self.session = aiohttp.ClientSession(
            base_url=self.base_url,
            # No DNS cache: connections are pooled, so a lookup happens only for a new one,
            # and a cached address of a stopped container would turn a fast 503 into a
            # connect that hangs until the timeout.
            connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=30, use_dns_cache=False),
            # the caller's BackendCall bounds the whole call; no second clock here
            timeout=aiohttp.ClientTimeout(total=None),
            raise_for_status=False,
        )

    async def resolve(self, request: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post("/resolve", json=request) as response:
            body = await _json_body(response)
            if response.status != 200:
                raise BadBackendReply(NAME, f"answered {response.status}: {_error_of(body)}")
            return body

    async def ping(self) -> None:
        async with self.session.get("/healthz") as response:
            await response.read()
            if response.status != 200:
                raise BadBackendReply(NAME, f"/healthz answered {response.status}")

    async def close(self) -> None:
        await self.session.close()


async def _json_body(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except ValueError:
        raise BadBackendReply(NAME, f"answered {response.status} with a non-JSON body") from None
    if not isinstance(body, dict):
        raise BadBackendReply(NAME, "answered JSON that is not an object")
    return body


def _error_of(body: dict[str, Any]) -> str:
    detail = body.get("detail") or body.get("error") or body.get("title") or "no detail"
    return str(detail)[:200]
