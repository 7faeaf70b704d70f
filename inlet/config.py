"""The one configuration object: defaults in code, a TOML file over them, environment over both.

Every process (gateway, workers, the `inlet up` supervisor) loads the same `Config`, so a
setting means one thing everywhere. Config Structs forbid unknown fields: a typo in the TOML
file fails start-up naming the key, instead of being silently ignored.

Precedence, lowest first: the defaults below, the file named by `INLET_CONFIG` (else
`./inlet.toml` when it exists), then the `INLET_*` environment variables in `ENVIRONMENT`.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from inlet.computed_attributes import Definition as ComputedAttribute
from inlet.computed_attributes import problem as computed_attribute_problem
from inlet.dataprep.mapping import MappingSet

SECONDS = 1.0
MINUTES = 60 * SECONDS
KIB = 1024
MIB = 1024 * KIB

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]

# profile: XDM Individual Profile records; experienceevent: XDM ExperienceEvents; account: XDM
# Business Account records (keyed by `accountKey`, no person identity needed);
# account-person: Business Account Person Relation records (a person identity + `accountKey`).
DatasetClass = Literal["profile", "experienceevent", "account", "account-person"]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


class Http(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    # Per message and per request, as in AEP's streaming docs (413 past them).
    max_message_bytes: Positive = 1 * MIB
    max_request_bytes: Positive = 16 * MIB
    max_batch_messages: Positive = 10_000
    # Hypercorn closes a connection after this many requests; its default (1,000) makes
    # every busy HTTP/2 client reconnect constantly.
    keep_alive_max_requests: Positive = 1_000_000
    # Seconds a client has to send a request's whole body, from its headers on; past it the
    # request is answered 408 and the connection closed (slow-loris bodies). Slow headers and
    # idle connections are Hypercorn's keep-alive timeout (5 s).
    body_read_timeout: PositiveSeconds = 30 * SECONDS
    # TLS straight from the gateway (HTTP/2 by ALPN). Usually nginx terminates TLS instead.
    certfile: str = ""
    keyfile: str = ""
    # Gateway processes `inlet up` starts, all on `port` (SO_REUSEPORT: the kernel spreads
    # connections over them); 0 = one per core. BENCHMARKS.md: every core.
    processes: Annotated[int, msgspec.Meta(ge=0, le=256)] = 0
    # Bind with SO_REUSEPORT, so several gateways share the port; `inlet up` sets it
    # (INLET_HTTP_REUSE_PORT) when it runs more than one. Off otherwise: a second server on a
    # taken port should fail, not quietly share it.
    reuse_port: bool = False


class Nats(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Empty: `inlet up` starts an embedded nats-server and fills this in for its children.
    url: str = ""
    stream: Name = "INGEST"
    # Number of subject partitions; profile shards own ranges of them.
    partitions: Positive = 16
    # A client retry inside this window is stored once (JetStream `Nats-Msg-Id` dedupe).
    duplicate_window: PositiveSeconds = 10 * MINUTES
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    publish_timeout: PositiveSeconds = 5 * SECONDS
    # Unacknowledged publishes allowed in flight; past it the gateway answers 503.
    max_pending_publishes: Positive = 20_000
    # Retention of stream INGEST (0: no limit). Past max_bytes JetStream refuses new messages
    # (discard=new: the gateway spools, then answers 503), so nothing a consumer still needs
    # is deleted to make room; max_age deletes by age whatever the consumers, so keep it well
    # above the longest worker outage you plan for. `inlet status` and /metrics warn first.
    max_age: Annotated[float, msgspec.Meta(ge=0)] = 7 * 24 * 60 * MINUTES
    max_bytes: Annotated[int, msgspec.Meta(ge=0)] = 10 * 1024 * MIB
    # The embedded nats-server's fsync policy (`inlet up` only; a cluster sets its own):
    # "always" fsyncs every message before JetStream acknowledges it, so a 2xx survives power
    # loss; a duration ("2m", NATS's default) syncs periodically. docs/operations.md.
    sync_interval: Annotated[str, msgspec.Meta(pattern=r"^(always|[0-9]+(ms|s|m|h))$")] = "always"


class Limits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Shape limits on every document the gateway accepts (see `gateway.limits`)."""

    max_depth: Annotated[int, msgspec.Meta(ge=2, le=512)] = 64
    max_string_bytes: Positive = 64 * KIB


class SpoolConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The gateway's disk spool for when JetStream is unreachable (see `gateway.spool`)."""

    enabled: bool = True
    # Empty: `<data dir>/spool/gateway-<port>`; each gateway needs its own directory.
    directory: str = ""
    max_bytes: Positive = 1024 * MIB
    # Past this age of the oldest spooled message, new messages are refused (503).
    max_age: PositiveSeconds = 24 * 60 * MINUTES


