"""Who may change the stack through the front: requests for its own names, from its own pages.

DNS rebinding: a web page at ``http://evil.example:8080/``, whose name its owner makes
resolve to 127.0.0.1 a moment later, is for the browser the same origin as itself, so its
script can call ``PUT http://evil.example:8080/api/faults/web``, which lands on the front.
Only the ``Host`` header tells: it names ``evil.example``. And a page of any other site can
send a POST or open a WebSocket here (a "simple" request needs no CORS preflight); its
``Origin`` header tells.

So every request that changes something (``POST``, ``PUT``, ``DELETE``, ``PATCH``) and every
``/ws/live`` subscription (which any site could otherwise read) must:

- name in ``Host`` one of the names the front is served as (``WebConfig.served_names``:
  127.0.0.1, localhost, [::1], ``WEB_HOST``, a specific ``LISTEN_HOST``, and
  ``WEB_ALLOWED_HOSTS``), whatever the port: else 421 ``urn:polyloop:problem:foreign-host``;
- when it carries an ``Origin`` (a browser always does on these), come from the front's own
  origin, the one ``Host`` names (scheme's default port filled in): else 403
  ``urn:polyloop:problem:foreign-origin``.

A client with no ``Origin`` (curl, Locust, the tests) is not a browser page: only ``Host``
applies. Reads (``GET``) are not checked: the dashboard's page and API stay readable under
any name, and a cross-site page cannot read them anyway (no CORS headers).

Try it: ``curl -si -X DELETE -H 'Host: evil.example' 127.0.0.1:8080/api/faults/web`` → 421.
"""

from __future__ import annotations

from functools import lru_cache

from aiohttp import web
from yarl import URL

from services.web.errors import ForeignHost, ForeignOrigin
from services.web.keys import CONFIG

UNSAFE = frozenset({"POST", "PUT", "DELETE", "PATCH"})
LIVE = "/ws/live"


@lru_cache(maxsize=64)  # a URL parse per POST otherwise; a client's odd Hosts just evict
def host_name(authority: str) -> str | None:
    """``Host``'s name, lower case, IPv6 without brackets; None when it is not a host[:port]."""
    try:
        url = URL(f"http://{authority.strip()}")
    except ValueError:
        return None
    if url.host is None or url.path not in ("", "/") or url.user or url.query_string:
        return None
    return url.host.lower().strip("[]")


def same_origin(origin: str, authority: str) -> bool:
    """``Origin`` is the origin whose authority ``Host`` gives (same scheme's default port)."""
    try:
        seen = URL(origin)
        own = URL(f"{seen.scheme}://{authority.strip()}")
    except ValueError:
        return False
    if seen.scheme not in ("http", "https") or seen.host is None or own.host is None:
        return False
    return (seen.host.lower(), seen.port) == (own.host.lower(), own.port)


def authority_of(request: web.Request) -> str:
    """The authority the request names: ``Host``, or, for an absolute-form target
    (``PUT http://name/api/...``), that target's own, which replaces ``Host`` (RFC 9112
    3.2.2). No browser sends one to the front, but a check must read what the server would."""
    target = request.raw_path
    if not target.startswith("/"):
        try:
            url = URL(target)
        except ValueError:
            return ""
        if url.is_absolute():
            return url.raw_authority
    return request.headers.get("Host", "")


def check(request: web.Request) -> None:
    """Raise ``ForeignHost`` or ``ForeignOrigin`` unless `request` is the front's own."""
    authority = authority_of(request)
    name = host_name(authority) if authority else None
    if name is None or name not in request.app[CONFIG].served_names:
        shown = authority[:80] or "none"
        raise ForeignHost(
            f"Host {shown!r} is not a name this front is served as: set WEB_ALLOWED_HOSTS to"
            " serve another (DNS rebinding)"
        )
    origin = request.headers.get("Origin")
    if origin is not None and not same_origin(origin, authority):
        raise ForeignOrigin(
            f"Origin {origin[:80]!r} is not this front's own: changes come from its own pages"
        )


def guard(request: web.Request) -> None:
    """Check every change and every live subscription (the front's middleware calls this
    first); anything else passes untouched."""
    if request.method in UNSAFE or request.path == LIVE:
        check(request)
