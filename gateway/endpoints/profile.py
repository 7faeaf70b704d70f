"""Profile access API: profiles and their events at `/data/core/ups/access/entities` (see
`entities.py`), unlink and graph; AEP's field names.

Reads are asked of the profile workers over NATS request/reply (`inlet.lookups`); deletes are
published to the stream as commands, so a delete is ordered with the events that preceded it.
The sandbox comes from the `x-sandbox-name` header (AEP's), default `prod`.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import auth
from gateway.decode import command_id
from gateway.responses import json_response, problem
from inlet import lookups, subjects
from inlet.config import Config
from inlet.messages import DeleteProfile, UnlinkIdentity
from inlet.outcomes import Reason, Rejected
from inlet.xdm import Identity, namespaces, normalise_value

PROFILE_SCHEMA = "_xdm.context.profile"
EVENT_SCHEMA = "_xdm.context.experienceevent"
MAX_LIMIT = 1000


class MergePolicyRef(msgspec.Struct):
    id: str


class Entity(msgspec.Struct, kw_only=True):
    entityId: str
    mergePolicy: MergePolicyRef
    sources: list[str]
    identityGraph: list[str]
    entity: msgspec.Raw
    lastModifiedAt: str


_NO_DATA = msgspec.Raw(b"null")


class Child(msgspec.Struct, kw_only=True, omit_defaults=True):
    relatedEntityId: str
    entityId: str
    timestamp: int
    entity: msgspec.Raw
    # The free-form `data` an Edge event carried beside its XDM (not part of the XDM entity);
    # absent when it carried none.
    data: msgspec.Raw = _NO_DATA
    lastModifiedAt: str = ""  # when inlet received the event


class Page(msgspec.Struct, kw_only=True):
    orderby: str
    start: str
    count: int
    next: str


class Link(msgspec.Struct, omit_defaults=True):
    """`_links.next`: `href` relative to `/data/core/ups/access` (AEP's `/entities?start=…`
    form; "" on the last page); a POST's next page is the same POST with `payload`."""

    href: str
    payload: dict[str, Any] | None = None


class EventsPage(msgspec.Struct, kw_only=True):
    _page: Page = msgspec.field(name="_page")
    children: list[Child]
    _links: dict[str, Link] = msgspec.field(name="_links")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _sandbox(request: Request) -> str:
    return request.headers.get("x-sandbox-name", "prod")


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise Rejected(Reason.invalid_parameter, f"{name} must be an integer, got {value!r}") from None


def _identity(request: Request, id_param: str, ns_param: str) -> tuple[Identity | None, str | None]:
    """(identity, None) for entityId + entityIdNS; (None, profile id) for entityId alone."""
    value = request.query_params.get(id_param, "")
    if not value:
        raise Rejected(Reason.invalid_parameter, f"{id_param} is required")
    return identity_of(request.app.state.config, value, request.query_params.get(ns_param, ""))


def identity_of(config: Config, value: str, ns: str) -> tuple[Identity | None, str | None]:
    """An identity (namespace code matched case-insensitively, value normalised), or a
    profile id (AEP's XID) when no namespace is given."""
    if not ns:
        return None, value
    code = namespaces(tuple(config.identity.namespaces)).code(ns)
    return Identity(code, normalise_value(code, value)), None


def next_link(request: Request, cursor: str | None, first: dict[str, str] | None = None) -> dict[str, Link]:
    """`_links.next` as AEP's documentation shows it: `/entities?start=…&…`, this request's
    parameters after `start` (and `first`), relative to `/data/core/ups/access`; on the last
    page `{"next": {"href": ""}}`."""
    if cursor is None:
        return {"next": Link("")}
    params = {"start": cursor, **(first or {})}
    params.update((k, v) for k, v in request.query_params.items() if k not in params and k != "orderBy")
    return {"next": Link("/entities?" + urlencode(params, safe=",."))}


def order_of(value: str) -> bool:
    """AEP's `orderby` for events, `(+/-)timestamp`, default `+timestamp` → newest first?
    (An unencoded `+` arrives as a space, so surrounding blanks are ignored.)"""
    order = value.strip() or "+timestamp"
    if order in ("timestamp", "+timestamp"):
        return False
    if order == "-timestamp":
        return True
    raise Rejected(Reason.invalid_parameter, f"orderby must be timestamp, +timestamp or -timestamp, got {value!r}")


async def _ask(request: Request, lookup: lookups.Lookup) -> lookups.Answer:
    state = request.app.state
    config: Config = state.config
    if not state.nc.is_connected:
        raise Rejected(Reason.unavailable, "the event bus is unreachable", 5)
    try:
        reply = await state.nc.request(
            subjects.PROFILE_QUERY, lookups.encode(lookup), timeout=config.profile.query_timeout
        )
    except Exception as exc:
        raise Rejected(Reason.unavailable, f"no profile worker answered ({type(exc).__name__})", 5) from None
    answer: lookups.Answer = lookups.decode_answer(reply.data)
    if isinstance(answer, lookups.NotFound):
        raise Rejected(Reason.not_found, answer.detail)
    if isinstance(answer, lookups.Refused):
        raise Rejected(Reason(answer.code), answer.detail)
    return answer


async def merged(request: Request, config: Config) -> Response:
    """`schema.name=_xdm.context.profile`: the merged profile."""
    identity, profile_id = _identity(request, "entityId", "entityIdNS")
    fields = [f for f in request.query_params.get("fields", "").split(",") if f]
    found = await profile_entity(request, config, identity, profile_id, fields,
                                 request.query_params.get("mergePolicyId") or None)
    return json_response({found.entityId: found})


