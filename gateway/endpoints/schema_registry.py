"""The Schema Registry API, in the shape of AEP's (`/data/foundation/schemaregistry`):

    GET    /{global|tenant}/{classes|fieldgroups|schemas|descriptors|unions}
    GET    /{global|tenant}/{kind}/{$id or meta:altId, URL-encoded}
    POST   /tenant/{classes|fieldgroups|schemas|descriptors}
    PUT, PATCH (JSON Patch), DELETE  /tenant/{kind}/{id}
    GET    /failures?datasetId=…      inlet's failure store (docs/schemas.md)

The `Accept` header selects the form, as AEP documents: lists answer `xed-id` (ids, titles,
versions) or `xed` (whole documents); one resource answers `xed` (as stored, `allOf` and
`$ref`s kept), `xed-full` (resolved: every field, `meta:extends`), `-notext` variants without
`title`/`description`, and `xed-full-desc` (resolved, with its descriptors). Descriptors use
`xdm-id`, `xdm-link` and `xdm` instead. The sandbox is `x-sandbox-name`; writes go to the
`inlet_schemas` bucket and reach every process through its watch.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import auth, body
from gateway.patch import patched
from gateway.responses import json_response, problem
from inlet.config import Config
from inlet.outcomes import Reason, Rejected
from inlet.schemas import failures
from inlet.schemas.registry import KINDS, Registry, encode, key, registry_for
from inlet.schemas.validate import Validator
from inlet.xdm import STANDARD_NAMESPACES

PREFIX = "/data/foundation/schemaregistry"
MAX_BODY = 512 * 1024
RESOURCE_TYPE = {"classes": "classes", "fieldgroups": "mixins", "schemas": "schemas"}
VIEWS = (*KINDS[:4], "unions")


def routes() -> list[Route]:
    return [
        Route(PREFIX + "/failures", failure_list, methods=["GET"]),
        Route(PREFIX + "/{container}/{kind}", collection, methods=["GET", "POST"]),
        Route(PREFIX + "/{container}/{kind}/{ref:path}", item, methods=["GET", "PUT", "PATCH", "DELETE"]),
    ]


def _sandbox(request: Request) -> str:
    return request.headers.get("x-sandbox-name", "prod")


def _registry(request: Request) -> Registry:
    config: Config = request.app.state.config
    return registry_for(config)


def _path(request: Request) -> tuple[str, str]:
    container, kind = request.path_params["container"], request.path_params["kind"]
    if container not in ("global", "tenant") or kind not in VIEWS:
        raise Rejected(Reason.not_found, f"no Schema Registry resource /{container}/{kind}")
    return container, kind


async def collection(request: Request) -> Response:
    try:
        container, kind = _path(request)
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        registry, sandbox = _registry(request), _sandbox(request)
        if request.method == "POST":
            if container != "tenant" or kind == "unions":
                raise Rejected(Reason.invalid_parameter, f"resources are created in /tenant, not /{container}/{kind}")
            doc = await body.read_json(request, MAX_BODY)
            saved = await _save(request, kind, _new(request, kind, doc))
            return json_response(saved, 201)
        docs = _list(registry, sandbox, container, kind)
        accept = request.headers.get("accept", "")
        if kind == "descriptors":
            results: list[Any] = (docs if "xdm+json" in accept or "xdm-v2" in accept else
                                  [f"{PREFIX}/tenant/descriptors/{d['@id']}" for d in docs] if "xdm-link" in accept
                                  else [d["@id"] for d in docs])
        elif "xed+json" in accept or "xed-full" in accept:
            results = docs
        else:
            results = [{"$id": d["$id"], "meta:altId": d.get("meta:altId"), "version": d.get("version"),
                        "title": d.get("title")} for d in docs]
        return json_response({"results": results, "_page": {"orderby": "title", "next": None, "count": len(results)},
                              "_links": {}})
    except Rejected as rejected:
        return problem(rejected)


def _list(registry: Registry, sandbox: str, container: str, kind: str) -> list[dict[str, Any]]:
    if kind == "unions":
        unions = [registry.union(sandbox, c["$id"]) for c in registry.docs(sandbox, "classes", "global")
                  + registry.docs(sandbox, "classes", "tenant")]
        return [u for u in unions if u and u["meta:unionMembers"]] if container == "tenant" else []
    return registry.docs(sandbox, kind, container)


async def item(request: Request) -> Response:
    try:
        container, kind = _path(request)
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        registry, sandbox = _registry(request), _sandbox(request)
        ref = request.path_params["ref"]
        if kind == "unions":
            union = registry.union(sandbox, ref.removesuffix("__union"))
            if union is None or request.method != "GET":
                raise Rejected(Reason.not_found, f"no union {ref!r} in sandbox {sandbox!r}")
            return json_response(union)
        doc = registry.find(sandbox, kind, ref, container)
        if doc is None:
            raise Rejected(Reason.not_found, f"no {kind} resource {ref!r} in /{container} of sandbox {sandbox!r}")
        if request.method == "GET":
            return json_response(_form(registry, sandbox, kind, doc, request.headers.get("accept", "")))
        if container != "tenant":
            raise Rejected(Reason.forbidden, "standard (global) resources cannot be changed")
        doc_id = str(doc.get("@id") if kind == "descriptors" else doc["$id"])
        if request.method == "DELETE":
            await request.app.state.schemas.delete(key(sandbox, kind, doc_id))
            registry.put_local(sandbox, kind, doc_id, None)
            return Response(status_code=204)
        raw = await body.read_json(request, MAX_BODY)
        new = _patch(copy.deepcopy(doc), raw) if request.method == "PATCH" else raw
        if not isinstance(new, dict):
            raise Rejected(Reason.invalid_message, "the resource must be a JSON object")
        for fixed in ("$id", "@id", "meta:altId", "meta:resourceType", "meta:containerId"):
            if fixed in doc:
                new[fixed] = doc[fixed]
        new["version"] = _next_version(str(doc.get("version", "1.0")))
        return json_response(await _save(request, kind, new))
    except Rejected as rejected:
        return problem(rejected)


def _patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """JSON Patch (RFC 6902) as the Registry's examples use it, arrays included
    (`{"op": "add", "path": "/allOf/-", "value": {"$ref": …}}`); other bodies as merge patches."""
    if not isinstance(ops, list):
        return patched(doc, ops)
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove") \
                or not isinstance(op.get("path"), str) or not op["path"].startswith("/"):
            raise Rejected(Reason.invalid_message, f"unsupported patch operation {op!r}; use add, replace or remove")
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else \
                node.get(part) if isinstance(node, dict) else None
            if node is None and op["op"] == "add":
                raise Rejected(Reason.invalid_message, f"patch path {op['path']!r} does not exist")
            if not isinstance(node, (dict, list)):
                raise Rejected(Reason.invalid_message, f"patch path {op['path']!r} does not exist")
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last) if last.isdigit() else -1
            if not 0 <= index <= len(node) - (op["op"] != "add"):
                raise Rejected(Reason.invalid_message, f"patch path {op['path']!r} does not exist")
            if op["op"] == "remove":
                del node[index]
            elif op["op"] == "replace":
                node[index] = op.get("value")
            else:
                node.insert(index, op.get("value"))
        else:
            if op["op"] in ("remove", "replace") and last not in node:
                raise Rejected(Reason.invalid_message, f"patch path {op['path']!r} does not exist")
            if op["op"] == "remove":
                del node[last]
            else:
                node[last] = op.get("value")
    return doc


def _form(registry: Registry, sandbox: str, kind: str, doc: dict[str, Any], accept: str) -> dict[str, Any]:
    if kind == "descriptors":
        return doc
    out = registry.resolve(sandbox, doc) if "xed-full" in accept else doc
    if "notext" in accept:
        out = _without_text(copy.deepcopy(out))
    if "xed-full-desc" in accept:
        out = {**out, "meta:descriptors": registry.descriptors(sandbox, doc["$id"])}
    return out


def _without_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_text(v) for k, v in value.items() if k not in ("title", "description")}
    if isinstance(value, list):
        return [_without_text(v) for v in value]
    return value


def _next_version(version: str) -> str:
    major, _, minor = version.partition(".")
    return f"{major}.{int(minor or 0) + 1}" if major.isdigit() and (minor or "0").isdigit() else "1.1"


def _new(request: Request, kind: str, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise Rejected(Reason.invalid_message, "the resource must be a JSON object")
    if kind == "descriptors":
        return {**doc, "@id": uuid.uuid4().hex}
    tenant = _registry(request).tenant
    name = uuid.uuid4().hex
    return {**doc, "$id": f"https://ns.adobe.com/{tenant}/{kind}/{name}", "meta:altId": f"_{tenant}.{kind}.{name}",
            "meta:resourceType": RESOURCE_TYPE[kind], "meta:containerId": "tenant", "version": "1.0"}


async def _save(request: Request, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Check a resource as the Registry would, then store it; every process follows."""
    registry, sandbox = _registry(request), _sandbox(request)
    config: Config = request.app.state.config
    if kind == "descriptors":
        _check_descriptor(registry, sandbox, config, doc)
        doc_id = doc["@id"]
    else:
        if doc.get("type", "object") != "object":
            raise Rejected(Reason.invalid_message, f"a {kind} resource is a JSON Schema object (type: object)")
        missing = registry.missing_refs(sandbox, doc)
        if missing:
            raise Rejected(Reason.invalid_message, f"allOf refers to unknown resources: {missing}")
        if kind == "schemas":
            classes = [r for r in (i.get("$ref") for i in doc.get("allOf", [])) if r and registry.find(sandbox, "classes", r)]
            if len(classes) != 1:
                raise Rejected(Reason.invalid_message, "a schema's allOf names exactly one class")
            class_id = registry.find(sandbox, "classes", classes[0])["$id"]  # type: ignore[index]
            doc["meta:class"] = class_id
            for ref in (i.get("$ref") for i in doc.get("allOf", [])):
                group = registry.find(sandbox, "fieldgroups", ref) if ref else None
                intended = group.get("meta:intendedToExtend", []) if group else []
                if intended and class_id not in intended:
                    raise Rejected(Reason.invalid_message,
                                   f"field group {ref!r} is intended for {intended}, not for class {class_id!r}")
        try:
            Validator(registry.resolve(sandbox, {**doc, "$id": ""}))
        except (TypeError, ValueError, msgspec.ValidationError) as exc:
            raise Rejected(Reason.invalid_message, f"the resource's fields do not compile: {exc}") from None
        doc_id = doc["$id"]
    await request.app.state.schemas.put(key(sandbox, kind, doc_id), encode(doc))
    registry.put_local(sandbox, kind, doc_id, doc)
    return registry.resolve(sandbox, doc) if kind == "schemas" else doc


