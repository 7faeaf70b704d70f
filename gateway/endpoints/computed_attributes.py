"""Computed attribute definitions as Adobe documents them
(https://experienceleague.adobe.com/en/docs/experience-platform/profile/computed-attributes/api):
`GET/POST /data/core/ca/attributes` and `GET/PUT/PATCH/DELETE /data/core/ca/attributes/{id}`
(the id, or inlet's name), bearer token.

A definition is given either as AEP's PQL `expression` (compiled by `inlet.pql`, with the
lookback in `duration` or in a `timestamp occurs <= N days before now` clause) or in inlet's
own shape (`function`, `field`, `filter`, `duration`); answers carry both. Each item also has
AEP's `id`, `type`, `sandbox` object, `mergeFunction` and lifecycle `status`: `DRAFT` and
`DISABLED` as set, a counted definition `NEW`, `PROCESSING` or `PROCESSED` by its backfill.

Definitions go to the definitions bucket (`inlet.computed_catalog`); every profile worker
follows it, counts new events from its next batch and backfills what it already stores. Each
answer carries the backfill's progress, summed over the profile shards:
`"backfill": {"status": "pending|running|done", "processed": n, "total": m}` (stored events
scanned, and stored when the backfill began).
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlencode

import msgspec
from nats.js.errors import KeyNotFoundError
from starlette.requests import Request
from starlette.responses import Response

from gateway import auth, body, query, sandbox_documents
from gateway.patch import patched
from gateway.responses import json_response, problem
from inlet import computed_attributes as ca
from inlet import computed_catalog as catalog
from inlet import pql
from inlet.config import Config
from inlet.outcomes import Reason, Rejected

MAX_BODY = 64 * 1024
DEFAULT_LIMIT, MAX_LIMIT = 20, 40  # AEP's
# Fields the API adds to its answers (AEP's and inlet's); a client may send a definition back
# with them, and they are ignored.
READ_ONLY = ("backfill", "id", "type", "sandbox", "mergeFunction", "path", "positionPath", "returnSchema",
             "definedOn", "encodedDefinedOn", "dependencies", "dependents", "active", "createdBy",
             "lastEvaluationTs", "evaluationInfo", "imsOrgId", "version", "createEpoch", "updateEpoch")
# Derived from the expression when there is one.
COMPILED = ("function", "field", "filter")
# Shown statuses that a client may send back: all mean "counted".
COUNTED_STATUSES = ("NEW", "INITIALIZING", "PROCESSING", "PROCESSED")
SORTABLE = ("name", "status", "updateEpoch", "createEpoch")
PROFILE_SCHEMA = "_xdm.context.profile"


def _sandbox(request: Request) -> str:
    return request.headers.get("x-sandbox-name", "prod")


def attribute_id(org: str, sandbox: str, name: str) -> str:
    """AEP's read-only `id`: derived from the name, so config-seeded definitions have one too."""
    return str(uuid.uuid5(sandbox_documents.ID_NAMESPACE, f"{org}/{sandbox}/computed-attribute/{name}"))


async def collection(request: Request) -> Response:
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        sandbox = _sandbox(request)
        if request.method == "GET":
            return await _list(request, sandbox)
        definition = _validate(request, await body.read_json(request, MAX_BODY))
        if await _get(request, sandbox, definition.name) is not None:
            raise Rejected(Reason.invalid_parameter, f"computed attribute {definition.name!r} exists; use PATCH or PUT")
        definition.createEpoch = int(time.time())
        await _save(request, definition)
        return json_response(await _answer(request, definition), 200)  # AEP answers a create with 200
    except Rejected as rejected:
        return problem(rejected)


async def _list(request: Request, sandbox: str) -> Response:
    """AEP's list: `limit` (1–40, default 20), `offset`, `sortBy` (default `-updateEpoch`),
    `status`; `_page` with offset, limit, count and totalCount; `_links` relative to `/data/core/ca`."""
    params = request.query_params
    limit = query.count(params, "limit", DEFAULT_LIMIT)
    offset = query.count(params, "offset", 0)
    if not 1 <= limit <= MAX_LIMIT:
        raise Rejected(Reason.invalid_parameter, f"limit must be between 1 and {MAX_LIMIT}")
    sort = params.get("sortBy", "-updateEpoch").strip()
    key = sort.lstrip("+-")
    if key not in SORTABLE:
        raise Rejected(Reason.invalid_parameter, f"sortBy must be one of {', '.join(SORTABLE)}, with - to descend")
    docs = [await _answer(request, d) for d in await _all(request, sandbox)]
    wanted = params.get("status")
    if wanted:
        docs = [d for d in docs if d["status"].lower() in wanted.lower().split(",")]
    docs.sort(key=lambda d: str(d["name"]))
    docs.sort(key=lambda d: d[key], reverse=sort.startswith("-"))  # stable: ties stay by name
    page = docs[offset:offset + limit]

    rest = {k: v for k, v in params.items() if k not in ("offset", "limit")}

    def href(at: int) -> dict[str, str]:
        return {"href": "/attributes?" + urlencode({"offset": at, "limit": limit, **rest})}

    links = {"self": href(offset)}
    if offset + limit < len(docs):
        links["next"] = href(offset + limit)
    if offset > 0:
        links["prev"] = href(max(0, offset - limit))
    return json_response({"_links": links, "computedAttributes": page,
                          "_page": {"offset": offset, "limit": limit, "count": len(page), "totalCount": len(docs),
                                    "pageSize": len(page)}})


