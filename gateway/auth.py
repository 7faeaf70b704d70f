"""Bearer tokens for the profile access and admin APIs.

Tokens are compared in constant time and never logged. A missing or malformed header is 401;
the API is never reachable without one.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from inlet.outcomes import Reason, Rejected


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected(Reason.unauthorized, "an Authorization: Bearer <token> header is required")
    return token.strip()


def require_token(request: Request, valid: list[str]) -> None:
    presented = bearer(request).encode()
    # Compare against every valid token, always, so timing does not reveal which matched.
    matched = False
    for token in valid:
        matched |= hmac.compare_digest(presented, token.encode())
    if not matched:
        raise Rejected(Reason.unauthorized, "the bearer token is not valid")
