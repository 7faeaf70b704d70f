"""The per-dataset failure store: messages refused by schema validation, with their reasons.

AEP answers a streaming message without `syncValidation` before validating it, and puts the
invalid ones aside where they can be listed and retrieved. inlet validates at the gateway, but
answers the same way: the message is published as a `SchemaFailure` to the JetStream stream
`SCHEMAFAILURES` (subject `inletfail.<sandbox>.<dataset>`) instead of to `INGEST`, with the
same acknowledgement (or spool) guarantee as an accepted message. It never reaches the
profile or the lake; `inlet failures`, `GET /data/foundation/schemaregistry/failures` and the
`inlet_schema_failures_total` metric show it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from inlet.outcomes import Reason, Rejected
from inlet.schemas.validate import Violation

STREAM = "SCHEMAFAILURES"
PREFIX = "inletfail."
SUBJECTS = [PREFIX + ">"]
MAX_AGE_SECONDS = 30 * 24 * 3600


class SchemaFailure(msgspec.Struct, kw_only=True, tag="schema_failure", tag_field="kind"):
    """A message refused by its dataset's schema, kept with every reason."""

    org: str
    sandbox: str
    dataset: str
    source: str
    message_id: str
    received_ms: int
    schema: str
    message_kind: str  # "event" or "record": what it would have been
    violations: list[Violation]
    xdm: msgspec.Raw = msgspec.Raw(b"{}")
    identities: list[Any] = []  # publishers route by identity; a failure has none

    @property
    def subject(self) -> str:
        return f"inletfail.{self.sandbox}.{token(self.dataset)}"

    def rejected(self) -> SchemaInvalid:
        return SchemaInvalid(self)


class SchemaInvalid(Rejected):
    """`syncValidation=true`: the violations, answered at once (400) instead of stored."""

    def __init__(self, failure: SchemaFailure) -> None:
        first = failure.violations[0]
        more = f" (and {len(failure.violations) - 1} more)" if len(failure.violations) > 1 else ""
        super().__init__(Reason.invalid_message,
                         f"xdmEntity does not conform to schema {failure.schema!r}: {first.path}: {first.message}{more}")
        self.violations = failure.violations


def token(dataset: str) -> str:
    """A dataset id as one subject token (dataset ids may hold dots)."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", dataset)


encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(SchemaFailure).decode


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    config = StreamConfig(name=STREAM, subjects=SUBJECTS, max_age=MAX_AGE_SECONDS, num_replicas=replicas,
                          duplicate_window=600)
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)


async def read(js: JetStreamContext, sandbox: str, dataset: str, limit: int = 100) -> list[SchemaFailure]:
    """The newest `limit` failures of a dataset, oldest first."""
    subject = f"inletfail.{sandbox}.{token(dataset)}"
    try:
        info = await js.stream_info(STREAM, subjects_filter=subject)
    except NotFoundError:
        return []
    count = (info.state.subjects or {}).get(subject, 0)
    skip = max(count - limit, 0)
    out: list[SchemaFailure] = []
    seq = max(info.state.first_seq, 1)
    while len(out) < count - skip and seq <= info.state.last_seq:
        try:
            msg = await js.get_msg(STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        if skip:
            skip -= 1
            count -= 1
        else:
            out.append(decode(msg.data or b"{}"))
        seq = (msg.seq or seq) + 1
    return out


async def counts(js: JetStreamContext) -> dict[str, int]:
    """Stored failures by subject (`inletfail.<sandbox>.<dataset>`)."""
    try:
        info = await js.stream_info(STREAM, subjects_filter="inletfail.>")
    except NotFoundError:
        return {}
    return dict(info.state.subjects or {})
