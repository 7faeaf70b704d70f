"""Decode AEP streaming messages straight into Structs, validate, and build bus messages.

The envelope is decoded once with `xdmEntity` kept as `msgspec.Raw`: the XDM bytes go to the
bus untouched, and only the routing fields (`XdmHead`; for records also the account fields,
`AccountHead`) are decoded a second time. The dataset's class decides the message: an
ExperienceEvent, or a record of a person (`profile`), an account (`account`: needs
`accountKey`, no person identity) or a person-account relation (`account-person`: needs
both). Every failure is a `Rejected` with a stable reason; nothing here raises anything else.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from gateway.limits import Shape
from gateway.schema_check import check_schema, descriptor_identities
from inlet.config import Config, Connection, Dataset, Limits
from inlet.messages import Event, Operation, Record
from inlet.outcomes import Reason, Rejected
from inlet.schemas.failures import SchemaFailure
from inlet.xdm import XdmHead, decode_head, identities, namespaces


class SchemaRef(msgspec.Struct, kw_only=True):
    id: str
    contentType: str = "application/vnd.adobe.xed-full+json;version=1"


class Source(msgspec.Struct, kw_only=True):
    name: str = ""


class Operations(msgspec.Struct, kw_only=True):
    data: Operation = "create"


class Header(msgspec.Struct, kw_only=True):
    schemaRef: SchemaRef
    # Optional, as in Adobe's current examples: the connection's org fills it in.
    imsOrgId: str = ""
    datasetId: str
    source: Source | None = None
    operations: Operations | None = None


class XdmMeta(msgspec.Struct, kw_only=True):
    schemaRef: SchemaRef | None = None


class Body(msgspec.Struct, kw_only=True):
    xdmEntity: msgspec.Raw
    xdmMeta: XdmMeta | None = None


class StreamingMessage(msgspec.Struct, kw_only=True):
    header: Header
    body: Body


class Batch(msgspec.Struct, kw_only=True):
    messages: list[msgspec.Raw]


AccountKeyPart = Annotated[str, msgspec.Meta(max_length=1024)]


class B2BSource(msgspec.Struct, kw_only=True):
    """XDM's B2B Source data type: how an account (or person) is known in its source system."""

    sourceKey: AccountKeyPart | None = None
    sourceID: AccountKeyPart | None = None


class B2BPerson(msgspec.Struct, kw_only=True):
    accountKey: B2BSource | None = None


class AccountHead(msgspec.Struct, kw_only=True):
    """The account fields of a record: `accountKey` (Business Account, and the relation
    class) or `b2b.accountKey` (a person's account, on an Individual Profile record)."""

    accountKey: B2BSource | None = None
    b2b: B2BPerson | None = None


_decode_message = msgspec.json.Decoder(StreamingMessage).decode
_decode_batch = msgspec.json.Decoder(Batch).decode
_decode_account_head = msgspec.json.Decoder(AccountHead).decode


def decode_batch(data: bytes) -> list[msgspec.Raw]:
    """The raw messages of a batch; each is decoded on its own so one bad message fails alone."""
    batch: Batch = decode_json(_decode_batch, data)
    return batch.messages


