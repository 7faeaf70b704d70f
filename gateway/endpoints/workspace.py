"""The workspace's own read endpoints (`/ui/api/…`): what the Platform APIs do not answer.

Everything else the page shows comes from the documented APIs (merge policies, computed
attributes, union schema, entities), so a change made in the page is the change a client of
those APIs sees. These endpoints add what an operator needs and AEP answers in its own UI:

- `GET /ui/api/context`: the sandboxes this token may use, the sandbox's datasets and
  connections, and every declared identity namespace (standard and configured).
- `GET /ui/api/profiles?search=&namespace=&dataset=&limit=&after=`: a page of profiles, most
  recently updated first (`inlet.browse`; one profile shard answers, gathering from the others).
- `GET /ui/api/accounts?search=`: business accounts by key or name.
- `POST /ui/api/computed-preview`: a computed attribute definition (the API's body) and
  `entityId`/`entityIdNS`: the value it would have for that profile now, nothing saved.
- `POST /ui/api/upsert`: `{"dataset", "entityId", "entityIdNS", "attributes"}` published as a
  `merge` record of that dataset, through the same decoding and publishing as
  `/collection` (scope `profile:write`).
- `GET /ui/api/ingestion`: messages per 10 s per dataset and per connection over the last
  hour (`gateway.ingest_rates`), dead letters and schema validation failures with reasons.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from nats.errors import NoRespondersError
from nats.js.errors import NotFoundError
from starlette.requests import Request
from starlette.responses import Response

from gateway import ingest_rates
from gateway.decode import decode_message
from gateway.endpoints import computed_attributes
from gateway.endpoints.profile import _identity
from gateway.responses import json_response, problem
from inlet import browse, subjects
from inlet.config import Config, Connection
from inlet.outcomes import Reason, Rejected
from inlet.schemas import failures
from inlet.schemas.failures import SchemaFailure
from inlet.xdm import STANDARD_NAMESPACES
from worker import dead_letter as dl

RECENT = 20  # dead letters and validation failures listed


def _sandbox_of(request: Request, scope: str = "profile:read") -> str:
    sandbox = request.headers.get("x-sandbox-name", "prod")
    request.app.state.authorizer.check(request, scope, sandbox)
    return sandbox


async def _ask(request: Request, query: browse.Query) -> browse.Answer:
    """Ask one profile shard (queue group): with N shards it holds the whole graph, profile
    index and accounts, and gathers what only other shards hold (inlet/browse.py), so its
    answer is the one-shard answer and nothing is merged here."""
    state = request.app.state
    config: Config = state.config
    if not state.nc.is_connected:
        raise Rejected(Reason.unavailable, "the event bus is unreachable", 5)
    try:
        reply = await state.nc.request(browse.SUBJECT, browse.encode(query), timeout=config.profile.query_timeout)
    except (NoRespondersError, TimeoutError, asyncio.TimeoutError):
        raise Rejected(Reason.unavailable, "no profile worker answered", 5) from None
    answer = browse.decode_answer(reply.data)
    if isinstance(answer, browse.Unavailable):
        raise Rejected(Reason.unavailable, answer.detail, 5)
    return answer


async def context(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        sandbox = _sandbox_of(request)
        token = request.app.state.authorizer.check(request, "profile:read", sandbox)
    except Rejected as rejected:
        return problem(rejected)
    known = sorted({d.sandbox for d in config.datasets} | {"prod"})
    return json_response({
        "sandbox": sandbox,
        "sandboxes": [s for s in known if not token.sandboxes or s in token.sandboxes],
        "namespaces": [*STANDARD_NAMESPACES, *(n for n in config.identity.namespaces if n not in STANDARD_NAMESPACES)],
        "datasets": [{"id": d.id, "class": d.xdm_class, "profile": d.profile, "schema": d.schema} for d in config.datasets
                     if d.sandbox == sandbox],
        "connections": [c.id for c in config.connections if c.sandbox == sandbox]
                       + [d.id for d in config.datastreams if d.sandbox == sandbox],
        "scopes": list(token.scopes),
    })


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= browse.MAX_LIMIT:
        raise Rejected(Reason.invalid_parameter, f"limit must be between 1 and {browse.MAX_LIMIT}")
    return int(raw)


async def profiles(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        sandbox = _sandbox_of(request)
        after: tuple[int, str] | None = None
        raw_after = request.query_params.get("after", "")
        if raw_after:
            ms, _, pid = raw_after.partition(":")
            if not ms.isdigit() or len(pid) != 32:
                raise Rejected(Reason.invalid_parameter, "after must be a cursor from a previous page")
            after = (int(ms), pid)
        limit = _limit(request)
        q = request.query_params
        answer = await _ask(request, browse.ProfilesQuery(
            org=config.org, sandbox=sandbox, search=q.get("search", "").strip(), namespace=q.get("namespace", ""),
            dataset=q.get("dataset", ""), limit=limit, after=after))
    except Rejected as rejected:
        return problem(rejected)
    if not isinstance(answer, browse.ProfilesPage):
        return problem(Rejected(Reason.unavailable, "the profile worker gave no page", 5))
    rows = answer.rows
    more = answer.remaining > len(rows)
    return json_response({
        "profiles": [{"profileId": r.profile_id, "lastModifiedAt": _iso(r.last_modified_ms),
                      "identities": r.identities, "identityCount": r.identity_count} for r in rows],
        "total": answer.matched,
        "scanned": answer.scanned,
        "truncated": answer.truncated,
        "next": f"{rows[-1].last_modified_ms}:{rows[-1].profile_id}" if more else "",
    })


async def accounts(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        sandbox = _sandbox_of(request)
        answer = await _ask(request, browse.AccountsQuery(
            org=config.org, sandbox=sandbox, search=request.query_params.get("search", "").strip(),
            limit=_limit(request)))
    except Rejected as rejected:
        return problem(rejected)
    if not isinstance(answer, browse.AccountsPage):
        return problem(Rejected(Reason.unavailable, "the profile worker gave no page", 5))
    return json_response({
        "accounts": [{"accountKey": r.account_key, "name": r.name, "lastModifiedAt": _iso(r.last_modified_ms)}
                     for r in answer.rows],
        "total": answer.matched,
    })


async def preview(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        sandbox = _sandbox_of(request)
        try:
            raw = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise Rejected(Reason.malformed_json, f"the body is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise Rejected(Reason.invalid_message, "the body is a computed attribute with entityId and entityIdNS")
        entity_id, namespace = str(raw.pop("entityId", "")), str(raw.pop("entityIdNS", ""))
        if not entity_id:
            raise Rejected(Reason.missing_field, "entityId (the profile to preview on) is required")
        raw.setdefault("name", "preview")
        definition = computed_attributes._validate(request, raw)  # the API's own checks and PQL compile
        identity, profile_id = _identity_of(request, entity_id, namespace)
        answer = await _ask(request, browse.PreviewQuery(
            org=config.org, sandbox=sandbox, definition=definition, identity=identity, profile_id=profile_id))
    except Rejected as rejected:
        return problem(rejected)
    found = answer if isinstance(answer, browse.Preview) else None
    if found is None:
        return problem(Rejected(Reason.not_found, f"no profile for {namespace or 'profile id'} {entity_id!r}"))
    return json_response({
        "profileId": found.profile_id, "value": found.value,
        "lastUpdatedAt": _iso(found.last_updated_ms) if found.last_updated_ms else None,
        "counted": found.counted, "scanned": found.scanned,
        "definition": {"function": definition.function, "field": definition.field,
                       "filter": definition.filter, "duration": definition.duration},
    })


def _identity_of(request: Request, entity_id: str, namespace: str) -> tuple[Any, str | None]:
    """The profile endpoints' own identity parsing, from body values instead of the query."""
    scope = dict(request.scope)
    query = f"entityId={_quote(entity_id)}" + (f"&entityIdNS={_quote(namespace)}" if namespace else "")
    scope["query_string"] = query.encode()
    return _identity(Request(scope), "entityId", "entityIdNS")


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