async def profile_entity(request: Request, config: Config, identity: Identity | None, profile_id: str | None,
                         fields: list[str], merge_policy: str | None) -> Entity:
    """One merged profile (GET, and each identity of a POST)."""
    answer = await _ask(request, lookups.ProfileLookup(
        org=config.org, sandbox=_sandbox(request), identity=identity, profile_id=profile_id,
        fields=fields, merge_policy=merge_policy))
    assert isinstance(answer, lookups.ProfileView)
    return Entity(
        entityId=answer.profile_id,
        mergePolicy=MergePolicyRef(answer.merge_policy),
        sources=answer.sources,
        identityGraph=answer.identities,
        entity=answer.entity,
        lastModifiedAt=_iso(answer.last_modified_ms),
    )


async def events(request: Request, config: Config) -> Response:
    """`schema.name=_xdm.context.experienceevent`: a page of the profile's events, oldest
    first unless `orderby=-timestamp` (AEP's default is `+timestamp`)."""
    related = request.query_params.get("relatedSchema.name", "")
    if related != PROFILE_SCHEMA:
        raise Rejected(Reason.invalid_parameter, f"relatedSchema.name must be {PROFILE_SCHEMA}")
    identity, profile_id = _identity(request, "relatedEntityId", "relatedEntityIdNS")
    params = request.query_params
    newest_first = order_of(params.get("orderby", params.get("orderBy", "")))
    limit = _int(request, "limit", MAX_LIMIT)
    assert limit is not None
    fields = [f for f in params.get("fields", "").split(",") if f]
    answer = await events_of(request, config, identity, profile_id, fields=fields, start_ms=_int(request, "startTime"),
                             end_ms=_int(request, "endTime"), limit=limit, newest_first=newest_first,
                             after=params.get("start") or None)
    orderby = "-timestamp" if newest_first else "timestamp"
    return json_response(events_page(answer, orderby, next_link(request, answer.next, {"orderby": orderby})))


async def events_of(request: Request, config: Config, identity: Identity | None, profile_id: str | None, *,
                    fields: list[str], start_ms: int | None, end_ms: int | None, limit: int, newest_first: bool,
                    after: str | None) -> lookups.EventsView:
    """One page of a profile's events (GET, and each identity of a POST)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Rejected(Reason.invalid_parameter, f"limit must be between 1 and {MAX_LIMIT}")
    if after is not None and (len(after) % 2 or any(c not in "0123456789abcdef" for c in after)):
        raise Rejected(Reason.invalid_parameter, "start must be the `next` of a previous page")
    answer = await _ask(request, lookups.EventsLookup(
        org=config.org, sandbox=_sandbox(request), identity=identity, profile_id=profile_id,
        start_ms=start_ms, end_ms=end_ms, limit=limit, newest_first=newest_first, after=after, fields=fields))
    assert isinstance(answer, lookups.EventsView)
    return answer


def events_page(answer: lookups.EventsView, orderby: str, links: dict[str, Link]) -> EventsPage:
    return EventsPage(
        _page=Page(
            orderby=orderby,
            start=answer.events[0].event_id if answer.events else "",
            count=len(answer.events),
            next=answer.next or "",
        ),
        children=[
            Child(
                relatedEntityId=answer.profile_id,
                entityId=e.event_id,
                timestamp=e.timestamp_ms,
                entity=e.entity,
                data=e.data if bytes(e.data) != b"null" else _NO_DATA,
                lastModifiedAt=_iso(e.received_ms),
            )
            for e in answer.events
        ],
        _links=links,
    )


async def unlink(request: Request) -> Response:
    """`POST /data/core/ups/access/unlink?entityId=…&entityIdNS=…`: undo a merge. The identity
    leaves its graph with the events and attributes it brought; the rest re-splits."""
    try:
        auth.authorize(request, "profile:write")
        return await _command(request, UnlinkIdentity, "u")
    except Rejected as rejected:
        return problem(rejected)


async def _command(request: Request, kind: type[DeleteProfile] | type[UnlinkIdentity], prefix: str) -> Response:
    """Publish a delete or unlink through the stream (so it is ordered after the events
    accepted before it) and answer 202 once JetStream has it."""
    config: Config = request.app.state.config
    identity, _ = _identity(request, "entityId", "entityIdNS")
    if identity is None:
        raise Rejected(Reason.invalid_parameter, "this needs entityId and entityIdNS")
    received_ms = int(time.time() * 1000)
    sandbox = _sandbox(request)
    command = kind(org=config.org, sandbox=sandbox, message_id=command_id(config.org, sandbox, prefix, identity.key,
                                                                    request.headers.get("idempotency-key")),
                   received_ms=received_ms, identity=identity)
    (outcome,) = await request.app.state.publisher.publish([command])
    if isinstance(outcome, Rejected):
        raise outcome
    return json_response({"status": "accepted", "entityId": identity.id, "entityIdNS": identity.ns}, 202)


async def graph(request: Request) -> Response:
    """`GET /data/core/ups/access/graph?entityId=…&entityIdNS=…`: the identity graph with the
    message and time behind every link (what a merge undo needs to show)."""
    state = request.app.state
    config: Config = state.config
    try:
        auth.authorize(request, "profile:read")
        identity, profile_id = _identity(request, "entityId", "entityIdNS")
        answer = await _ask(request, lookups.GraphLookup(org=config.org, sandbox=_sandbox(request),
                                                          identity=identity, profile_id=profile_id))
    except Rejected as rejected:
        return problem(rejected)
    assert isinstance(answer, lookups.GraphView)
    return json_response({"profileId": answer.profile_id, "identities": answer.members, "links": answer.links})


async def delete(request: Request) -> Response:
    """The profile's attributes, events and computed values leave the profile store; graph
    and lake keep theirs."""
    return await _command(request, DeleteProfile, "d")