async def item(request: Request) -> Response:
    sandbox, key = _sandbox(request), request.path_params["name"]
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        current = await _find(request, sandbox, key)
        if request.method == "GET":
            return json_response(await _answer(request, current))
        if request.method == "DELETE":
            shown = await _answer(request, current)
            await request.app.state.computed_attributes.delete(catalog.key(sandbox, current.name))
            await _forget_progress(request, sandbox, current.name)
            return json_response(shown, 202)  # AEP: 202 with the deleted definition
        raw = await body.read_json(request, MAX_BODY)
        if request.method == "PATCH":
            stored: dict[str, Any] = msgspec.to_builtins(current)
            raw = patched(msgspec.to_builtins(current), raw)
            if isinstance(raw, dict) and raw.get("expression") != stored.get("expression"):
                # A new expression: what it compiles to replaces what the old one did.
                for field in COMPILED:
                    if raw.get(field) == stored.get(field):
                        raw.pop(field, None)
                if raw.get("duration") == stored.get("duration"):
                    raw.pop("duration", None)
        definition = _validate(request, raw)
        if definition.name != current.name:
            raise Rejected(Reason.invalid_parameter, f"the name of computed attribute {current.name!r} cannot change")
        definition.version, definition.createEpoch = current.version, current.createEpoch
        definition.updateEpoch = current.updateEpoch
        if definition == current:
            return json_response(await _answer(request, current))  # nothing changed: no new version
        definition.version = current.version + 1
        await _save(request, definition)
        return json_response(await _answer(request, definition))
    except Rejected as rejected:
        return problem(rejected)


async def _find(request: Request, sandbox: str, key: str) -> ca.Definition:
    """By name (inlet's paths) or by AEP's id."""
    found = await _get(request, sandbox, key) if "." not in key else None
    if found is None:
        org = request.app.state.config.org
        found = next((d for d in await _all(request, sandbox) if attribute_id(org, sandbox, d.name) == key), None)
    if found is None:
        raise Rejected(Reason.not_found, f"no computed attribute {key!r} in sandbox {sandbox!r}")
    return found


def _validate(request: Request, raw: Any) -> ca.Definition:
    """A complete, sensible definition in the request's sandbox, or a 400 saying why not."""
    config: Config = request.app.state.config
    if not isinstance(raw, dict):
        raise Rejected(Reason.invalid_message, "a computed attribute is a JSON object")
    for field in READ_ONLY:
        raw.pop(field, None)
    schema = raw.pop("schema", None)
    if schema is not None and schema != {"name": PROFILE_SCHEMA}:
        raise Rejected(Reason.invalid_message, f"schema.name must be {PROFILE_SCHEMA}")
    if raw.get("status") in COUNTED_STATUSES:
        raw["status"] = "NEW"
    if raw.get("expression") is not None:
        _compile_into(raw)
    try:
        definition = msgspec.convert(raw, ca.Definition)
    except msgspec.ValidationError as exc:
        message = str(exc)
        reason = Reason.missing_field if "missing required field" in message else Reason.invalid_message
        raise Rejected(reason, f"invalid computed attribute: {message}") from None
    wrong = ca.problem(definition)
    if wrong:
        raise Rejected(Reason.invalid_message, f"invalid computed attribute: {wrong}")
    definition.sandbox = _sandbox(request)
    definition.imsOrgId = config.org
    return definition


