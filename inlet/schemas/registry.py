"""The Schema Registry of every sandbox, as each process sees it.

Tenant resources (classes, field groups, schemas, descriptors) live in the NATS key-value
bucket `inlet_schemas` under `<sandbox>.<kind>.<digest of $id>`; every gateway and worker
follows the bucket (`inlet.watch.follow`), so a schema edited through the API validates the
next message everywhere, without a restart and without a read of NATS on the hot path.
The standard classes and field groups (`standard.GLOBAL`) are the `global` container; the
default schemas (`standard.default_schemas`) are seeded into the bucket and also answer when
the bucket has no entry for them (unit tests, a process before its first watch).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import re
from typing import Any, NamedTuple

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from inlet import buckets, watch
from inlet.config import Config, Dataset
from inlet.schemas import standard
from inlet.schemas.validate import Validator

log = logging.getLogger("inlet.schemas")

BUCKET = "inlet_schemas"
KINDS = ("classes", "fieldgroups", "schemas", "descriptors", "datasets")
DEFAULT_TENANT = "demo"
Doc = dict[str, Any]

encode = msgspec.json.Encoder().encode


class IdentityField(NamedTuple):
    path: tuple[str, ...]
    namespace: str
    primary: bool


def tenant_id(org: str) -> str:
    """The org's tenant id (`ACME@AdobeOrg` → `acme`): tenant resources are named under it."""
    return re.sub(r"[^a-z0-9]", "", org.partition("@")[0].lower()) or DEFAULT_TENANT


def key(sandbox: str, kind: str, doc_id: str) -> str:
    return f"{sandbox}.{kind}.{hashlib.blake2b(doc_id.encode(), digest_size=16).hexdigest()}"


