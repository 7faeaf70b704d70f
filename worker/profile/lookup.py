"""Answering profile lookups from a read transaction (see `inlet.lookups`).

Readers never block the writer: an answer reflects the last committed batch. A profile is
assembled on read from the data of every identity in its graph (attributes, events, computed
attribute buckets); under a merge policy with `identityGraph: none` only the looked-up
identity's own data counts. Accounts and the union schema are answered here too.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from typing import Any

import lmdb
import msgspec

from inlet import lookups
from inlet.config import Config, MergePolicy
from inlet.merge_policies import PolicyCache
from inlet.xdm import Identity
from worker.profile import (
    accounts,
    computed,
    fragments,
    identity_graph,
    merge,
    union_schema,
)
from worker.profile.computed import Definitions
from worker.profile.store import (
    ID_BYTES,
    Graph,
    Store,
    decode_event,
    decode_meta,
    event_bound,
    event_timestamp,
    owner_id,
)

_encode = msgspec.json.Encoder().encode
_decode_document = msgspec.json.Decoder(dict[str, Any]).decode
_FAR = 1 << 61
# AEP's pseudo-field: `fields=identities` lists the profile's identities in the entity.
IDENTITIES = "identities"
# Where computed attributes appear in the entity; records cannot write there.
COMPUTED = "computedAttributes."


class Lookups:
    def __init__(
        self,
        store: Store,
        config: Config,
        clock: Callable[[], float] = time.time,
        policies: PolicyCache | None = None,
        definitions: Definitions | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.policies = policies or PolicyCache(config)
        self.definitions = definitions or Definitions(config.computed_attributes)
        self.ttl_ms = event_ttls(config)

    def answer(self, data: bytes) -> bytes:
        try:
            lookup = lookups.decode_lookup(data)
        except msgspec.DecodeError as exc:
            return lookups.encode(lookups.Refused(code="invalid_parameter", detail=str(exc)))
        with self.store.env.begin() as txn:
            if isinstance(lookup, lookups.ProfileLookup):
                return lookups.encode(self._profile(txn, lookup))
            if isinstance(lookup, lookups.EventsLookup):
                return lookups.encode(self._events(txn, lookup))
            if isinstance(lookup, lookups.AccountLookup):
                return lookups.encode(self._account(txn, lookup))
            if isinstance(lookup, lookups.SchemaLookup):
                return lookups.encode(self._schema(txn, lookup))
            return lookups.encode(self._graph(txn, lookup))

    def _find(
        self, txn: lmdb.Transaction, sandbox: str, identity: Identity | None, profile_id: str | None
    ) -> tuple[bytes, Graph] | lookups.NotFound:
        if identity is not None:
            gid = identity_graph.lookup(txn, self.store, sandbox, identity)
            what = f"identity {identity.key}"
        else:
            try:
                gid = bytes.fromhex(profile_id or "")
            except ValueError:
                gid = None
            what = f"profile {profile_id}"
        missing = lookups.NotFound(detail=f"no profile for {what} in sandbox {sandbox!r}")
        if gid is None or len(gid) != ID_BYTES:
            return missing
        raw = txn.get(gid, db=self.store.profile)
        graph = identity_graph.load(txn, self.store, gid)
        if raw is None or graph is None or decode_meta(raw).sandbox != sandbox:
            return missing
        return gid, graph

    def _owners(self, graph: Graph, identity: Identity | None, policy: MergePolicy | None) -> list[bytes]:
        if policy is not None and policy.identity_graph == "none":
            key = identity.key if identity is not None else graph.founder().key
            return [owner_id(graph.sandbox, key)]
        return [owner_id(graph.sandbox, m.key) for m in graph.members]

    def _policy(self, sandbox: str, policy_id: str | None) -> MergePolicy | lookups.Refused:
        policies = self.policies.for_sandbox(sandbox)
        if policy_id:
            found = next((p for p in policies if p.id == policy_id), None)
            if found is None:
                return lookups.Refused(code="invalid_parameter", detail=f"no merge policy {policy_id!r}")
            return found
        default = next((p for p in policies if p.default), None)
        return default or MergePolicy(id="default", sandbox=sandbox)

    def _profile(self, txn: lmdb.Transaction, q: lookups.ProfileLookup) -> lookups.Answer:
        policy = self._policy(q.sandbox, q.merge_policy)
        if isinstance(policy, lookups.Refused):
            return policy
        found = self._find(txn, q.sandbox, q.identity, q.profile_id)
        if isinstance(found, lookups.NotFound):
            return found
        gid, graph = found
        meta = decode_meta(txn.get(gid, db=self.store.profile) or b"")
        owners = self._owners(graph, q.identity, policy)
        frags = fragments.read(txn, self.store, owners)
        chosen = merge.merge_with_sources(frags, policy)
        leaves = {path: value for path, (value, _, _) in chosen.items() if not path.startswith(COMPUTED)}
        definitions = self.definitions.snapshot.by_sandbox.get(q.sandbox)
        if definitions:
            now_ms = int(self.clock() * 1000)
            leaves.update(computed.leaves(computed.read(txn, self.store, owners, definitions, now_ms)))
        attributes = [f for f in q.fields if f != IDENTITIES]
        leaves = merge.select(leaves, attributes) if attributes or not q.fields else {}
        entity: dict[str, Any] = fragments.unflatten(leaves)
        members = [m.key.partition(":") for m in graph.members]
        if IDENTITIES in q.fields:
            entity[IDENTITIES] = [{"id": value, "namespace": {"code": ns}} for ns, _, value in members]
        if not q.fields or "identityMap" in q.fields:
            identity_map: dict[str, list[dict[str, str]]] = {}
            for ns, _, value in members:
                identity_map.setdefault(ns, []).append({"id": value})
            entity["identityMap"] = identity_map
        return lookups.ProfileView(
            profile_id=gid.hex(),
            entity=msgspec.Raw(_encode(entity)),
            identities=[m.key for m in graph.members],
            sources=sorted({dataset for dataset, _ in frags}),
            last_modified_ms=meta.last_modified_ms,
            merge_policy=policy.id,
            provenance={path: (chosen[path][1], chosen[path][2]) for path in leaves if path in chosen},
            accounts=accounts.keys_of(txn, self.store, owners),
        )

    def _account(self, txn: lmdb.Transaction, q: lookups.AccountLookup) -> lookups.Answer:
        policy = self._policy(q.sandbox, q.merge_policy)
        if isinstance(policy, lookups.Refused):
            return policy
        return accounts.view(txn, self.store, q, policy)

    def _schema(self, txn: lmdb.Transaction, q: lookups.SchemaLookup) -> lookups.Answer:
        return lookups.SchemaView(
            xdm_class=q.xdm_class,
            fields=[lookups.SchemaField(path=path, types=types, datasets=datasets)
                    for path, types, datasets in union_schema.read(txn, self.store, q.sandbox, q.xdm_class)],
        )

    def _graph(self, txn: lmdb.Transaction, q: lookups.GraphLookup) -> lookups.Answer:
        found = self._find(txn, q.sandbox, q.identity, q.profile_id)
        if isinstance(found, lookups.NotFound):
            return found
        gid, graph = found
        return lookups.GraphView(
            profile_id=gid.hex(),
            members=[lookups.GraphMember(identity=m.key, firstSeenMs=m.first_seen_ms, lastSeenMs=m.last_seen_ms)
                     for m in graph.members],
            links=[lookups.GraphLink(a=l.a, b=l.b, messageId=l.message_id, timeMs=l.ts) for l in graph.links],
        )

    def _events(self, txn: lmdb.Transaction, q: lookups.EventsLookup) -> lookups.Answer:
        found = self._find(txn, q.sandbox, q.identity, q.profile_id)
        if isinstance(found, lookups.NotFound):
            return found
        gid, graph = found
        start = q.start_ms if q.start_ms is not None else -_FAR
        end = q.end_ms if q.end_ms is not None else _FAR
        now_ms = int(self.clock() * 1000)
        after = bytes.fromhex(q.after) if q.after else None
        streams = [
            _walk(txn.cursor(self.store.event), owner, start, end, after, q.newest_first)
            for owner in self._owners(graph, q.identity, None)
        ]
        merged = heapq.merge(*streams, reverse=q.newest_first)
        events: list[lookups.EventView] = []
        last = b""
        for suffix, value in merged:
            if len(events) == q.limit:
                return lookups.EventsView(profile_id=gid.hex(), events=events, next=last.hex())
            stored = decode_event(value)
            timestamp_ms = event_timestamp(b"\0" * ID_BYTES + suffix)
            if expired(self.ttl_ms, graph.sandbox, stored.dataset, timestamp_ms, now_ms):
                continue
            entity = msgspec.Raw(stored.xdm)
            if q.fields:
                entity = msgspec.Raw(_encode(select_document(_decode_document(stored.xdm), q.fields)))
            events.append(
                lookups.EventView(
                    event_id=stored.message_id.rsplit("/", 1)[-1],
                    timestamp_ms=timestamp_ms,
                    entity=entity,
                    received_ms=stored.received_ms,
                    data=msgspec.Raw(stored.data or b"null"),
                )
            )
            last = suffix
        return lookups.EventsView(profile_id=gid.hex(), events=events)


def select_document(document: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The parts of a document at the dotted `fields` (AEP's `fields=` for events), nested as
    in the document; a path the document lacks adds nothing."""
    out: dict[str, Any] = {}
    for field in fields:
        *parents, last = field.split(".")
        source: Any = document
        for part in parents:
            source = source.get(part) if isinstance(source, dict) else None
        if not isinstance(source, dict) or last not in source:
            continue
        target = out
        for part in parents:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                break
            target = child
        else:
            target[last] = source[last]
    return out


