"""The one seam between ingestion and the Schema Registry: a decoded message either conforms
to its dataset's schema, or becomes a `SchemaFailure` (stored, not ingested), or is refused
because it names another schema.

Called by the streaming decode (`gateway.decode`) and the Edge request (`gateway.edge_request`)
after their own routing checks, so the bus message is built once and validated from its raw
XDM bytes (the fast path never builds a dict; docs/schemas.md: validation).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec

from inlet.config import Config, Dataset
from inlet.messages import Event, Record
from inlet.outcomes import TITLE, Reason, Rejected
from inlet.schemas.failures import SchemaFailure, SchemaInvalid
from inlet.schemas.registry import registry_for
from inlet.schemas.validate import Violation
from inlet.xdm import STANDARD_NAMESPACES, Identity, namespaces, normalise_value
from inlet.telemetry import SCHEMA_FAILURES

log = logging.getLogger("inlet.gateway.schemas")
M = TypeVar("M", Event, Record)


def descriptor_identities(config: Config, dataset: Dataset, xdm: msgspec.Raw | dict[str, Any],
                          ids: list[Identity]) -> list[Identity]:
    """The message's identities plus those its schema declares by identity descriptor: a field
    such as `personalEmail.address` (namespace Email) identifies the message without any
    `identityMap`, as in AEP. Deduplicated; primary identities first."""
    registry = registry_for(config)
    schema_ref = registry.dataset_schema(dataset)
    if not schema_ref:
        return ids
    fields = registry.identity_fields(dataset.sandbox, schema_ref)
    if not fields:
        return ids
    doc: Any = msgspec.json.decode(bytes(xdm)) if isinstance(xdm, msgspec.Raw) else xdm
    known = namespaces(tuple(config.identity.namespaces))
    out = list(ids)
    seen = {(i.ns, i.id) for i in ids}
    for field in fields:
        value = doc
        for part in field.path:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str) or not value.strip():
            continue
        ns = known.code(field.namespace)
        normalised = normalise_value(ns, value)
        if (ns, normalised) not in seen:
            seen.add((ns, normalised))
            out.append(Identity(ns, normalised, field.primary))
    out.sort(key=lambda i: not i.primary)
    return out


def check_schema(config: Config, dataset: Dataset, schema_ref: str | None, message: M) -> M | SchemaFailure:
    """`schema_ref`: the schema the message names (streaming `header.schemaRef.id`); None
    where the protocol names none (Edge: the datastream's dataset decides)."""
    registry = registry_for(config)
    dataset_schema = registry.dataset_schema(dataset)
    if not dataset_schema:
        return message  # a dataset without a schema takes any XDM
    found = registry.compiled(dataset.sandbox, dataset_schema)
    if found is None:
        raise Rejected(Reason.schema_mismatch,
                       f"dataset {dataset.id!r} names schema {dataset_schema!r}, which the Schema Registry of "
                       f"sandbox {dataset.sandbox!r} does not have")
    schema, validator = found
    if schema_ref is not None and schema_ref not in (dataset_schema, schema.get("$id"), schema.get("meta:altId")):
        raise Rejected(Reason.schema_mismatch,
                       f"header.schemaRef.id {schema_ref!r} is not the schema of dataset {dataset.id!r} "
                       f"({schema['$id']!r})")
    violations = validator.check(bytes(message.xdm)) or _undeclared_namespaces(config, message.identities)
    if not violations:
        return message
    SCHEMA_FAILURES.labels(dataset.sandbox, dataset.id).inc()
    log.warning("Message %s refused by schema %s of dataset %s (kept in the failure store): %s",
              message.message_id, schema["$id"], dataset.id,
              "; ".join(f"{v.path}: {v.message}" for v in violations[:5]))
    return SchemaFailure(
        org=message.org, sandbox=message.sandbox, dataset=message.dataset, source=message.source,
        message_id="fail/" + message.message_id, received_ms=message.received_ms, schema=schema["$id"],
        message_kind="event" if isinstance(message, Event) else "record", violations=violations, xdm=message.xdm,
    )


_KEYWORD = {"undeclared": "additionalProperties"}


def schema_violations(rejected: Rejected) -> list[dict[str, Any]]:
    """AEP's synchronous report entries, one per violation (JSON Schema validation-error
    fields: `keyword`, `pointerToViolation` as a `#/…` pointer, `message` led by it), plus
    inlet's `code` and `title`; [] for a refusal that is not a schema violation."""
    if not isinstance(rejected, SchemaInvalid):
        return []
    out: list[dict[str, Any]] = []
    for v in rejected.violations:
        pointer = "#" + ("" if v.path == "/" else v.path)
        out.append({"code": "invalid_message", "title": TITLE[Reason.invalid_message],
                    "keyword": _KEYWORD.get(v.code, v.code), "pointerToViolation": pointer,
                    "message": f"{pointer}: {v.message}", "causingExceptions": []})
    return out


def _undeclared_namespaces(config: Config, ids: list[Identity]) -> list[Violation]:
    """Custom namespaces must be declared (`[identity] namespaces`), as docs/profile.md says:
    in a dataset with a schema, an identity in an unknown namespace is a violation, never
    silently a new namespace."""
    known = set(namespaces(tuple(config.identity.namespaces)).codes.values())
    return [Violation(f"/identityMap/{i.ns}", "namespace",
                      f"identity namespace {i.ns!r} is not declared (standard: {', '.join(STANDARD_NAMESPACES)}; "
                      "custom ones go in [identity] namespaces)")
            for i in ids if i.ns not in known]
