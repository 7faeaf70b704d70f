"""Account (B2B) lookups: `GET /data/core/ups/access/entities?schema.name=_xdm.context.account`.

`entityId` is the account key (the `accountKey.sourceKey`, or `sourceID`, its records carry).
The answer is the account merged under the merge policy (`mergePolicyId`, else the sandbox's
default), with a page of the people linked to it: their profile ids, how each is linked, and a
few of their attributes (`personFields=a.b,c`; by default name and work and personal email).
`limit` (≤ 1,000, default 100) and `start` (from `_links.next.href`) page through the people.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints.profile import (
    MAX_LIMIT,
    Link,
    MergePolicyRef,
    _ask,
    _int,
    _iso,
    _sandbox,
    next_link,
)
from gateway.responses import json_response
from inlet import lookups
from inlet.config import Config
from inlet.outcomes import Reason, Rejected


class Person(msgspec.Struct, kw_only=True):
    entityId: str
    links: list[lookups.PersonLink]
    entity: msgspec.Raw


class PeoplePage(msgspec.Struct, kw_only=True):
    count: int
    totalCount: int
    next: str


class People(msgspec.Struct, kw_only=True):
    _page: PeoplePage = msgspec.field(name="_page")
    children: list[Person]
    _links: dict[str, Link] = msgspec.field(name="_links")


class Account(msgspec.Struct, kw_only=True):
    entityId: str
    accountKey: str
    mergePolicy: MergePolicyRef
    sources: list[str]
    entity: msgspec.Raw
    lastModifiedAt: str
    people: People


def _list(request: Request, name: str) -> list[str]:
    return [f for f in request.query_params.get(name, "").split(",") if f]


async def account(request: Request, config: Config) -> Response:
    key = request.query_params.get("entityId", "").strip()
    if not key:
        raise Rejected(Reason.invalid_parameter, "entityId (the account key) is required")
    limit = _int(request, "limit", 100)
    assert limit is not None
    if not 1 <= limit <= MAX_LIMIT:
        raise Rejected(Reason.invalid_parameter, f"limit must be between 1 and {MAX_LIMIT}")
    after = request.query_params.get("start") or None
    if after is not None and (len(after) != 32 or any(c not in "0123456789abcdef" for c in after)):
        raise Rejected(Reason.invalid_parameter, "start must be a profile id from a previous page")
    answer = await _ask(request, lookups.AccountLookup(
        org=config.org, sandbox=_sandbox(request), account_key=key,
        merge_policy=request.query_params.get("mergePolicyId") or None,
        fields=_list(request, "fields"), person_fields=_list(request, "personFields"), limit=limit, after=after))
    assert isinstance(answer, lookups.AccountView)
    links = next_link(request, answer.next)
    body = {answer.account_id: Account(
        entityId=answer.account_id,
        accountKey=answer.account_key,
        mergePolicy=MergePolicyRef(answer.merge_policy),
        sources=answer.sources,
        entity=answer.entity,
        lastModifiedAt=_iso(answer.last_modified_ms),
        people=People(
            _page=PeoplePage(count=len(answer.people), totalCount=answer.people_total, next=answer.next or ""),
            children=[Person(entityId=p.profile_id, links=p.links, entity=p.entity) for p in answer.people],
            _links=links,
        ),
    )}
    return json_response(body)