def event_ttls(config: Config) -> dict[tuple[str, str], int]:
    """(sandbox, dataset) → ExperienceEvent time to live in ms, for datasets that set one."""
    return {(d.sandbox, d.id): int(d.event_ttl_days * 86_400_000) for d in config.datasets if d.event_ttl_days}


def expired(ttl_ms: dict[tuple[str, str], int], sandbox: str, dataset: str, timestamp_ms: int, now_ms: int) -> bool:
    ttl = ttl_ms.get((sandbox, dataset))
    return ttl is not None and timestamp_ms < now_ms - ttl


def _walk(
    cursor: lmdb.Cursor, owner: bytes, start: int, end: int, after: bytes | None, descending: bool
) -> Iterator[tuple[bytes, bytes]]:
    """(timestamp + message id, value) of one owner's events in [start, end), resuming after
    the `after` suffix, in time order (or reverse)."""
    low, high = event_bound(owner, start), event_bound(owner, end)
    resume = owner + after if after is not None else None
    if descending:
        top = min(high, resume) if resume is not None else high
        positioned = cursor.last() if not cursor.set_range(top) else cursor.prev()
        while positioned:
            key = bytes(cursor.key())
            if key < low:
                return
            if key < top:
                yield key[ID_BYTES:], bytes(cursor.value())
            positioned = cursor.prev()
    else:
        bottom = max(low, resume) if resume is not None else low
        positioned = cursor.set_range(bottom)
        while positioned:
            key = bytes(cursor.key())
            if key >= high:
                return
            if resume is None or key > resume:
                yield key[ID_BYTES:], bytes(cursor.value())
            positioned = cursor.next()