def decode_message(
    data: bytes, config: Config, connection: Connection, received_ms: int, retry_key: str = ""
) -> Event | Record | SchemaFailure:
    """One streaming message → the bus message to publish (or `Rejected`). `retry_key`: see
    `record_id`."""
    if len(data) > config.http.max_message_bytes:
        raise Rejected(
            Reason.message_too_large,
            f"message is {len(data)} bytes; the limit is {config.http.max_message_bytes}",
        )
    shape(config).check(data)
    message = decode_json(_decode_message, data)
    header = message.header
    if header.imsOrgId and header.imsOrgId != config.org:
        raise Rejected(Reason.org_mismatch, f"imsOrgId {header.imsOrgId!r} is not this org")
    dataset = _dataset(config, connection, header.datasetId)
    head = decode_json(decode_head, message.body.xdmEntity, prefix="$.body.xdmEntity")
    ids = descriptor_identities(config, dataset, message.body.xdmEntity,
                                identities(head, namespaces(tuple(config.identity.namespaces))))
    # An account is identified by its account key, not by a person identity.
    if dataset.profile and not ids and dataset.xdm_class != "account":
        raise Rejected(
            Reason.missing_identity,
            f"dataset {dataset.id!r} is enabled for profile; xdmEntity.identityMap needs an identity",
        )
    source = connection.id
    xdm = message.body.xdmEntity
    if dataset.xdm_class == "experienceevent":
        return check_schema(config, dataset, header.schemaRef.id,
                            _event(dataset, head, ids, xdm, source, config.org, received_ms))
    account_key = _account_key(dataset, xdm)
    operation: Operation = header.operations.data if header.operations else "create"
    return check_schema(config, dataset, header.schemaRef.id, Record(
        org=config.org,
        sandbox=dataset.sandbox,
        dataset=dataset.id,
        source=source,
        message_id=record_id(config.org, dataset.sandbox, dataset.id, operation, bytes(xdm), retry_key),
        received_ms=received_ms,
        operation=operation,
        identities=ids,
        xdm=xdm,
        record_class=dataset.xdm_class,
        account_key=account_key,
        profile=dataset.profile,
    ))


def _account_key(dataset: Dataset, xdm: msgspec.Raw) -> str:
    """The account a record is about (`accountKey`) or names (`b2b.accountKey` of a person):
    its `sourceKey`, else its `sourceID`; "" when a person record names none."""
    head = decode_json(_decode_account_head, xdm, prefix="$.body.xdmEntity")
    source = head.accountKey if dataset.xdm_class != "profile" else (head.b2b.accountKey if head.b2b else None)
    key = ((source.sourceKey or source.sourceID or "") if source else "").strip()
    if not key and dataset.xdm_class != "profile":
        raise Rejected(
            Reason.missing_field,
            f"dataset {dataset.id!r} holds {dataset.xdm_class} records; xdmEntity.accountKey needs a sourceKey or sourceID",
        )
    return key


def _event(
    dataset: Dataset,
    head: XdmHead,
    ids: list,  # type: ignore[type-arg]
    xdm: msgspec.Raw,
    source: str,
    org: str,
    received_ms: int,
) -> Event:
    if not head.id:
        raise Rejected(Reason.missing_field, "ExperienceEvent needs xdmEntity._id")
    if not head.timestamp:
        raise Rejected(Reason.missing_field, "ExperienceEvent needs xdmEntity.timestamp")
    return Event(
        org=org,
        sandbox=dataset.sandbox,
        dataset=dataset.id,
        source=source,
        message_id=event_id(org, dataset.sandbox, dataset.id, head.id),
        received_ms=received_ms,
        timestamp_ms=parse_timestamp_ms(head.timestamp),
        event_type=head.eventType or "",
        identities=ids,
        xdm=xdm,
        profile=dataset.profile,
    )


def _dataset(config: Config, connection: Connection, dataset_id: str) -> Dataset:
    dataset = config.dataset(connection.sandbox, dataset_id)
    if dataset is None:
        raise Rejected(
            Reason.unknown_dataset,
            f"dataset {dataset_id!r} does not exist in sandbox {connection.sandbox!r}",
        )
    if connection.datasets and dataset_id not in connection.datasets:
        raise Rejected(
            Reason.dataset_not_allowed,
            f"connection {connection.id!r} may not write dataset {dataset_id!r}",
        )
    return dataset


@functools.lru_cache(maxsize=4)
def _shape(limits: tuple[int, int]) -> Shape:
    return Shape(Limits(max_depth=limits[0], max_string_bytes=limits[1]))


def shape(config: Config) -> Shape:
    """The shape check of this configuration, compiled once."""
    return _shape((config.limits.max_depth, config.limits.max_string_bytes))


# An event's `_id` is its message id (`Nats-Msg-Id`, and a key in the profile store), so it is
# bounded like an identity value (Identity Service refuses identity values over 1,024
# characters); longer ids are refused with a 400 rather than accepted and never stored.
MAX_EVENT_ID_CHARS = 1024


