"""Bearer tokens: per streaming connection, and scoped tokens for the profile and admin APIs.

Tokens are compared in constant time against every candidate, and never logged. A missing
or unknown token is 401; a known token without the scope or sandbox the call needs is 403.
`INLET_API_TOKEN` (or the dev token `make up` prints) holds every scope in every sandbox.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from inlet.catalog.store import token_matches
from inlet.config import ApiToken, Config, Scope, api_token
from inlet.outcomes import Reason, Rejected

ALL_SCOPES: list[Scope] = ["profile:read", "profile:write", "admin"]


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected(Reason.unauthorized, "an Authorization: Bearer <token> header is required")
    return token.strip()


def _match(presented: bytes, candidates: list[str]) -> int:
    """Index of the matching candidate, or -1; every candidate is compared, always."""
    found = -1
    for index, candidate in enumerate(candidates):
        if hmac.compare_digest(presented, candidate.encode()):
            found = index
    return found


def require_token(request: Request, valid: list[str], hashed: list[str] | None = None) -> None:
    """For streaming connections: any of the connection's tokens (two during a rotation), or
    a token whose SHA-256 is one of `hashed` (connections made through the Catalog API)."""
    presented = bearer(request)
    if _match(presented.encode(), valid) < 0 and not token_matches(presented, hashed or []):
        raise Rejected(Reason.unauthorized, "the bearer token is not valid")


class Authorizer:
    def __init__(self, config: Config) -> None:
        self.tokens = [ApiToken(name="root", token=api_token(config), scopes=ALL_SCOPES)] + list(config.api_tokens)

    def check(self, request: Request, scope: str, sandbox: str) -> ApiToken:
        index = _match(bearer(request).encode(), [t.token for t in self.tokens])
        if index < 0:
            raise Rejected(Reason.unauthorized, "the bearer token is not valid")
        token = self.tokens[index]
        if scope not in token.scopes:
            raise Rejected(Reason.forbidden, f"token {token.name!r} lacks the {scope!r} scope")
        if token.sandboxes and sandbox not in token.sandboxes:
            raise Rejected(Reason.forbidden, f"token {token.name!r} may not use sandbox {sandbox!r}")
        return token


def authorize(request: Request, scope: str) -> None:
    """Check the request's token for `scope` in the request's sandbox (`x-sandbox-name`)."""
    authorizer: Authorizer = request.app.state.authorizer
    authorizer.check(request, scope, request.headers.get("x-sandbox-name", "prod"))
