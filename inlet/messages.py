"""What travels on the bus: one message per accepted XDM record or event.

The gateway decodes and validates once, then publishes a `BusMessage`; every consumer decodes
the same tagged union. The original XDM document rides along as `msgspec.Raw`, byte for byte,
so the lake stores exactly what the sender sent and no consumer pays to re-encode it.

Schema evolution follows msgspec's rules: new fields get defaults, tags never change meaning.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from inlet.xdm import Identity

Operation = Literal["create", "merge", "delete"]


class Event(msgspec.Struct, kw_only=True, tag="event", tag_field="kind", gc=False):
    """An XDM ExperienceEvent."""

    org: str
    sandbox: str
    dataset: str
    source: str  # connection id or datastream id
    message_id: str
    received_ms: int
    timestamp_ms: int
    event_type: str = ""
    identities: list[Identity] = []
    xdm: msgspec.Raw = msgspec.Raw(b"{}")
    # Free-form `data` of an Edge Network event (any JSON, not XDM), kept beside it for the
    # lake and the profile timeline. JSON `null` when there is none: msgspec cannot decode a
    # `Raw | None` union (it would refuse every object), so "none" is that `null`.
    data: msgspec.Raw = msgspec.Raw(b"null")
    # Whether its dataset was enabled for Profile when the gateway accepted it: enabling a
    # dataset applies to data ingested from then on (docs/catalog.md). None (messages from
    # before this field): the profile worker's current view of the dataset decides.
    profile: bool | None = None
    # The batch (`inlet.batches`) that carried it, "" when streamed: the batch itself lands in
    # the lake as one file, so the lake worker skips its messages (docs/batches.md).
    batch: str = ""

    @property
    def has_data(self) -> bool:
        return bytes(self.data) != b"null"


class Record(msgspec.Struct, kw_only=True, tag="record", tag_field="kind", gc=False):
    """An XDM record (a person's or an account's attributes, or a person-account relation):
    replaces (`create`), patches (`merge`) or removes (`delete`) the fragment its dataset
    holds for the profile or account."""

    org: str
    sandbox: str
    dataset: str
    source: str
    message_id: str
    received_ms: int
    operation: Operation = "create"
    identities: list[Identity] = []
    xdm: msgspec.Raw = msgspec.Raw(b"{}")
    # The XDM class of the record's dataset: "profile" (a person), "account" (an XDM Business
    # Account, identified by `account_key`, with no person identity) or "account-person" (a
    # relation between the person of `identities` and the account `account_key`).
    record_class: str = "profile"
    # The account the record describes (account), links to (account-person) or names in its
    # `b2b.accountKey` (profile); "" when none.
    account_key: str = ""
    # As for `Event.profile`.
    profile: bool | None = None
    batch: str = ""  # as `Event.batch`


class DeleteProfile(msgspec.Struct, kw_only=True, tag="delete_profile", tag_field="kind"):
    """Remove the profile that owns `identity` from the profile store (not lake, not graph)."""

    org: str
    sandbox: str
    message_id: str
    received_ms: int
    identity: Identity


class UnlinkIdentity(msgspec.Struct, kw_only=True, tag="unlink_identity", tag_field="kind"):
    """Take `identity` out of its graph: the profile re-splits, and the identity keeps the
    events and attributes it brought (a merge, undone)."""

    org: str
    sandbox: str
    message_id: str
    received_ms: int
    identity: Identity


BusMessage = Event | Record | DeleteProfile | UnlinkIdentity
Command = DeleteProfile | UnlinkIdentity

encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(BusMessage).decode


def kind_of(message: BusMessage) -> str:
    """The subject token of a message's kind (see `inlet.subjects`)."""
    if isinstance(message, Event):
        return "event"
    if isinstance(message, Record):
        return "record"
    return "command"