async def upsert(request: Request) -> Response:
    state = request.app.state
    config: Config = state.config
    try:
        sandbox = _sandbox_of(request, "profile:write")
        try:
            raw = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise Rejected(Reason.malformed_json, f"the body is not JSON: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("attributes"), dict) or not raw["attributes"]:
            raise Rejected(Reason.invalid_message, "the body is {dataset, entityId, entityIdNS, attributes: {...}}")
        dataset = config.dataset(sandbox, str(raw.get("dataset", "")))
        if dataset is None or dataset.xdm_class != "profile":
            raise Rejected(Reason.invalid_parameter, "dataset must be a profile record dataset of this sandbox")
        ns, value = str(raw.get("entityIdNS", "")), str(raw.get("entityId", ""))
        if not ns or not value:
            raise Rejected(Reason.missing_field, "entityId and entityIdNS are required")
        xdm = {**raw["attributes"], "identityMap": {ns: [{"id": value, "primary": True}]}}
        schema_ref = {"id": dataset.schema or "https://ns.adobe.com/inlet/schemas/workspace",
                      "contentType": "application/vnd.adobe.xed-full+json;version=1"}
        document = {"header": {"schemaRef": schema_ref, "imsOrgId": config.org, "datasetId": dataset.id,
                               "source": {"name": "inlet workspace"}, "operations": {"data": "merge"}},
                    "body": {"xdmMeta": {"schemaRef": schema_ref}, "xdmEntity": xdm}}
        received_ms = int(time.time() * 1000)
        message = decode_message(msgspec.json.encode(document), config,
                                 Connection(id="workspace", sandbox=sandbox), received_ms)
        if isinstance(message, SchemaFailure):
            raise message.rejected()
        (outcome,) = await state.publisher.publish([message])
        if isinstance(outcome, Rejected):
            raise outcome
    except Rejected as rejected:
        return problem(rejected)
    return json_response({"accepted": True, "messageId": message.message_id, "receivedTimeMs": received_ms})


async def ingestion(request: Request) -> Response:
    state = request.app.state
    try:
        sandbox = _sandbox_of(request)
    except Rejected as rejected:
        return problem(rejected)
    now = int(time.time())
    step = ingest_rates.STEP_SECONDS
    first = (now - ingest_rates.WINDOW_SECONDS) // step * step + step
    points = (now // step * step - first) // step + 1
    by_dataset: dict[str, list[float]] = {}
    by_connection: dict[str, list[float]] = {}
    unavailable = False
    try:
        rows = await ingest_rates.read_all(state.js)
    except Exception:
        rows, unavailable = [], True
    for start, row_sandbox, dataset, connection, count in rows:
        index = (start - first) // step
        if row_sandbox != sandbox or not 0 <= index < points:
            continue
        for series, key in ((by_dataset, dataset), (by_connection, connection)):
            values = series.setdefault(key, [0.0] * points)
            values[index] += count / step
    letters, letter_counts = await _dead_letters(request, sandbox)
    failed, failure_counts = await _failures(request, sandbox)
    return json_response({
        "sandbox": sandbox, "stepSeconds": step, "from": _iso(first * 1000), "points": points,
        "datasets": by_dataset, "connections": by_connection, "unavailable": unavailable,
        "deadLetters": {"byReason": letter_counts, "recent": letters},
        "validationFailures": {"byDataset": failure_counts, "recent": failed},
    })


async def _dead_letters(request: Request, sandbox: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The sandbox's newest dead letters and their count by reason (read from the headers)."""
    js = request.app.state.js
    subject = subjects.dead_letter(sandbox, "*")
    recent: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    try:
        info = await js.stream_info(subjects.DEAD_LETTER_STREAM, subjects_filter=subject)
        seq = max(info.state.first_seq, info.state.last_seq - 500, 1)
        while seq <= info.state.last_seq:
            raw = await js.get_msg(subjects.DEAD_LETTER_STREAM, seq=seq, subject=subject, next=True)
            assert raw.seq is not None
            seq = raw.seq + 1
            headers = raw.headers or {}
            reason = headers.get(dl.REASON, "unknown")
            counts[reason] = counts.get(reason, 0) + 1
            stored_ms = int(headers.get(dl.TIME, "0") or 0)
            recent.append({"seq": raw.seq, "time": _iso(stored_ms) if stored_ms else "", "reason": reason,
                           "consumer": headers.get(dl.CONSUMER, ""), "messageId": headers.get(dl.MESSAGE_ID, ""),
                           "detail": headers.get(dl.DETAIL, "")})
    except NotFoundError:
        pass
    except Exception:
        pass  # the bus is away: the overview says so elsewhere
    return recent[-RECENT:][::-1], counts


async def _failures(request: Request, sandbox: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    config: Config = request.app.state.config
    js = request.app.state.js
    counts: dict[str, int] = {}
    recent: list[dict[str, Any]] = []
    try:
        stored = await failures.counts(js)
        for dataset in (d.id for d in config.datasets if d.sandbox == sandbox):
            count = stored.get(f"inletfail.{sandbox}.{failures.token(dataset)}", 0)
            if not count:
                continue
            counts[dataset] = count
            for failure in await failures.read(js, sandbox, dataset, limit=RECENT):
                recent.append({"dataset": dataset, "receivedMs": failure.received_ms, "messageId": failure.message_id,
                               "schema": failure.schema, "source": failure.source,
                               "reasons": [f"{v.path}: {v.message}" for v in failure.violations]})
    except Exception:
        pass
    recent.sort(key=lambda f: -f["receivedMs"])
    return recent[:RECENT], counts


def _iso(ms: int) -> str:
    from gateway.endpoints.profile import _iso as iso

    return iso(ms)
