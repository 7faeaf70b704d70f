"""What the Catalog keeps in NATS: one key-value bucket, `inlet_catalog`, one entry per dataset,
streaming connection, datastream and sandbox, shared by every process.

Keys are `dataset.<sandbox>/<id>`, `connection.<id>`, `datastream.<id>` and `sandbox.<name>`
(`/` cannot occur in a name, so a dotted id never collides with another sandbox's).

The config file is the bootstrap, merged differently by kind:
- datasets are *seeded*: a config-file dataset the bucket does not have yet is added (with
  Profile on when its `profile` is true), and from then on the bucket wins, so the Profile
  switch and the schema can be changed at runtime for them too (like merge policies);
- connections and datastreams of the config file stay *read-only*: they are never copied
  into the bucket (their tokens are the file's), the API lists them and refuses to change or
  remove them, and it refuses to create one with the same id;
- sandboxes are `prod`, every sandbox the config file names, and those created through the API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from inlet import buckets
from inlet.config import Config, Connection, Dataset, DatasetClass, Datastream

BUCKET = "inlet_catalog"
ENABLED = "enabled:true"
# AEP's tags that switch a dataset into Real-Time Customer Profile and Identity Service.
PROFILE_TAG = "unifiedProfile"
IDENTITY_TAG = "unifiedIdentity"


def now_ms() -> int:
    return int(time.time() * 1000)


class StoredDataset(msgspec.Struct, kw_only=True):
    """A dataset: AEP's Catalog fields (name, description, schemaRef, tags) and inlet's own
    (its XDM class, event TTL, and where it came from)."""

    id: str
    sandbox: str = "prod"
    name: str = ""
    description: str = ""
    xdm_class: DatasetClass = msgspec.field(name="class", default="experienceevent")
    schema: str = ""
    tags: dict[str, list[str]] = {}
    event_ttl_days: float = 0
    created: int = 0
    updated: int = 0
    version: int = 1
    origin: Literal["config", "api"] = "api"

    @property
    def profile(self) -> bool:
        """Enabled for Profile: AEP's `unifiedProfile` tag holds `enabled:true`."""
        return ENABLED in self.tags.get(PROFILE_TAG, [])

    def to_dataset(self) -> Dataset:
        return Dataset(id=self.id, sandbox=self.sandbox, xdm_class=self.xdm_class, profile=self.profile,
                       event_ttl_days=self.event_ttl_days, schema=self.schema)


class StoredConnection(msgspec.Struct, kw_only=True):
    """A streaming connection made through the API: its tokens are kept only as SHA-256 hashes
    (they are 256-bit random strings, so a fast hash is enough; nothing to brute-force)."""

    id: str
    name: str = ""
    sandbox: str = "prod"
    authenticated: bool = True
    token_hashes: list[str] = []
    datasets: list[str] = []
    rate_limit: float = 0
    created: int = 0

    def to_connection(self) -> Connection:
        return Connection(id=self.id, sandbox=self.sandbox, authenticated=self.authenticated,
                          token_hashes=list(self.token_hashes), datasets=list(self.datasets),
                          rate_limit=self.rate_limit)


class StoredDatastream(msgspec.Struct, kw_only=True):
    id: str
    name: str = ""
    sandbox: str = "prod"
    dataset: str = ""
    origins: list[str] = []
    rate_limit: float = 0
    created: int = 0

    def to_datastream(self) -> Datastream:
        return Datastream(id=self.id, sandbox=self.sandbox, dataset=self.dataset, origins=list(self.origins),
                          rate_limit=self.rate_limit)


class StoredSandbox(msgspec.Struct, kw_only=True):
    name: str
    title: str = ""
    type: Literal["development", "production"] = "development"
    created: int = 0


Entry = StoredDataset | StoredConnection | StoredDatastream | StoredSandbox

encode = msgspec.json.Encoder().encode
DECODERS: dict[str, msgspec.json.Decoder[StoredDataset] | msgspec.json.Decoder[StoredConnection]
               | msgspec.json.Decoder[StoredDatastream] | msgspec.json.Decoder[StoredSandbox]] = {
    "dataset": msgspec.json.Decoder(StoredDataset),
    "connection": msgspec.json.Decoder(StoredConnection),
    "datastream": msgspec.json.Decoder(StoredDatastream),
    "sandbox": msgspec.json.Decoder(StoredSandbox),
}


def dataset_key(sandbox: str, dataset_id: str) -> str:
    return f"dataset.{sandbox}/{dataset_id}"


def connection_key(connection_id: str) -> str:
    return f"connection.{connection_id}"


def datastream_key(datastream_id: str) -> str:
    return f"datastream.{datastream_id}"


def sandbox_key(name: str) -> str:
    return f"sandbox.{name}"


def decode(entry_key: str, value: bytes) -> Entry:
    """The document of a bucket entry, by the kind its key names (raises `msgspec.DecodeError`,
    or `KeyError` for a key of no known kind)."""
    return DECODERS[entry_key.partition(".")[0]].decode(value)


def new_token() -> str:
    return "inlet_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(presented: str, hashes: list[str]) -> bool:
    """Compared in constant time against every hash, always."""
    digest = token_hash(presented).encode()
    found = False
    for candidate in hashes:
        found |= hmac.compare_digest(digest, candidate.encode())
    return found


def bootstrap_dataset(dataset: Dataset) -> StoredDataset:
    """A config-file dataset as first stored: its `profile` switch becomes AEP's tags (Profile
    and Identity together, as the file has one switch for both)."""
    tags = {PROFILE_TAG: [ENABLED], IDENTITY_TAG: [ENABLED]} if dataset.profile else {}
    at = now_ms()
    return StoredDataset(id=dataset.id, sandbox=dataset.sandbox, name=dataset.id, xdm_class=dataset.xdm_class,
                         schema=dataset.schema, tags=tags, event_ttl_days=dataset.event_ttl_days,
                         created=at, updated=at, origin="config")


async def open_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    return await buckets.open_bucket(js, BUCKET, replicas=replicas)


async def seed(kv: KeyValue, config: Config) -> None:
    """Add the config file's datasets that the bucket does not have yet (see the module)."""
    for dataset in config.datasets:
        try:
            await kv.create(dataset_key(dataset.sandbox, dataset.id), encode(bootstrap_dataset(dataset)))
        except KeyWrongLastSequenceError:
            pass  # exists: the bucket (maybe edited through the API) wins