def _check_descriptor(registry: Registry, sandbox: str, config: Config, doc: dict[str, Any]) -> None:
    kind = doc.get("@type")
    source = doc.get("xdm:sourceSchema")
    schema = registry.find(sandbox, "schemas", source) if isinstance(source, str) else None
    if not isinstance(kind, str) or schema is None:
        raise Rejected(Reason.invalid_message, "a descriptor needs @type and an existing xdm:sourceSchema")
    doc["xdm:sourceSchema"] = schema["$id"]
    if kind != "xdm:descriptorIdentity":
        return
    pointer = doc.get("xdm:sourceProperty")
    field = _field_at(registry.resolve(sandbox, schema), pointer if isinstance(pointer, str) else "")
    if field is None or field.get("type") != "string":
        raise Rejected(Reason.invalid_message, f"xdm:sourceProperty {pointer!r} is not a string field of the schema")
    namespace = doc.get("xdm:namespace")
    known = {n.lower(): n for n in (*STANDARD_NAMESPACES, *config.identity.namespaces)}
    if not isinstance(namespace, str) or namespace.lower() not in known:
        raise Rejected(Reason.invalid_message,
                       f"identity namespace {namespace!r} is not declared: the standard ones are "
                       f"{list(STANDARD_NAMESPACES)}; declare a custom one in [identity] namespaces")
    doc["xdm:namespace"] = known[namespace.lower()]


