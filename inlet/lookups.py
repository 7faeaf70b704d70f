"""Profile lookups: the request/reply contract between the gateway and the profile workers.

The gateway stays stateless: it asks on `inlet.query.profile` and the worker that owns the
LMDB store answers from a read transaction. Reads never wait for writes (LMDB readers see the
last committed batch), so a lookup costs one NATS round trip plus microseconds of LMDB.
Writes (deletes) do not travel here: they go through the stream, in order with the events.
"""

from __future__ import annotations

import msgspec

from inlet.xdm import Identity


class ProfileLookup(msgspec.Struct, kw_only=True, tag="profile", tag_field="kind"):
    org: str
    sandbox: str
    identity: Identity | None = None
    profile_id: str | None = None
    # Dotted attribute paths (AEP's `fields=`); the pseudo-field `identities` adds AEP's list
    # of the profile's identities (`[{"id", "namespace": {"code"}}]`) to the entity.
    fields: list[str] = []
    merge_policy: str | None = None


class EventsLookup(msgspec.Struct, kw_only=True, tag="events", tag_field="kind"):
    org: str
    sandbox: str
    identity: Identity | None = None
    profile_id: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    limit: int = 100
    newest_first: bool = True  # the gateway always says (AEP's default is `+timestamp`)
    # Opaque position after which the next page starts (from a previous answer's `next`).
    after: str | None = None
    # Dotted paths kept in each event (AEP's `fields=`); empty: the whole event.
    fields: list[str] = []


class GraphLookup(msgspec.Struct, kw_only=True, tag="graph", tag_field="kind"):
    org: str
    sandbox: str
    identity: Identity | None = None
    profile_id: str | None = None


class AccountLookup(msgspec.Struct, kw_only=True, tag="account", tag_field="kind"):
    """A business account by its account key, with a page of the people linked to it."""

    org: str
    sandbox: str
    account_key: str
    merge_policy: str | None = None
    fields: list[str] = []
    # The people's attributes shown beside their ids (dotted paths; empty: a default few).
    person_fields: list[str] = []
    limit: int = 100
    after: str | None = None  # the last profile id of the previous page


class SchemaLookup(msgspec.Struct, kw_only=True, tag="schema", tag_field="kind"):
    org: str
    sandbox: str
    xdm_class: str


Lookup = ProfileLookup | EventsLookup | GraphLookup | AccountLookup | SchemaLookup


class ProfileView(msgspec.Struct, kw_only=True, tag="profile", tag_field="kind"):
    profile_id: str
    entity: msgspec.Raw
    identities: list[str]
    sources: list[str]
    last_modified_ms: int
    merge_policy: str
    # Attribute path → [dataset, written at ms]: where each merged value came from.
    provenance: dict[str, tuple[str, int]] = {}
    accounts: list[str] = []  # keys of the business accounts the person belongs to


class EventView(msgspec.Struct, kw_only=True):
    event_id: str
    timestamp_ms: int
    entity: msgspec.Raw
    received_ms: int = 0  # when inlet received it: AEP's `lastModifiedAt` of the event
    # The Edge event's free-form `data` (JSON `null` when none; msgspec cannot decode `Raw | None`).
    data: msgspec.Raw = msgspec.Raw(b"null")


class EventsView(msgspec.Struct, kw_only=True, tag="events", tag_field="kind"):
    profile_id: str
    events: list[EventView]
    next: str | None = None


class GraphMember(msgspec.Struct, kw_only=True):
    identity: str
    firstSeenMs: int
    lastSeenMs: int


class GraphLink(msgspec.Struct, kw_only=True):
    a: str
    b: str
    messageId: str
    timeMs: int


class GraphView(msgspec.Struct, kw_only=True, tag="graph", tag_field="kind"):
    profile_id: str
    members: list[GraphMember]
    links: list[GraphLink]


class PersonLink(msgspec.Struct, kw_only=True):
    identity: str
    dataset: str
    via: str  # "relation" (an account-person record) or "profile" (a person record's b2b.accountKey)
    linkedMs: int


class AccountPerson(msgspec.Struct, kw_only=True):
    profile_id: str
    links: list[PersonLink]
    entity: msgspec.Raw


class AccountView(msgspec.Struct, kw_only=True, tag="account", tag_field="kind"):
    account_id: str
    account_key: str
    entity: msgspec.Raw
    sources: list[str]
    last_modified_ms: int
    merge_policy: str
    people: list[AccountPerson]
    people_total: int
    next: str | None = None


class SchemaField(msgspec.Struct, kw_only=True):
    path: str
    types: list[str]
    datasets: list[str]


class SchemaView(msgspec.Struct, kw_only=True, tag="schema", tag_field="kind"):
    xdm_class: str
    fields: list[SchemaField]


class NotFound(msgspec.Struct, kw_only=True, tag="not_found", tag_field="kind"):
    detail: str


class Refused(msgspec.Struct, kw_only=True, tag="error", tag_field="kind"):
    code: str
    detail: str


Answer = ProfileView | EventsView | GraphView | AccountView | SchemaView | NotFound | Refused

encode = msgspec.json.Encoder().encode
decode_lookup = msgspec.json.Decoder(Lookup).decode
decode_answer = msgspec.json.Decoder(Answer).decode
