"""Merge policy configuration, as Adobe documents it
(https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/merge-policies):
`GET/POST /data/core/ups/config/mergePolicies`, `POST .../mergePolicies/bulk-get` and
`GET/PUT/PATCH/DELETE .../mergePolicies/{id}` (also at `/config/mergePolicies`).

`PATCH` takes every documented form: a JSON Patch array, one operation as an object, with
dotted paths (`/identityGraph.type`), and values as the page writes them (`"value": "true"`);
or a JSON merge patch object (inlet's extension). A write that changes nothing is answered
with the policy unchanged (no new version, nothing stored); a path or field that names nothing
is refused. One policy per sandbox is the default: making one default unsets the rest.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import auth, body, query, sandbox_documents
from gateway.patch import patched
from gateway.responses import json_response, problem
from inlet import merge_policies as mp
from inlet.config import Config
from inlet.outcomes import Reason, Rejected

MAX_BODY = 64 * 1024
POLICY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # also a NATS key part
DEFAULT_LIMIT = 20  # AEP's page size for lists
MAX_LIMIT = 1000
# Kept by the API; a client may send them back (a GET's answer to a PUT) and they are ignored.
READ_ONLY = ("id", "imsOrgId", "sandbox", "version", "updateEpoch")
SORTABLE = ("name", "id", "updateEpoch", "version")
FILTERS = {"default": ("default",), "isActiveOnEdge": ("isActiveOnEdge",), "schema.name": ("schema", "name"),
           "identityGraph.type": ("identityGraph", "type"), "attributeMerge.type": ("attributeMerge", "type")}


class Policy(msgspec.Struct, kw_only=True):
    """A merge policy as the API shows it: the stored document with AEP's sandbox object."""

    id: str
    name: str
    imsOrgId: str
    sandbox: sandbox_documents.Sandbox
    schema: mp.SchemaRef
    version: int
    identityGraph: mp.IdentityGraph
    attributeMerge: mp.AttributeMerge
    isActiveOnEdge: bool
    default: bool
    updateEpoch: int


def _sandbox(request: Request) -> str:
    return request.headers.get("x-sandbox-name", "prod")


def shown(request: Request, doc: mp.PolicyDocument) -> Policy:
    config: Config = request.app.state.config
    return Policy(id=doc.id, name=doc.name, imsOrgId=doc.imsOrgId or config.org,
                  sandbox=sandbox_documents.sandbox_object(config.org, doc.sandbox), schema=doc.schema,
                  version=doc.version, identityGraph=doc.identityGraph, attributeMerge=doc.attributeMerge,
                  isActiveOnEdge=doc.isActiveOnEdge, default=doc.default, updateEpoch=doc.updateEpoch)


async def collection(request: Request) -> Response:
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        if request.method == "GET":
            return await _list(request)
        raw = await body.read_json(request, MAX_BODY)
        # AEP generates the id; inlet also takes one given in the body (its extension).
        given = raw.get("id") if isinstance(raw, dict) else None
        doc = _validate(request, raw)
        if given is not None and (not isinstance(given, str) or not POLICY_ID.fullmatch(given)):
            raise Rejected(Reason.invalid_message, "id must be 1 to 128 letters, digits, '-' or '_'")
        doc.id = given or str(uuid.uuid4())
        doc.sandbox = _sandbox(request)
        if await _get(request, doc.sandbox, doc.id) is not None:
            raise Rejected(Reason.invalid_parameter, f"merge policy {doc.id!r} exists; use PUT or PATCH")
        await _save(request, doc)
        return json_response(shown(request, doc), 201)
    except Rejected as rejected:
        return problem(rejected)


