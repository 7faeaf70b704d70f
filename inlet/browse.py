"""Browsing the profile store: the request/reply contract behind the workspace at `/ui/`.

The lookups of `inlet.lookups` find one profile by an identity the caller already knows; an
operator also needs to find profiles they do not know yet ("who changed last", "who has an
email at acme", "who came from this dataset"), accounts by name, and to try a computed
attribute on one person before saving it. Those questions go to one profile shard on
`inlet.query.browse` (queue group `profile-browse`), as lookups do. With N shards every shard
holds the whole identity graph, profile index and business accounts (docs/scaling.md), so that
shard answers lists and searches from its own store, exactly as one shard would; what lives
only on the shards owning the data (a dataset sample's attributes and events, a preview's
events) it gathers from them (`worker/profile/browse.py`), never from a merge of N answers.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from inlet.computed_attributes import Definition
from inlet.xdm import Identity

SUBJECT = "inlet.query.browse"
QUEUE = "profile-browse"
MAX_LIMIT = 100


class ProfilesQuery(msgspec.Struct, kw_only=True, tag="profiles", tag_field="kind"):
    """A page of profiles, most recently updated first.

    `search` matches any identity value (case-insensitive substring), limited to `namespace`
    when given; `namespace` alone lists profiles that have an identity in it; `dataset` keeps
    profiles that hold attributes or events from that dataset (a sample: see `scanned`)."""

    org: str
    sandbox: str
    search: str = ""
    namespace: str = ""
    dataset: str = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 20
    # Resume after this row of the previous page: (last modified ms, profile id).
    after: tuple[int, str] | None = None


class AccountsQuery(msgspec.Struct, kw_only=True, tag="accounts", tag_field="kind"):
    """Business accounts whose key or name contains `search`, most recently updated first."""

    org: str
    sandbox: str
    search: str = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 20


class PreviewQuery(msgspec.Struct, kw_only=True, tag="preview", tag_field="kind"):
    """Evaluate an unsaved computed attribute on one profile's stored timeline."""

    org: str
    sandbox: str
    definition: Definition
    identity: Identity | None = None
    profile_id: str | None = None


Query = ProfilesQuery | AccountsQuery | PreviewQuery


class ProfileRow(msgspec.Struct, kw_only=True):
    profile_id: str
    last_modified_ms: int
    identities: list[str]  # the first few, people's before devices', oldest first
    identity_count: int


class ProfilesPage(msgspec.Struct, kw_only=True, tag="profiles", tag_field="kind"):
    rows: list[ProfileRow]
    matched: int  # profiles that match
    remaining: int = 0  # of those, the ones after the query's `after` (this page's included)
    # Identities looked at for a `dataset` sample; the scan stops at `SAMPLE_SCAN`.
    scanned: int = 0
    truncated: bool = False


class AccountRow(msgspec.Struct, kw_only=True):
    account_key: str
    name: str
    last_modified_ms: int


class AccountsPage(msgspec.Struct, kw_only=True, tag="accounts", tag_field="kind"):
    rows: list[AccountRow]
    matched: int


class Preview(msgspec.Struct, kw_only=True, tag="preview", tag_field="kind"):
    profile_id: str
    value: msgspec.Raw = msgspec.Raw(b"null")  # JSON null: nothing in the window counted
    last_updated_ms: int = 0
    counted: int = 0  # events that counted
    scanned: int = 0  # events in the window looked at


class Missing(msgspec.Struct, kw_only=True, tag="missing", tag_field="kind"):
    """No such profile (every shard holds the whole graph: none has it)."""

    detail: str


class Unavailable(msgspec.Struct, kw_only=True, tag="unavailable", tag_field="kind"):
    """A shard holding part of the answer did not answer in time: no partial answer is given."""

    detail: str


Answer = ProfilesPage | AccountsPage | Preview | Missing | Unavailable

encode = msgspec.json.Encoder().encode
decode_query = msgspec.json.Decoder(Query).decode
decode_answer = msgspec.json.Decoder(Answer).decode