def _compile_into(raw: dict[str, Any]) -> None:
    """Fill `function`, `field`, `filter` (and `duration` when not given) from the PQL
    expression; refuse fields that contradict it, and PQL outside the supported subset."""
    try:
        expression = msgspec.convert(raw["expression"], ca.Expression)
    except msgspec.ValidationError as exc:
        raise Rejected(Reason.invalid_message, f"invalid computed attribute expression: {exc}") from None
    if expression.type.upper() != "PQL" or expression.format.lower() != "pql/text":
        raise Rejected(Reason.invalid_message, 'expression.type must be "PQL" and expression.format "pql/text"')
    try:
        compiled = pql.compile_expression(expression.value)
    except pql.PqlError as exc:
        raise Rejected(Reason.invalid_message, f"unsupported PQL in expression.value: {exc}") from None
    derived: dict[str, Any] = msgspec.to_builtins(
        {"function": compiled.function, "field": compiled.field, "filter": compiled.filter})
    for field in COMPILED:
        given = raw.get(field)
        if given is not None and _normal(given, field) != derived[field]:
            raise Rejected(Reason.invalid_message,
                           f"{field} contradicts the expression (which gives {derived[field]!r}); send one or the other")
        raw[field] = derived[field]
    window = msgspec.to_builtins(compiled.duration) if compiled.duration else None
    given_duration = raw.get("duration")
    if given_duration is None:
        if window is None:
            raise Rejected(Reason.missing_field, "a computed attribute needs a duration, or a "
                                                 "`timestamp occurs <= N days before now` clause in its expression")
        raw["duration"] = window
    elif window is not None and _hours(window) < _hours(given_duration):
        raw["duration"] = window  # both bound the events counted: the shorter one wins


def _normal(value: Any, field: str) -> Any:
    """A given filter as the compiled one is spelt (absent lists are empty)."""
    if field == "filter" and isinstance(value, dict):
        return {"eventType": value.get("eventType", []), "conditions": value.get("conditions", []),
                "anyOf": value.get("anyOf", [])}
    return value


def _hours(duration: Any) -> float:
    if not isinstance(duration, dict) or not isinstance(duration.get("count"), int):
        return float("inf")
    return float(duration["count"] * pql.HOURS_PER.get(str(duration.get("unit")), 1))


async def _get(request: Request, sandbox: str, name: str) -> ca.Definition | None:
    return await sandbox_documents.get(request.app.state.computed_attributes, sandbox, name, ca.decode)


async def _all(request: Request, sandbox: str) -> list[ca.Definition]:
    return await sandbox_documents.in_sandbox(request.app.state.computed_attributes, sandbox, ca.decode)


async def _save(request: Request, definition: ca.Definition) -> None:
    definition.updateEpoch = int(time.time())
    await request.app.state.computed_attributes.put(catalog.key(definition.sandbox, definition.name),
                                                    ca.encode(definition))


async def _answer(request: Request, definition: ca.Definition) -> dict[str, Any]:
    """The stored definition with AEP's read-only fields and the backfill's progress."""
    config: Config = request.app.state.config
    document: dict[str, Any] = msgspec.to_builtins(definition)
    backfill = await _backfill(request, definition)
    status: str = definition.status
    if status == "NEW":
        status = {"pending": "NEW", "running": "PROCESSING", "done": "PROCESSED"}[backfill["status"]]
    document.update({
        "id": attribute_id(config.org, definition.sandbox, definition.name),
        "type": "ComputedAttribute",
        "sandbox": msgspec.to_builtins(sandbox_documents.sandbox_object(config.org, definition.sandbox)),
        "path": "computedAttributes",
        "positionPath": ["computedAttributes"],
        "mergeFunction": {"value": definition.function},
        "status": status,
        "schema": {"name": PROFILE_SCHEMA},
        "backfill": backfill,
    })
    if document["expression"] is None:
        del document["expression"]
    return document


async def _backfill(request: Request, definition: ca.Definition) -> dict[str, Any]:
    """The shards' reports for this version of the definition, summed."""
    config: Config = request.app.state.config
    current = ca.fingerprint(definition).hex()
    reports = []
    for shard in range(config.profile.shards):
        try:
            entry = await request.app.state.backfill_progress.get(
                catalog.progress_key(definition.sandbox, definition.name, shard))
        except KeyNotFoundError:
            continue
        if entry.value:
            progress = catalog.decode_progress(entry.value)
            if progress.fingerprint == current:
                reports.append(progress)
    if not reports:
        status = "pending"
    elif len(reports) == config.profile.shards and all(p.status == "done" for p in reports):
        status = "done"
    else:
        status = "running"
    return {"status": status, "processed": sum(p.processed for p in reports), "total": sum(p.total for p in reports)}


async def _forget_progress(request: Request, sandbox: str, name: str) -> None:
    config: Config = request.app.state.config
    for shard in range(config.profile.shards):
        try:
            await request.app.state.backfill_progress.delete(catalog.progress_key(sandbox, name, shard))
        except KeyNotFoundError:
            pass
