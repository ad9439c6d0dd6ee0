"""The security headers every response of the front carries, the dashboard page included:
set by the front's middleware (``app.front_middleware``), by the WebSocket handshake
(``live.subscribe``) and by the answers to what aiohttp's parser refuses (``server.py``)."""

# the one definition
SECURITY_HEADERS = {
    # no inline script or style anywhere: the dashboard's assets are files under /static
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