def event_id(org: str, sandbox: str, dataset: str, xdm_id: str) -> str:
    """The `Nats-Msg-Id` of an event: its XDM `_id`, which XDM defines as unique per event,
    scoped by org, sandbox and dataset so tenants never collide. A client retry sends the same
    `_id`, so it is stored and applied once; a new event has a new `_id`."""
    if len(xdm_id) > MAX_EVENT_ID_CHARS:
        raise Rejected(
            Reason.invalid_message,
            f"xdmEntity._id is {len(xdm_id)} characters; the limit is {MAX_EVENT_ID_CHARS}",
        )
    return f"{org}/{sandbox}/{dataset}/{xdm_id}"


def record_id(org: str, sandbox: str, dataset: str, operation: str, xdm: bytes, retry_key: str = "") -> str:
    """The `Nats-Msg-Id` of a record: what tells a client's retry from a new write.

    A retry of a request carries the same bytes, and so may a later, legitimate write (A, then
    B, then A again must end as A), so content cannot tell them apart. Nor can a record's
    `_id`: it is optional, and a stable `_id` per person (a CRM key) is common, under which
    A, B, A would drop the last A. So a record is deduplicated only when the client says which
    request it retries, with an `Idempotency-Key` header (`retry_key`: the header and the
    message's index in the request): the same key, index, operation and bytes are one write.
    Otherwise every accepted record gets a fresh id, and a retry is applied again, which leaves
    the same attributes (it says the same thing) and a second row in the lake. The id
    is scoped by org, sandbox and dataset, so tenants never collide."""
    if retry_key:
        digest = hashlib.blake2b(xdm, digest_size=16, person=b"inlet-record")
        digest.update(b"\0" + operation.encode() + b"\0" + retry_key.encode())
        unique = "k" + digest.hexdigest()
    else:
        unique = "u" + uuid.uuid4().hex
    return f"{org}/{sandbox}/{dataset}/r/{unique}"


def command_id(org: str, sandbox: str, kind: str, identity_key: str, idempotency_key: str | None) -> str:
    """The `Nats-Msg-Id` of a delete (`d`) or unlink (`u`): unique per accepted request, so two
    deletes of one profile (with events between them) are never taken for one; a request that
    carries `Idempotency-Key` keeps its id when retried. Scoped by org and sandbox."""
    if idempotency_key:
        digest = hashlib.blake2b(f"{identity_key}\0{idempotency_key}".encode(), digest_size=16,
                                 person=b"inlet-command")
        return f"{org}/{sandbox}/{kind}/k{digest.hexdigest()}"
    return f"{org}/{sandbox}/{kind}/u{uuid.uuid4().hex}"


def retry_key_of(idempotency_key: str | None, index: int) -> str:
    """The retry key of the `index`-th message of a request that carried `Idempotency-Key`."""
    return f"{index}/{idempotency_key}" if idempotency_key else ""


def parse_timestamp_ms(value: str) -> int:
    """ISO 8601 with an offset (XDM `date-time`) → epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Rejected(
            Reason.invalid_timestamp, f"timestamp {value!r} is not an ISO 8601 date-time"
        ) from None
    if moment.tzinfo is None:
        raise Rejected(Reason.invalid_timestamp, f"timestamp {value!r} needs a UTC offset or Z")
    return int(moment.timestamp() * 1000)


def decode_json(decoder, data: bytes | msgspec.Raw, prefix: str = "$"):  # type: ignore[no-untyped-def]
    """Run a msgspec decoder; every way it can fail becomes a `Rejected` with its reason."""
    try:
        return decoder(data)
    except msgspec.ValidationError as exc:
        message = str(exc)
        reason = Reason.missing_field if "missing required field" in message else Reason.invalid_message
        raise Rejected(reason, message.replace("`$", f"`{prefix}", 1)) from None
    except msgspec.DecodeError as exc:
        raise Rejected(Reason.malformed_json, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Rejected(Reason.too_deep, "the document nests too deeply to decode") from None
    except UnicodeDecodeError as exc:  # msgspec's error for invalid UTF-8 inside a string
        raise Rejected(Reason.malformed_json, f"body is not valid UTF-8 JSON: {exc.reason}") from None
