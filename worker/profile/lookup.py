"""Answering profile lookups from a read transaction (see `inlet.lookups`).

Readers never block the writer: an answer reflects the last committed batch.
"""

from __future__ import annotations

from typing import Any

import lmdb
import msgspec

from inlet import lookups
from inlet.config import Config, MergePolicy
from inlet.xdm import Identity
from worker.profile import fragments, identity_graph, merge
from worker.profile.store import (
    Store,
    decode_event,
    decode_graph,
    decode_meta,
    event_bound,
    event_timestamp,
)

_encode = msgspec.json.Encoder().encode


class Lookups:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config

    def answer(self, data: bytes) -> bytes:
        try:
            lookup = lookups.decode_lookup(data)
        except msgspec.DecodeError as exc:
            return lookups.encode(lookups.Refused(code="invalid_parameter", detail=str(exc)))
        with self.store.env.begin() as txn:
            if isinstance(lookup, lookups.ProfileLookup):
                return lookups.encode(self._profile(txn, lookup))
            return lookups.encode(self._events(txn, lookup))

    def _gid(
        self, txn: lmdb.Transaction, sandbox: str, identity: Identity | None, profile_id: str | None
    ) -> bytes | lookups.NotFound:
        if identity is not None:
            gid = identity_graph.lookup(txn, self.store, sandbox, identity)
            what = f"identity {identity.key}"
        else:
            try:
                gid = bytes.fromhex(profile_id or "")
            except ValueError:
                gid = None
            what = f"profile {profile_id}"
        if gid is None or len(gid) != 16:
            return lookups.NotFound(detail=f"no profile for {what} in sandbox {sandbox!r}")
        raw = txn.get(gid, db=self.store.profile)
        if raw is None or decode_meta(raw).sandbox != sandbox:
            return lookups.NotFound(detail=f"no profile for {what} in sandbox {sandbox!r}")
        return gid

    def _policy(self, sandbox: str, policy_id: str | None) -> MergePolicy | lookups.Refused:
        policies = [p for p in self.config.merge_policies if p.sandbox == sandbox]
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
        gid = self._gid(txn, q.sandbox, q.identity, q.profile_id)
        if isinstance(gid, lookups.NotFound):
            return gid
        raw_graph, raw_meta = txn.get(gid, db=self.store.graph), txn.get(gid, db=self.store.profile)
        if raw_graph is None or raw_meta is None:
            return lookups.NotFound(detail=f"profile {gid.hex()} is gone")
        graph, meta = decode_graph(raw_graph), decode_meta(raw_meta)
        frags = fragments.read(txn, self.store, gid)
        leaves = merge.select(merge.merge(frags, policy), q.fields)
        entity: dict[str, Any] = fragments.unflatten(leaves)
        identity_map: dict[str, list[dict[str, str]]] = {}
        for member in graph.members:
            ns, _, value = member.key.partition(":")
            identity_map.setdefault(ns, []).append({"id": value})
        if not q.fields or "identityMap" in q.fields:
            entity["identityMap"] = identity_map
        return lookups.ProfileView(
            profile_id=gid.hex(),
            entity=msgspec.Raw(_encode(entity)),
            identities=[m.key for m in graph.members],
            sources=sorted(frags),
            last_modified_ms=meta.last_modified_ms,
            merge_policy=policy.id,
        )

    def _events(self, txn: lmdb.Transaction, q: lookups.EventsLookup) -> lookups.Answer:
        gid = self._gid(txn, q.sandbox, q.identity, q.profile_id)
        if isinstance(gid, lookups.NotFound):
            return gid
        low = event_bound(gid, q.start_ms if q.start_ms is not None else -(1 << 61))
        high = event_bound(gid, q.end_ms if q.end_ms is not None else (1 << 61))
        after = bytes.fromhex(q.after) if q.after else None
        cursor = txn.cursor(self.store.event)
        events: list[lookups.EventView] = []
        last_key = b""
        for key in _walk(cursor, low, high, after, q.newest_first):
            if len(events) == q.limit:
                return lookups.EventsView(profile_id=gid.hex(), events=events, next=last_key.hex())
            stored = decode_event(cursor.value())
            events.append(
                lookups.EventView(
                    event_id=stored.message_id.rsplit("/", 1)[-1],
                    timestamp_ms=event_timestamp(key),
                    entity=msgspec.Raw(stored.xdm),
                )
            )
            last_key = key
        return lookups.EventsView(profile_id=gid.hex(), events=events)


def _walk(cursor: lmdb.Cursor, low: bytes, high: bytes, after: bytes | None, descending: bool):  # type: ignore[no-untyped-def]
    """Keys in [low, high) (a profile's events in a time range), resuming after `after`."""
    if descending:
        start = after if after is not None else high
        found = cursor.set_range(start)
        positioned = cursor.prev() if found else cursor.last()
        while positioned:
            key = bytes(cursor.key())
            if key < low:
                return
            if key < high and (after is None or key < after):
                yield key
            positioned = cursor.prev()
    else:
        positioned = cursor.set_range(after if after is not None else low)
        while positioned:
            key = bytes(cursor.key())
            if key >= high:
                return
            if after is None or key > after:
                yield key
            positioned = cursor.next()
