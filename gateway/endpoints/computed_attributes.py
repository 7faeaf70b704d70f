"""Computed attribute definitions: `GET/POST /data/core/ca/attributes` and
`GET/PUT/PATCH/DELETE /data/core/ca/attributes/{name}` (AEP's path), bearer token.

Definitions go to the definitions bucket (`inlet.computed_catalog`); every profile worker
follows it, counts new events from its next batch and backfills what it already stores. Each
answer carries the backfill's progress, summed over the profile shards:
`"backfill": {"status": "pending|running|done", "processed": n, "total": m}` (stored events
scanned, and stored when the backfill began).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError
from starlette.requests import Request
from starlette.responses import Response

from gateway import auth, body, sandbox_documents
from gateway.patch import patched
from gateway.responses import json_response, problem
from inlet import computed_attributes as ca
from inlet import computed_catalog as catalog
from inlet.config import Config
from inlet.outcomes import Reason, Rejected

MAX_BODY = 64 * 1024
# Fields the API adds to its answers; a client may send a definition back with them.
READ_ONLY = ("backfill",)


def _sandbox(request: Request) -> str:
    return request.headers.get("x-sandbox-name", "prod")


async def collection(request: Request) -> Response:
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        sandbox = _sandbox(request)
        if request.method == "GET":
            docs = [await _answer(request, d) for d in await _all(request, sandbox)]
            return json_response({"_page": {"totalCount": len(docs), "pageSize": len(docs)},
                                  "computedAttributes": docs})
        definition = _validate(request, await body.read_json(request, MAX_BODY))
        if await _get(request, sandbox, definition.name) is not None:
            raise Rejected(Reason.invalid_parameter, f"computed attribute {definition.name!r} exists; use PATCH or PUT")
        definition.createEpoch = int(time.time())
        await _save(request, definition)
        return json_response(await _answer(request, definition), 201)
    except Rejected as rejected:
        return problem(rejected)


async def item(request: Request) -> Response:
    sandbox, name = _sandbox(request), request.path_params["name"]
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        current = await _get(request, sandbox, name)
        if current is None:
            raise Rejected(Reason.not_found, f"no computed attribute {name!r} in sandbox {sandbox!r}")
        if request.method == "GET":
            return json_response(await _answer(request, current))
        if request.method == "DELETE":
            await request.app.state.computed_attributes.delete(catalog.key(sandbox, name))
            await _forget_progress(request, sandbox, name)
            return Response(status_code=204)
        raw = await body.read_json(request, MAX_BODY)
        if request.method == "PATCH":
            raw = patched(msgspec.to_builtins(current), raw)
        definition = _validate(request, raw)
        if definition.name != name:
            raise Rejected(Reason.invalid_parameter, f"the name of computed attribute {name!r} cannot change")
        definition.version, definition.createEpoch = current.version + 1, current.createEpoch
        await _save(request, definition)
        return json_response(await _answer(request, definition))
    except Rejected as rejected:
        return problem(rejected)



def _validate(request: Request, raw: Any) -> ca.Definition:
    """A complete, sensible definition in the request's sandbox, or a 400 saying why not."""
    config: Config = request.app.state.config
    if not isinstance(raw, dict):
        raise Rejected(Reason.invalid_message, "a computed attribute is a JSON object")
    for field in READ_ONLY:
        raw.pop(field, None)
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


async def _get(request: Request, sandbox: str, name: str) -> ca.Definition | None:
    return await sandbox_documents.get(request.app.state.computed_attributes, sandbox, name, ca.decode)


async def _all(request: Request, sandbox: str) -> list[ca.Definition]:
    return await sandbox_documents.in_sandbox(request.app.state.computed_attributes, sandbox, ca.decode)


async def _save(request: Request, definition: ca.Definition) -> None:
    definition.updateEpoch = int(time.time())
    await request.app.state.computed_attributes.put(catalog.key(definition.sandbox, definition.name),
                                                    ca.encode(definition))


async def _answer(request: Request, definition: ca.Definition) -> dict[str, Any]:
    document: dict[str, Any] = msgspec.to_builtins(definition)
    document["backfill"] = await _backfill(request, definition)
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