def _field_at(schema: dict[str, Any], pointer: str) -> dict[str, Any] | None:
    node: Any = schema
    for part in [p for p in pointer.split("/") if p]:
        node = node.get("properties", {}).get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node if isinstance(node, dict) and node is not schema else None


async def failure_list(request: Request) -> Response:
    """The failure store of one dataset (`datasetId`): every refused message with its reasons."""
    try:
        auth.authorize(request, "profile:read")
        dataset = request.query_params.get("datasetId", "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", dataset):
            raise Rejected(Reason.invalid_parameter, "datasetId is required")
        limit = min(int(request.query_params.get("limit", "100") or 100), 1000)
        found = await failures.read(request.app.state.js, _sandbox(request), dataset, limit)
        return json_response({"datasetId": dataset, "count": len(found), "failures": [
            {"messageId": f.message_id.removeprefix("fail/"), "receivedTimeMs": f.received_ms, "source": f.source,
             "schemaRef": {"id": f.schema}, "errors": msgspec.to_builtins(f.violations),
             "xdmEntity": msgspec.json.decode(bytes(f.xdm))} for f in found]})
    except ValueError:
        return problem(Rejected(Reason.invalid_parameter, "limit must be a number"))
    except Rejected as rejected:
        return problem(rejected)


def link(container: str, kind: str, ref: str) -> str:
    return f"{PREFIX}/{container}/{kind}/{quote(ref, safe='')}"

