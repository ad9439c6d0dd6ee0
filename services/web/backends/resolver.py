"""The gevent resolver, over one pooled keep-alive ``aiohttp.ClientSession``.

``resolve`` passes a validated request to ``POST /resolve`` and returns the resolver's
answer as it came; ``ping`` is ``GET /healthz`` for readiness.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from services.web.backends import Backend
from services.web.backends.replicas import (
    CONNECT_TIMEOUT,
    ReplicaSet,
    ReplicaUnreachable,
    call_on_replica,
    url_host,
)
from services.web.errors import BadBackendReply

NAME = Backend.RESOLVER
# what is worth a second try on another replica: the request is read-only
RETRY_ON = (aiohttp.ClientConnectionError, OSError)
# resolver replicas' parsed URLs kept at most (a replica set holds a few addresses)
MAX_KEPT_URLS = 64


class ResolverClient:
    """Each call goes to the next resolver replica (``replicas.ReplicaSet``) that is up, by
    its address; a connection failure takes it out and the call goes once to another."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        limit: int,
        replicas: ReplicaSet | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.base_url = f"http://{host}:{port}"
        self.port = port
        self.connect_timeout = connect_timeout
        self.replicas = replicas or ReplicaSet(NAME, host, port)
        self._resolve_urls: dict[str, URL] = {}  # by replica address, parsed once
        self.session = aiohttp.ClientSession(
            base_url=self.base_url,
            # No DNS cache: connections are pooled, so a lookup happens only for a new one,
            # and a cached address of a stopped container would turn a fast 503 into a
            # connect that hangs until the timeout.
            connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=30, use_dns_cache=False),
            # the caller's BackendCall bounds the whole call; the connect has a bound of its
            # own so that a replica whose address is gone fails fast (503), not at the 504
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
            raise_for_status=False,
        )

    async def resolve(self, request: dict[str, Any]) -> dict[str, Any]:
        return await call_on_replica(
            self.replicas, lambda address: self._resolve(address, request), RETRY_ON
        )

    async def _resolve(self, address: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self.session.post(self._resolve_url(address), json=request) as response:
                body = await _json_body(response)
        except aiohttp.ConnectionTimeoutError:
            raise ReplicaUnreachable(address, self.port, self.connect_timeout) from None
        if response.status != 200:
            raise BadBackendReply(NAME, f"answered {response.status}: {_error_of(body)}")
        return body

    async def ping(self) -> None:
        await call_on_replica(self.replicas, self._ping, RETRY_ON)

    async def _ping(self, address: str) -> None:
        try:
            async with self.session.get(self._url(address, "/healthz")) as response:
                await response.read()
        except aiohttp.ConnectionTimeoutError:
            raise ReplicaUnreachable(address, self.port, self.connect_timeout) from None
        if response.status != 200:
            raise BadBackendReply(NAME, f"/healthz answered {response.status}")

    async def close(self) -> None:
        await self.session.close()

    def _url(self, address: str, path: str) -> str:
        return f"http://{url_host(address)}:{self.port}{path}"

    def _resolve_url(self, address: str) -> URL:
        """``POST /resolve`` on `address`, as a parsed URL: aiohttp parses a string per call.
        Kept for the replicas' addresses, a few; a set that changed a lot starts over."""
        url = self._resolve_urls.get(address)
        if url is None:
            if len(self._resolve_urls) >= MAX_KEPT_URLS:
                self._resolve_urls.clear()
            url = self._resolve_urls[address] = URL(self._url(address, "/resolve"))
        return url


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