class Registry:
    """Tenant documents by sandbox, kind and `$id`, with compiled validators cached per
    revision: any change to a sandbox's documents drops that sandbox's compiled forms."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.tenant_docs: dict[str, dict[str, dict[str, Doc | None]]] = {}
        self.by_key: dict[str, tuple[str, str, str]] = {}
        self.defaults = {d["$id"]: d for d in standard.default_schemas(DEFAULT_TENANT)}
        self._validators: dict[tuple[str, str], tuple[Doc, Validator] | None] = {}
        self._resolved: dict[tuple[str, str], Doc] = {}
        self._identity_fields: dict[tuple[str, str], list[IdentityField]] = {}

    # Following the bucket -------------------------------------------------------------------

    def apply(self, entry_key: str, value: bytes | None) -> None:
        sandbox, _, rest = entry_key.partition(".")
        kind = rest.partition(".")[0]
        if kind not in KINDS:
            return
        docs = self.tenant_docs.setdefault(sandbox, {}).setdefault(kind, {})
        if value is None:
            known = self.by_key.get(entry_key)
            if known is not None:
                docs[known[2]] = None  # a tombstone: a deleted default stays deleted
        else:
            try:
                doc = msgspec.json.decode(value)
            except msgspec.DecodeError as exc:
                log.warning("Ignoring unreadable schema registry entry %s: %s", entry_key, exc)
                return
            doc_id = doc.get("@id") if kind == "descriptors" else doc.get("id") if kind == "datasets" else doc.get("$id")
            if not isinstance(doc_id, str):
                return
            docs[doc_id] = doc
            self.by_key[entry_key] = (sandbox, kind, doc_id)
        self.changed(sandbox)

    def put_local(self, sandbox: str, kind: str, doc_id: str, doc: Doc | None) -> None:
        """Apply a write this process just made, before the watch echoes it back."""
        self.tenant_docs.setdefault(sandbox, {}).setdefault(kind, {})[doc_id] = doc
        self.by_key[key(sandbox, kind, doc_id)] = (sandbox, kind, doc_id)
        self.changed(sandbox)

    def changed(self, sandbox: str) -> None:
        for cache in (self._validators, self._resolved, self._identity_fields):
            for k in [k for k in cache if k[0] == sandbox]:
                del cache[k]

    # Reading --------------------------------------------------------------------------------

    def docs(self, sandbox: str, kind: str, container: str = "tenant") -> list[Doc]:
        if container == "global":
            if kind == "classes":
                return list(standard.CLASSES)
            return list(standard.FIELD_GROUPS) if kind == "fieldgroups" else []
        found = self.tenant_docs.get(sandbox, {}).get(kind, {})
        out = {k: v for k, v in found.items() if v is not None}
        if kind == "schemas":
            for doc_id, doc in self.defaults.items():
                if doc_id not in found:
                    out[doc_id] = doc
        return list(out.values())

    def find(self, sandbox: str, kind: str, ref: str, container: str | None = None) -> Doc | None:
        """A document by `$id`, `meta:altId` (or a descriptor's `@id`), in the tenant
        container, then the global one (unless `container` names one)."""
        for where in ("tenant", "global") if container is None else (container,):
            for doc in self.docs(sandbox, kind, where):
                if ref in (doc.get("$id"), doc.get("meta:altId"), doc.get("@id")):
                    return doc
        return None

    def component(self, sandbox: str, ref: str) -> Doc | None:
        return self.find(sandbox, "classes", ref) or self.find(sandbox, "fieldgroups", ref) \
            or self.find(sandbox, "schemas", ref)

    def resolve(self, sandbox: str, doc: Doc) -> Doc:
        """The `xed-full` form: `allOf` and `$ref`s replaced by the fields they bring, every
        object closed unless it is a map, `meta:extends` listing every component."""
        cache_key = (sandbox, str(doc.get("$id")) + str(doc.get("version")))
        cached = self._resolved.get(cache_key)
        if cached is not None and doc.get("$id"):
            return cached
        properties: Doc = {}
        required: list[str] = []
        extends: list[str] = list(doc.get("meta:extends", []))
        meta_class = doc.get("meta:class")
        self._absorb(sandbox, doc, properties, required, extends, set())
        out = {k: v for k, v in doc.items() if k not in ("allOf", "definitions", "properties", "required")}
        for ref in extends:
            target = self.find(sandbox, "classes", ref)
            if target is not None and meta_class is None and doc.get("meta:resourceType") == "schemas":
                meta_class = target["$id"]
        out.update(type="object", properties=_closed(properties), additionalProperties=False,
                   **{"meta:extends": list(dict.fromkeys(extends))})
        if required:
            out["required"] = list(dict.fromkeys(required))
        if meta_class:
            out["meta:class"] = meta_class
        self._resolved[cache_key] = out
        return out

    def _absorb(self, sandbox: str, part: Doc, properties: Doc, required: list[str], extends: list[str],
                seen: set[str]) -> None:
        _merge(properties, copy.deepcopy(part.get("properties", {})))
        required.extend(part.get("required", []))
        for item in part.get("allOf", []):
            ref = item.get("$ref", "") if isinstance(item, dict) else ""
            if ref.startswith("#/definitions/"):
                local = part.get("definitions", {}).get(ref.removeprefix("#/definitions/"))
                if isinstance(local, dict):
                    self._absorb(sandbox, local, properties, required, extends, seen)
                continue
            target = self.component(sandbox, ref)
            if target is None or ref in seen:
                continue
            seen.add(ref)
            extends.append(target["$id"])
            extends.extend(target.get("meta:extends", []))
            self._absorb(sandbox, target, properties, required, extends, seen)

    def missing_refs(self, sandbox: str, doc: Doc) -> list[str]:
        refs = [i.get("$ref", "") for i in doc.get("allOf", []) if isinstance(i, dict)]
        return [r for r in refs if not r.startswith("#/") and self.component(sandbox, r) is None]

    def compiled(self, sandbox: str, schema_ref: str) -> tuple[Doc, Validator] | None:
        """A schema (by `$id` or `meta:altId`) with its compiled validator, or None when the
        registry has no such schema; one dict lookup per message once compiled."""
        cache_key = (sandbox, schema_ref)
        if cache_key not in self._validators:
            doc = self.find(sandbox, "schemas", schema_ref)
            self._validators[cache_key] = (doc, Validator(self.resolve(sandbox, doc))) if doc is not None else None
        return self._validators[cache_key]

    def validator(self, sandbox: str, schema_ref: str) -> Validator | None:
        found = self.compiled(sandbox, schema_ref)
        return found[1] if found is not None else None

    def dataset_schema(self, dataset: Dataset) -> str:
        """The schema a dataset names: its Catalog binding (`schemaRef`, set through the API)
        when there is one, else the config file's `schema`."""
        bound = self.tenant_docs.get(dataset.sandbox, {}).get("datasets", {}).get(dataset.id)
        if bound is not None:
            ref = bound.get("schemaRef", {})
            return str(ref.get("id", "")) if isinstance(ref, dict) else ""
        return dataset.schema

    def descriptors(self, sandbox: str, schema_ref: str | None = None) -> list[Doc]:
        docs = self.docs(sandbox, "descriptors")
        if schema_ref is None:
            return docs
        schema = self.find(sandbox, "schemas", schema_ref)
        ids = {schema_ref} | ({schema["$id"], schema.get("meta:altId")} if schema else set())
        return [d for d in docs if d.get("xdm:sourceSchema") in ids]

    def identity_fields(self, sandbox: str, schema_ref: str) -> list[IdentityField]:
        """The schema's identity descriptors as (field path, namespace, primary), primary first."""
        cache_key = (sandbox, schema_ref)
        found = self._identity_fields.get(cache_key)
        if found is None:
            found = [IdentityField(tuple(p for p in str(d.get("xdm:sourceProperty", "")).split("/") if p),
                                   str(d.get("xdm:namespace", "")), d.get("xdm:isPrimary") is True)
                     for d in self.descriptors(sandbox, schema_ref) if d.get("@type") == "xdm:descriptorIdentity"]
            found.sort(key=lambda f: not f.primary)
            self._identity_fields[cache_key] = found
        return found

    def union(self, sandbox: str, class_ref: str) -> Doc | None:
        """The union of the Profile-enabled schemas (`meta:immutableTags` has `union`) of a
        class: the fields of all of them, merged, as Profile sees its class."""
        class_doc = self.find(sandbox, "classes", class_ref)
        if class_doc is None:
            return None
        class_id = class_doc["$id"]
        properties: Doc = {}
        extends: list[str] = []
        members = [s for s in self.docs(sandbox, "schemas")
                   if "union" in s.get("meta:immutableTags", []) and self.resolve(sandbox, s).get("meta:class") == class_id]
        for schema in members:
            resolved = self.resolve(sandbox, schema)
            _merge(properties, copy.deepcopy(resolved["properties"]))
            extends.extend(resolved.get("meta:extends", []))
        return {"$id": f"{class_id}__union", "meta:altId": f"{class_doc['meta:altId']}__union",
                "meta:resourceType": "unions", "meta:containerId": "tenant", "meta:class": class_id,
                "title": f"{class_doc['title']} union", "type": "object", "version": "1.0",
                "meta:extends": list(dict.fromkeys(extends)), "properties": properties,
                "meta:unionMembers": [s["$id"] for s in members]}


def _merge(into: Doc, more: Doc) -> None:
    """Deep-merge field definitions: objects on both sides merge their properties; otherwise
    the first definition of a path stands (the Registry refuses conflicting types)."""
    for name, field in more.items():
        current = into.get(name)
        if current is None:
            into[name] = field
        elif current.get("type") == "object" == field.get("type") and "properties" in field:
            _merge(current.setdefault("properties", {}), field["properties"])
            current["required"] = list(dict.fromkeys([*current.get("required", []), *field.get("required", [])]))
            if not current["required"]:
                del current["required"]


def _closed(properties: Doc) -> Doc:
    """Every object states `additionalProperties` (XDM objects are closed unless a map), so the
    resolved form means the same to any JSON Schema validator."""
    for field in properties.values():
        if not isinstance(field, dict):
            continue
        if field.get("type") == "object":
            field.setdefault("additionalProperties", False)
            _closed(field.get("properties", {}))
            if isinstance(field["additionalProperties"], dict):
                _closed({"v": field["additionalProperties"]})
        elif field.get("type") == "array" and isinstance(field.get("items"), dict):
            _closed({"v": field["items"]})
    return properties


_registries: dict[str, Registry] = {}


def registry_for(config: Config) -> Registry:
    """The process's registry view (one per tenant): what decode paths validate against."""
    tenant = tenant_id(config.org)
    found = _registries.get(tenant)
    if found is None:
        found = _registries[tenant] = Registry(tenant)
    return found


async def open_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    return await buckets.open_bucket(js, BUCKET, replicas=replicas)


async def seed(kv: KeyValue, config: Config, registry: Registry) -> None:
    """The default schemas into every sandbox that has datasets, unless already there (an edit
    made through the API survives restarts)."""
    for sandbox in sorted({d.sandbox for d in config.datasets} | {"prod"}):
        for doc_id, doc in registry.defaults.items():
            try:
                await kv.create(key(sandbox, "schemas", doc_id), encode(doc))
            except KeyWrongLastSequenceError:
                pass


async def follow(kv: KeyValue, registry: Registry) -> asyncio.Task[None]:
    return await watch.follow(kv, registry.apply)
