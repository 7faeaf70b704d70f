"""`GET`/`DELETE /data/core/ups/access/entities`: one path, AEP's, for every kind of entity.

`schema.name` says which: `_xdm.context.profile` (a merged profile), `_xdm.context.experienceevent`
(a profile's events) or `_xdm.context.account` (a business account and its people). A `DELETE`
removes a profile from the profile store (`entityId` + `entityIdNS`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway import auth
from gateway.endpoints import accounts, profile
from gateway.responses import problem
from inlet.config import Config
from inlet.outcomes import Reason, Rejected

PROFILE_SCHEMA = profile.PROFILE_SCHEMA
EVENT_SCHEMA = profile.EVENT_SCHEMA
ACCOUNT_SCHEMA = "_xdm.context.account"


async def entities(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        auth.authorize(request, "profile:write" if request.method == "DELETE" else "profile:read")
        schema = request.query_params.get("schema.name", "")
        if request.method == "DELETE":
            return await profile.delete(request)
        if schema == PROFILE_SCHEMA:
            return await profile.merged(request, config)
        if schema == EVENT_SCHEMA:
            return await profile.events(request, config)
        if schema == ACCOUNT_SCHEMA:
            return await accounts.account(request, config)
        raise Rejected(
            Reason.invalid_parameter,
            f"schema.name must be {PROFILE_SCHEMA}, {EVENT_SCHEMA} or {ACCOUNT_SCHEMA}, got {schema!r}",
        )
    except Rejected as rejected:
        return problem(rejected)