class Profile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    shards: Positive = 1
    batch: Positive = 500
    # How long a fetched, unacknowledged message waits before redelivery: the delay after a
    # worker crash. A batch commits in milliseconds, so this can be short.
    ack_wait: PositiveSeconds = 10 * SECONDS
    # Applied message ids are remembered this long; must exceed the redelivery horizon.
    applied_ttl: PositiveSeconds = 7 * 24 * 60 * MINUTES
    map_size_bytes: Positive = 8 * 1024 * MIB
    query_timeout: PositiveSeconds = 5 * SECONDS
    # One writer per shard: a shard's lease in KV bucket `profile_shards` expires this long
    # after its holder stopped renewing it; a second process for a held shard waits that long,
    # then refuses (docs/scaling.md).
    shard_lease: PositiveSeconds = 15 * SECONDS


class Lake(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    roll_interval: PositiveSeconds = 60 * SECONDS
    max_rows: Positive = 50_000
    # Buffered XDM bytes that trigger a write, whichever limit comes first.
    max_bytes: Positive = 64 * MIB
    batch: Positive = 1_000


class Batches(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Batch ingestion (docs/batches.md): the loader that lake workers run."""

    # A loader that stops answering (killed mid-batch) gives its batch up after this long;
    # another lake worker (or the same one, restarted) then loads it again from the start.
    job_ack_wait: PositiveSeconds = 60 * SECONDS
    # Rows per staged Parquet file while a batch is written (the loader's memory bound).
    chunk_rows: Positive = 50_000
    # Backpressure: the loader publishes a batch's rows to the profile only while the profile
    # consumers have fewer than this many messages pending, so streaming traffic queues
    # behind at most this many batch rows.
    profile_backlog: Positive = 2_000
    # Rows published to the profile before their acks are awaited.
    publish_window: Positive = 500


class Edge(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The Edge Network endpoints (`/ee/...`) that browsers and apps call."""

    # HMAC key for device-id values; every gateway of a deployment needs the same one.
    # Empty: a random key kept in `<data dir>/identity-secret`.
    identity_secret: str = ""
    # Peers whose client-address header is believed (addresses or CIDR networks).
    trusted_proxies: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "::1"])
    client_address_header: str = "x-forwarded-for"
    max_request_bytes: Positive = 256 * KIB
    max_events: Positive = 100
    # Returned as a `locationHint:result` (empty: the gateway answers "inlet"); the SDKs then
    # add it as a path segment.
    location_hint: str = ""


def _default_namespace_limits() -> dict[str, int]:
    return {"CRMID": 1}


def _default_blocked_values() -> list[str]:
    return ["null", "undefined", "none", "nan", "0", "-1", "unknown", "anonymous",
            "test@test.com", "test@example.com", "noemail@example.com", "00000000-0000-0000-0000-000000000000"]