async def _list(request: Request) -> Response:
    """A page of the sandbox's policies, filtered and ordered by the documented parameters;
    `_links.next.href` is the documented `@/mergePolicies?start=…` form, "" on the last page."""
    params = request.query_params
    docs = await _all(request, _sandbox(request))
    for name, path in FILTERS.items():
        wanted = params.get(name)
        if wanted is not None:
            docs = [d for d in docs if str(_at(msgspec.to_builtins(d), path)).lower() == wanted.lower()]
    order = params.get("orderBy", params.get("orderby", "")).strip()
    field = order.lstrip("+-") or "name"
    if field not in SORTABLE:
        raise Rejected(Reason.invalid_parameter, f"orderBy must be one of {', '.join(SORTABLE)} (+ or - first)")
    docs.sort(key=lambda d: (getattr(d, field), d.id), reverse=order.startswith("-"))
    limit = query.count(params, "limit", DEFAULT_LIMIT)
    start = query.count(params, "start", 0)
    if not 1 <= limit <= MAX_LIMIT:
        raise Rejected(Reason.invalid_parameter, f"limit must be between 1 and {MAX_LIMIT}")
    page = docs[start:start + limit]
    more = start + limit < len(docs)
    href = "@/mergePolicies?" + urlencode({"start": start + limit, "orderBy": order, "limit": limit}) if more else ""
    return json_response({"_page": {"totalCount": len(docs), "pageSize": len(page)},
                          "children": [shown(request, d) for d in page], "_links": {"next": {"href": href}}})


async def bulk_get(request: Request) -> Response:
    """`POST .../mergePolicies/bulk-get` with `{"ids": [{"id": …}, …]}`: 207 and
    `{"results": {id: policy}}`. Ids that name no policy are left out of `results`."""
    try:
        auth.authorize(request, "profile:read")
        raw = await body.read_json(request, MAX_BODY)
        try:
            ids = msgspec.convert(raw, BulkGet).ids
        except msgspec.ValidationError as exc:
            raise Rejected(Reason.invalid_message, f'bulk-get takes {{"ids": [{{"id": …}}]}}: {exc}') from None
        sandbox = _sandbox(request)
        results: dict[str, Policy] = {}
        for ref in ids:
            doc = await _get(request, sandbox, ref.id)
            if doc is not None:
                results[ref.id] = shown(request, doc)
        return json_response({"results": results}, 207)
    except Rejected as rejected:
        return problem(rejected)


class IdRef(msgspec.Struct):
    id: str


class BulkGet(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[IdRef]


async def item(request: Request) -> Response:
    state = request.app.state
    sandbox, policy_id = _sandbox(request), request.path_params["policy_id"]
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        current = await _get(request, sandbox, policy_id)
        if current is None:
            raise Rejected(Reason.not_found, f"no merge policy {policy_id!r} in sandbox {sandbox!r}")
        if request.method == "GET":
            return json_response(shown(request, current))
        if request.method == "DELETE":
            if current.isActiveOnEdge:
                raise Rejected(Reason.invalid_parameter,
                               f"merge policy {policy_id!r} is active on edge; set isActiveOnEdge to false first")
            await state.merge_policies.delete(mp.key(sandbox, policy_id))
            return Response(status_code=200)  # AEP: 200 and an empty body
        raw = await body.read_json(request, MAX_BODY)
        if request.method == "PATCH":
            stored = msgspec.to_builtins(current)
            stored.pop("sandbox")
            raw = patched(stored, raw, dotted=True)
        doc = _validate(request, raw)
        doc.id, doc.sandbox = policy_id, sandbox
        doc.version, doc.updateEpoch = current.version, current.updateEpoch
        if doc == current:
            return json_response(shown(request, current))  # nothing changed: no new version
        doc.version = current.version + 1
        await _save(request, doc)
        return json_response(shown(request, doc))
    except Rejected as rejected:
        return problem(rejected)


def _validate(request: Request, raw: Any) -> mp.PolicyDocument:
    config: Config = request.app.state.config
    if not isinstance(raw, dict):
        raise Rejected(Reason.invalid_message, "a merge policy is a JSON object")
    for field in READ_ONLY:
        raw.pop(field, None)
    try:
        # Not strict: the documented PATCH sends booleans as strings ("value": "true").
        doc = msgspec.convert(raw, mp.PolicyDocument, strict=False)
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


def _at(document: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        document = document.get(part) if isinstance(document, dict) else None
    return document


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
                other.version += 1
                other.updateEpoch = doc.updateEpoch
                await kv.put(mp.key(other.sandbox, other.id), mp.encode(other))
    await kv.put(mp.key(doc.sandbox, doc.id), mp.encode(doc))
