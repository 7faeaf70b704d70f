"""Merge policy configuration: `GET/POST /data/core/ups/config/mergePolicies` and
`GET/PUT/PATCH/DELETE .../mergePolicies/{id}`, with AEP's field names (also at
`/config/mergePolicies`). `PATCH` takes a JSON Patch array, as AEP's API does, or a JSON
merge-patch object. One policy per sandbox is the default: making one default unsets the rest.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import auth, body, sandbox_documents
from gateway.patch import patched
from gateway.responses import json_response, problem
from inlet import merge_policies as mp
from inlet.config import Config
from inlet.outcomes import Reason, Rejected

MAX_BODY = 64 * 1024


def _sandbox(request: Request) -> str:
    return request.headers.get("x-sandbox-name", "prod")


async def collection(request: Request) -> Response:
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        if request.method == "GET":
            docs = await _all(request, _sandbox(request))
            return json_response({"_page": {"totalCount": len(docs), "pageSize": len(docs)}, "children": docs})
        doc = _validate(request, await body.read_json(request, MAX_BODY))
        doc.id = doc.id or str(uuid.uuid4())
        doc.sandbox = _sandbox(request)
        if await _get(request, doc.sandbox, doc.id) is not None:
            raise Rejected(Reason.invalid_parameter, f"merge policy {doc.id!r} exists; use PUT or PATCH")
        await _save(request, doc)
        return json_response(doc, 201)
    except Rejected as rejected:
        return problem(rejected)


async def item(request: Request) -> Response:
    state = request.app.state
    sandbox, policy_id = _sandbox(request), request.path_params["policy_id"]
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        current = await _get(request, sandbox, policy_id)
        if current is None:
            raise Rejected(Reason.not_found, f"no merge policy {policy_id!r} in sandbox {sandbox!r}")
        if request.method == "GET":
            return json_response(current)
        if request.method == "DELETE":
            await state.merge_policies.delete(mp.key(sandbox, policy_id))
            return Response(status_code=204)
        if request.method == "PUT":
            doc = _validate(request, await body.read_json(request, MAX_BODY))
        else:
            patch = await body.read_json(request, MAX_BODY)
            doc = _validate(request, patched(msgspec.to_builtins(current), patch))
        doc.id, doc.sandbox, doc.version = policy_id, sandbox, current.version + 1
        await _save(request, doc)
        return json_response(doc)
    except Rejected as rejected:
        return problem(rejected)



def _validate(request: Request, raw: Any) -> mp.PolicyDocument:
    config: Config = request.app.state.config
    try:
        doc = msgspec.convert(raw, mp.PolicyDocument)
    except msgspec.ValidationError as exc:
        raise Rejected(Reason.invalid_message, f"invalid merge policy: {exc}") from None
    sandbox = _sandbox(request)
    if doc.attributeMerge.type == "dataSetPrecedence" and not doc.attributeMerge.order:
        raise Rejected(Reason.invalid_message, "dataSetPrecedence needs attributeMerge.order")
    for dataset in doc.attributeMerge.order:
        if config.dataset(sandbox, dataset) is None:
            raise Rejected(Reason.unknown_dataset, f"attributeMerge.order names unknown dataset {dataset!r}")
    doc.imsOrgId = config.org
    return doc


async def _get(request: Request, sandbox: str, policy_id: str) -> mp.PolicyDocument | None:
    return await sandbox_documents.get(request.app.state.merge_policies, sandbox, policy_id, mp.decode)


async def _all(request: Request, sandbox: str) -> list[mp.PolicyDocument]:
    return await sandbox_documents.in_sandbox(request.app.state.merge_policies, sandbox, mp.decode)


async def _save(request: Request, doc: mp.PolicyDocument) -> None:
    kv = request.app.state.merge_policies
    doc.updateEpoch = int(time.time())
    if doc.default:
        for other in await _all(request, doc.sandbox):
            if other.id != doc.id and other.default:
                other.default = False
                await kv.put(mp.key(other.sandbox, other.id), mp.encode(other))
    await kv.put(mp.key(doc.sandbox, doc.id), mp.encode(doc))
