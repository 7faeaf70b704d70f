"""`GET`/`POST`/`DELETE /data/core/ups/access/entities`: one path, AEP's, for every kind of entity
(https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/entities).

`schema.name` says which: `_xdm.context.profile` (a merged profile), `_xdm.context.experienceevent`
(a profile's events) or `_xdm.context.account` (a business account and its people). A `POST`
asks for several profiles, or the events of several profiles, by identity in one call, with
the parameters in its body. A `DELETE` removes a profile from the profile store
(`entityId` + `entityIdNS`).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import auth, body
from gateway.decode import decode_json
from gateway.endpoints import accounts, profile
from gateway.responses import json_response, problem
from inlet.config import Config
from inlet.outcomes import Reason, Rejected

PROFILE_SCHEMA = profile.PROFILE_SCHEMA
EVENT_SCHEMA = profile.EVENT_SCHEMA
ACCOUNT_SCHEMA = "_xdm.context.account"
MAX_BODY = 256 * 1024
MAX_IDENTITIES = 100


class SchemaName(msgspec.Struct):
    name: str


class Namespace(msgspec.Struct):
    code: str


class IdentityRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One entity of a POST: `entityId` (+ `entityIdNS.code`) for profiles; `relatedEntityId`
    (+ `relatedEntityIdNS.code`) for events, with `start` from a previous page's payload. Without
    a namespace the id is a profile id (AEP's XID)."""

    entityId: str | None = None
    entityIdNS: Namespace | None = None
    relatedEntityId: str | None = None
    relatedEntityIdNS: Namespace | None = None
    start: str | None = None


class TimeFilter(msgspec.Struct, kw_only=True, omit_defaults=True):
    startTime: int | None = None  # ms, included
    endTime: int | None = None  # ms, excluded


class EntitiesQuery(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The documented POST body."""

    schema: SchemaName
    relatedSchema: SchemaName | None = None
    identities: list[IdentityRef]
    fields: list[str] = []
    timeFilter: TimeFilter | None = None
    limit: int | None = None
    orderby: str | None = None
    mergePolicyId: str | None = None
    # Accepted as AEP documents it; inlet always includes computed attributes.
    withCA: bool | None = None


_decode_query = msgspec.json.Decoder(EntitiesQuery).decode


async def entities(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        auth.authorize(request, "profile:write" if request.method == "DELETE" else "profile:read")
        if request.method == "DELETE":
            return await profile.delete(request)
        if request.method == "POST":
            return await _post(request, config)
        schema = request.query_params.get("schema.name", "")
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


async def _post(request: Request, config: Config) -> Response:
    body.require_json(request)
    query: EntitiesQuery = decode_json(_decode_query, await body.read(request, MAX_BODY))
    if not query.identities or len(query.identities) > MAX_IDENTITIES:
        raise Rejected(Reason.invalid_parameter, f"identities takes 1 to {MAX_IDENTITIES} entries")
    if query.schema.name == PROFILE_SCHEMA:
        return await _profiles(request, config, query)
    if query.schema.name == EVENT_SCHEMA:
        if query.relatedSchema is None or query.relatedSchema.name != PROFILE_SCHEMA:
            raise Rejected(Reason.invalid_parameter, f"relatedSchema.name must be {PROFILE_SCHEMA}")
        return await _events(request, config, query)
    raise Rejected(Reason.invalid_parameter,
                   f"schema.name must be {PROFILE_SCHEMA} or {EVENT_SCHEMA}, got {query.schema.name!r}")


async def _profiles(request: Request, config: Config, query: EntitiesQuery) -> Response:
    """`{profileId: entity}` for every identity that names a profile; identities that name
    none are left out, and two identities of one profile give it once."""
    found: dict[str, profile.Entity] = {}
    for ref in query.identities:
        if not ref.entityId:
            raise Rejected(Reason.invalid_parameter, "each of identities needs an entityId")
        identity, profile_id = profile.identity_of(config, ref.entityId, ref.entityIdNS.code if ref.entityIdNS else "")
        try:
            entity = await profile.profile_entity(request, config, identity, profile_id, query.fields,
                                                  query.mergePolicyId)
        except Rejected as rejected:
            if rejected.reason is Reason.not_found:
                continue
            raise
        found.setdefault(entity.entityId, entity)
    return json_response(found)


async def _events(request: Request, config: Config, query: EntitiesQuery) -> Response:
    """`{relatedEntityId: page}` per identity, each page as a GET answers it; a page with more
    to come links to the same POST for that identity alone (`_links.next.payload`)."""
    newest_first = profile.order_of(query.orderby or "")
    orderby = "-timestamp" if newest_first else "timestamp"
    limit = query.limit if query.limit is not None else profile.MAX_LIMIT
    window = query.timeFilter or TimeFilter()
    pages: dict[str, profile.EventsPage] = {}
    for ref in query.identities:
        if not ref.relatedEntityId:
            raise Rejected(Reason.invalid_parameter, "each of identities needs a relatedEntityId")
        ns = ref.relatedEntityIdNS.code if ref.relatedEntityIdNS else ""
        identity, profile_id = profile.identity_of(config, ref.relatedEntityId, ns)
        try:
            answer = await profile.events_of(request, config, identity, profile_id, fields=query.fields,
                                             start_ms=window.startTime, end_ms=window.endTime, limit=limit,
                                             newest_first=newest_first, after=ref.start)
        except Rejected as rejected:
            if rejected.reason is Reason.not_found:
                continue
            raise
        link = profile.Link("")
        if answer.next is not None:
            again = msgspec.structs.replace(
                query, identities=[msgspec.structs.replace(ref, start=answer.next)], orderby=orderby)
            payload: dict[str, Any] = msgspec.to_builtins(again)
            link = profile.Link("/entities", payload)
        pages[ref.relatedEntityId] = profile.events_page(answer, orderby, {"next": link})
    return json_response(pages)