class Identity(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Identity stitching rules: what may link, and how far a graph may grow."""

    # Customer-defined namespaces besides the standard ones (ECID, Email, Phone, GAID, IDFA,
    # AAID, CRMID); codes are case-insensitive and take the spelling given here.
    namespaces: list[Name] = []
    # Device namespaces follow the last authenticated person instead of merging people.
    device_namespaces: list[Name] = msgspec.field(default_factory=lambda: ["ECID", "GAID", "IDFA", "AAID"])
    # Past this many identities, the least recently seen ones are unlinked.
    graph_limit: Annotated[int, msgspec.Meta(ge=2)] = 50
    # At most this many identities of a namespace per graph: a second CRMID is another person.
    namespace_limits: dict[str, Annotated[int, msgspec.Meta(ge=1)]] = msgspec.field(
        default_factory=_default_namespace_limits
    )
    # Values that never identify anyone (compared case-insensitively, after normalisation).
    blocked_values: list[str] = msgspec.field(default_factory=_default_blocked_values)


class Connection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A streaming connection (`/collection/{id}`): who may send, into which datasets."""

    id: Name
    sandbox: Name = "prod"
    authenticated: bool = False
    tokens: list[str] = []
    # SHA-256 (hex) of further valid tokens, for tokens not kept in plain text: connections
    # made through the API keep only these (docs/catalog.md).
    token_hashes: list[str] = []
    # Empty: any dataset of the sandbox.
    datasets: list[Name] = []
    # Requests per second through this connection, per gateway (0: unlimited).
    rate_limit: Annotated[float, msgspec.Meta(ge=0)] = 0


class Datastream(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An Edge Network datastream (`configId`): browser and app traffic."""

    id: Name
    sandbox: Name = "prod"
    dataset: Name = "demo-events"
    origins: list[str] = []
    # Requests per second from browsers and apps on this datastream, per gateway (0: unlimited).
    rate_limit: Annotated[float, msgspec.Meta(ge=0)] = 0
    # A Data Prep mapping set (docs/batches.md) from each event's free-form `data` into XDM,
    # applied before identities are read and the schema is checked. None: `data` is kept as is.
    mapping: MappingSet | None = None


class Dataset(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Name
    sandbox: Name = "prod"
    # The XDM class of its records: it decides whether a message is an event or a record.
    xdm_class: DatasetClass = msgspec.field(name="class", default="experienceevent")
    profile: bool = True
    # ExperienceEvents older than this (by their timestamp) leave the profile timeline.
    # 0 keeps them forever. The lake keeps everything.
    event_ttl_days: Annotated[float, msgspec.Meta(ge=0)] = 0
    # The XDM schema (`$id` or `meta:altId` in the Schema Registry) every message must name in
    # `header.schemaRef.id` and conform to (docs/schemas.md). Empty: no schema, no validation.
    schema: str = ""


class MergePolicy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Name
    name: str = ""
    sandbox: Name = "prod"
    identity_graph: Literal["pdg", "none"] = "pdg"
    attribute_merge: Literal["timestampOrdered", "dataSetPrecedence"] = "timestampOrdered"
    order: list[Name] = []
    default: bool = False


Scope = Literal["profile:read", "profile:write", "admin"]


class ApiToken(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A bearer token for the profile and admin APIs, limited by scope and sandbox.

    `profile:read`: read profiles, events, graphs and configuration; `profile:write`: delete
    profiles and unlink identities; `admin`: change merge policies, computed attributes and
    the Catalog (datasets, connections, datastreams, sandboxes; docs/catalog.md).
    """

    name: Name
    token: str = msgspec.field(default="")
    scopes: list[Scope] = msgspec.field(default_factory=lambda: ["profile:read"])
    # Empty: every sandbox.
    sandboxes: list[Name] = []


def _default_connections() -> list[Connection]:
    return [Connection(id="demo")]


def _default_datastreams() -> list[Datastream]:
    return [Datastream(id="demo", origins=["http://localhost:*", "https://shop.example"])]


def _default_datasets() -> list[Dataset]:
    return [
        Dataset(id="demo-profiles", xdm_class="profile", schema="https://ns.adobe.com/demo/schemas/profile"),
        Dataset(id="demo-events", xdm_class="experienceevent", schema="https://ns.adobe.com/demo/schemas/event"),
        Dataset(id="demo-accounts", xdm_class="account", schema="https://ns.adobe.com/demo/schemas/account"),
    ]


def _default_merge_policies() -> list[MergePolicy]:
    return [MergePolicy(id="default", name="Timestamp ordered", default=True)]


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    org: str = "DEMO@AdobeOrg"
    data_dir: str = "var"
    api_token: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: JSON lines when stderr is not a terminal, readable text when it is.
    log_format: Literal["auto", "json", "text"] = "auto"
    http: Http = msgspec.field(default_factory=Http)
    nats: Nats = msgspec.field(default_factory=Nats)
    spool: SpoolConfig = msgspec.field(default_factory=SpoolConfig)
    limits: Limits = msgspec.field(default_factory=Limits)
    profile: Profile = msgspec.field(default_factory=Profile)
    lake: Lake = msgspec.field(default_factory=Lake)
    batches: Batches = msgspec.field(default_factory=Batches)
    edge: Edge = msgspec.field(default_factory=Edge)
    identity: Identity = msgspec.field(default_factory=Identity)
    connections: list[Connection] = msgspec.field(default_factory=_default_connections)
    datastreams: list[Datastream] = msgspec.field(default_factory=_default_datastreams)
    datasets: list[Dataset] = msgspec.field(default_factory=_default_datasets)
    merge_policies: list[MergePolicy] = msgspec.field(default_factory=_default_merge_policies)
    # Seeds for the computed attribute definitions (the API edits them; see docs/profile.md).
    computed_attributes: list[ComputedAttribute] = []
    api_tokens: list[ApiToken] = []

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    def connection(self, connection_id: str) -> Connection | None:
        return next((c for c in self.connections if c.id == connection_id), None)

    def dataset(self, sandbox: str, dataset_id: str) -> Dataset | None:
        return next((d for d in self.datasets if d.id == dataset_id and d.sandbox == sandbox), None)

    def datastream(self, datastream_id: str) -> Datastream | None:
        return next((d for d in self.datastreams if d.id == datastream_id), None)


# Environment variable → (section, key). The README documents this table.
ENVIRONMENT: dict[str, tuple[str | None, str]] = {
    "INLET_HTTP_HOST": ("http", "host"),
    "INLET_HTTP_PORT": ("http", "port"),
    "INLET_HTTP_REUSE_PORT": ("http", "reuse_port"),
    "INLET_DATA_DIR": (None, "data_dir"),
    "INLET_NATS_URL": ("nats", "url"),
    "INLET_API_TOKEN": (None, "api_token"),
    "INLET_ORG": (None, "org"),
    "INLET_LOG_LEVEL": (None, "log_level"),
    "INLET_LOG_FORMAT": (None, "log_format"),
    "INLET_PARTITIONS": ("nats", "partitions"),
    "INLET_REPLICAS": ("nats", "replicas"),
    "INLET_PROFILE_SHARDS": ("profile", "shards"),
    "INLET_LAKE_ROLL_INTERVAL": ("lake", "roll_interval"),
    "INLET_IDENTITY_SECRET": ("edge", "identity_secret"),
    "INLET_TLS_CERTFILE": ("http", "certfile"),
    "INLET_TLS_KEYFILE": ("http", "keyfile"),
}


def load(environ: dict[str, str] | None = None) -> Config:
    """Build the config from file and environment, failing loudly by key."""
    env = dict(os.environ if environ is None else environ)
    raw: dict[str, object] = {}
    path = env.get("INLET_CONFIG") or ("inlet.toml" if Path("inlet.toml").is_file() else "")
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    for var, (section, key) in ENVIRONMENT.items():
        if var in env:
            target = raw if section is None else raw.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError(f"config section [{section}] must be a table")
            target[key] = env[var]
    try:
        config = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    _check(config)
    return config


def _check(config: Config) -> None:
    """Cross-field rules that a type alone cannot express."""
    for kind, items in (
        ("connection", config.connections),
        ("datastream", config.datastreams),
        ("merge policy", config.merge_policies),
    ):
        ids = [i.id for i in items]
        if len(ids) != len(set(ids)):
            raise ConfigError(f"duplicate {kind} id in {sorted(ids)}")
    keys = [(d.sandbox, d.id) for d in config.datasets]
    if len(keys) != len(set(keys)):
        raise ConfigError("duplicate dataset id within a sandbox")
    for c in config.connections:
        if c.authenticated and not (c.tokens or c.token_hashes):
            raise ConfigError(f"connections.{c.id}: authenticated connection needs tokens")
        for d in c.datasets:
            if config.dataset(c.sandbox, d) is None:
                raise ConfigError(f"connections.{c.id}.datasets: unknown dataset {d!r}")
    for s in config.datastreams:
        dataset = config.dataset(s.sandbox, s.dataset)
        if dataset is None:
            raise ConfigError(f"datastreams.{s.id}.dataset: unknown dataset {s.dataset!r}")
        if dataset.xdm_class != "experienceevent":
            raise ConfigError(f"datastreams.{s.id}.dataset: {s.dataset!r} is not an experienceevent dataset")
    names = [(a.sandbox, a.name) for a in config.computed_attributes]
    if len(names) != len(set(names)):
        raise ConfigError("duplicate computed attribute name within a sandbox")
    for attribute in config.computed_attributes:
        wrong = computed_attribute_problem(attribute)
        if wrong:
            raise ConfigError(f"computed_attributes.{attribute.name}: {wrong}")
    sandboxes = {d.sandbox for d in config.datasets}
    for sandbox in sandboxes:
        defaults = [p for p in config.merge_policies if p.sandbox == sandbox and p.default]
        if len(defaults) > 1:
            raise ConfigError(f"merge_policies: more than one default in sandbox {sandbox!r}")
    for proxy in config.edge.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"edge.trusted_proxies: {proxy!r} is not an address or network") from None
    for t in config.api_tokens:
        if len(t.token) < 16:
            raise ConfigError(f"api_tokens.{t.name}.token: use at least 16 characters")
    if bool(config.http.certfile) != bool(config.http.keyfile):
        raise ConfigError("http.certfile and http.keyfile go together")
    if config.profile.shards > config.nats.partitions:
        raise ConfigError("profile.shards cannot exceed nats.partitions")
    if config.nats.max_age and config.nats.duplicate_window > config.nats.max_age:
        raise ConfigError("nats.duplicate_window cannot exceed nats.max_age (JetStream refuses the stream)")


def api_token(config: Config) -> str:
    """The profile API token: configured, else a dev token kept in the data directory.

    A random token per data directory means a fresh `make up` is never open to the network
    with a well-known secret, while the token stays stable across restarts.
    """
    return config.api_token or _kept_secret(config, "api-token", "dev-")


def identity_secret(config: Config) -> bytes:
    """The key that signs device-id values (see `gateway.device_id`)."""
    return (config.edge.identity_secret or _kept_secret(config, "identity-secret")).encode()


def _kept_secret(config: Config, name: str, prefix: str = "") -> str:
    path = config.data_path / name
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + secrets.token_urlsafe(24)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value
