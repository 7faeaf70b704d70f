"""CORS per datastream: which page origins may send a datastream's events from a browser.

Origins come from config; a pattern may end in `:*` to allow any port (`http://localhost:*`).
Credentials are allowed, so the origin is echoed, never `*`, and only for listed origins: a
page elsewhere cannot make browsers send its visitors' cookies to us.
"""

from __future__ import annotations

from inlet.config import Datastream

ALLOWED_HEADERS = "Content-Type, Content-Encoding, Authorization"
EXPOSED_HEADERS = "x-request-id, Retry-After"


def origin_allowed(origin: str, datastream: Datastream) -> bool:
    for pattern in datastream.origins:
        if pattern == "*" or pattern == origin:
            return True
        if pattern.endswith(":*"):
            base = pattern[:-2]
            if origin == base or (origin.startswith(base + ":") and origin[len(base) + 1 :].isdigit()):
                return True
    return False


def headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        **headers(origin),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": "86400",
    }
