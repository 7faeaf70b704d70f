"""Applying bus messages to the profile store, a whole batch in one LMDB write transaction.

Each message runs in a nested transaction: a message that fails is rolled back alone and
reported for dead-lettering, while the rest of the batch commits. A failure that is the
store's and not the message's (`TRANSIENT`: a full map, a full disk, an I/O error) aborts the
whole batch instead and is raised: the same batch can succeed later, so it is retried, never
dead-lettered. Each message's id is recorded in
`applied` in the same transaction as its effects, so a batch redelivered after a crash (the
commit happened, the acks did not) changes nothing the second time.

Everything a message changes happens in that transaction: the identity graph, the event or
fragment, the computed attributes its event counts for (`computed.py`), account data and
links (`accounts.py`) and the union schema's new fields (`union_schema.py`).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lmdb
import msgspec

from inlet.messages import BusMessage, DeleteProfile, Event, Record, UnlinkIdentity
from inlet.outcomes import Reason
from worker.profile import accounts, computed, fragments, identity_graph
from worker.profile.computed import Definitions
from worker.profile.identity_graph import Linker, Rules
from worker.profile.lookup import expired
from worker.profile.placement import Placement
from worker.profile.store import (
    Store,
    StoredEvent,
    decode_event,
    applied_key,
    delete_prefix,
    encode,
    event_key,
    event_timestamp,
    owner_id,
    sweep,
)
from worker.profile.union_schema import Observer

log = logging.getLogger("inlet.worker.profile")

_EXPIRY = struct.Struct(">q")
_decode_document = msgspec.json.Decoder(dict).decode
SWEEP_LIMIT = 1000

# (sandbox, class, dataset, new (path, type) pairs) that a message observed.
Observed = tuple[str, str, str, set[tuple[str, str]]]


# Failures of the store, not of the message: the batch is retried as it is (in order) until
# they pass, by themselves (disk space freed) or after an operator's fix (a larger map, a
# restored store); dead-lettering would park every message while the store is broken.
# Everything else a message raises is its own (it would raise again) and is dead-lettered.
# `lmdb.MemoryError` is LMDB's out-of-memory, not Python's.
TRANSIENT: tuple[type[BaseException], ...] = (
    lmdb.MapFullError,
    lmdb.MapResizedError,
    lmdb.DiskError,
    lmdb.ReadersFullError,
    lmdb.TxnFullError,
    lmdb.MemoryError,
    lmdb.CorruptedError,
    lmdb.PanicError,
    lmdb.PageNotFoundError,
    lmdb.ReadonlyError,
    OSError,
    MemoryError,
)


@dataclass(frozen=True)
class Failure:
    index: int
    reason: Reason
    detail: str


class Applier:
    def __init__(
        self,
        store: Store,
        rules: Rules,
        applied_ttl_ms: int,
        event_ttl_ms: dict[tuple[str, str], int] | None = None,
        clock: Callable[[], float] = time.time,
        definitions: Definitions | None = None,
        profile_datasets: set[tuple[str, str]] | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.applied_ttl_ms = applied_ttl_ms
        self.event_ttl_ms = event_ttl_ms or {}
        self.clock = clock
        # The computed attributes to count; the worker replaces its snapshot when they change.
        self.definitions = definitions or Definitions()
        # (sandbox, dataset) enabled for profile; others reach the lake only. None: all.
        self.profile_datasets = profile_datasets
        self.schema = Observer(store)
        self._sweep_after = b""
        self._events_after = b""
        self._computed_after = b""
        self._snapshot = self.definitions.snapshot
        self._starts: dict[bytes, int] = {}
        # Profiles the last batch changed, as (sandbox, profile id), for change notifications.
        self.touched: set[tuple[str, str]] = set()
        # With N shards: which owners' data this shard keeps (docs/scaling.md). None: all.
        self.placement: Placement | None = None

    def apply_batch(self, batch: list[BusMessage | None], now_ms: int | None = None) -> list[Failure]:
        """Apply in order, commit once; `None` entries (undecodable) are skipped. Raises the
        `TRANSIENT` error (nothing committed) when the store, not a message, failed."""
        now_ms = int(self.clock() * 1000) if now_ms is None else now_ms
        failures: list[Failure] = []
        self.touched = set()
        # One set of definitions and window starts for the whole batch.
        self._snapshot = self.definitions.snapshot
        self._starts = self._snapshot.starts(now_ms)
        store = self.store
        committed = False
        try:
            with store.env.begin(write=True) as txn:
                for index, message in enumerate(batch):
                    if message is None:
                        continue
                    mid = applied_key(message.message_id)
                    if txn.get(mid, db=store.applied) is not None:
                        continue
                    nested = store.env.begin(write=True, parent=txn)
                    try:
                        observed = self._apply(nested, message)
                        nested.put(mid, _EXPIRY.pack(now_ms + self.applied_ttl_ms), db=store.applied)
                    except Exception as exc:
                        nested.abort()
                        if isinstance(exc, TRANSIENT):
                            raise  # the whole batch is rolled back and retried
                        log.warning("Could not apply message %s: %r", message.message_id, exc)
                        failures.append(Failure(index, Reason.apply_failed, repr(exc)))
                    else:
                        nested.commit()
                        if observed is not None:
                            self.schema.stage(*observed)
                self.schema.write(txn, now_ms)
                self._sweep(txn, now_ms)
                if self.event_ttl_ms:
                    self._sweep_events(txn, now_ms)
                self._sweep_computed(txn, now_ms)
            committed = True
        finally:
            self.schema.committed(committed)
        return failures

    def _apply(self, txn: lmdb.Transaction, message: BusMessage) -> Observed | None:
        store = self.store
        linker = Linker(txn, store, self.rules, message.sandbox, message.received_ms)
        if isinstance(message, DeleteProfile):
            gid = identity_graph.lookup(txn, store, message.sandbox, message.identity)
            if gid is not None:
                delete_profile(txn, store, gid)
                self.touched.add((message.sandbox, gid.hex()))
            return None
        if isinstance(message, UnlinkIdentity):
            before = identity_graph.lookup(txn, store, message.sandbox, message.identity)
            if linker.unlink(message.identity) and before is not None:
                self.touched.add((message.sandbox, before.hex()))
            return None
        if message.profile is False or (message.profile is None and self.profile_datasets is not None
                                        and (message.sandbox, message.dataset) not in self.profile_datasets):
            return None  # not enabled for profile when accepted: the lake's only
        if self.placement is not None and not self.placement.owns_message(message, self.rules):
            self.placement.replicate(txn, linker, self.rules, message)  # graph only: the data is another shard's
            return None
        removal = isinstance(message, Record) and message.operation == "delete"
        document: dict[str, Any] = {} if removal else _decode_document(message.xdm)
        if isinstance(message, Record) and message.record_class == "account":
            if message.account_key:
                accounts.write_account(txn, store, message.sandbox, message.account_key, message.dataset,
                                       document, message.operation, message.received_ms)
            return self._observed(message, "account", document)
        usable = self.rules.order(self.rules.usable(message.identities))
        if not usable:
            return None  # only blocked or no identities: lake only
        gid = linker.link(usable, message.message_id)
        if gid is None:
            return None
        self.touched.add((message.sandbox, gid.hex()))
        owner = owner_id(message.sandbox, usable[0].key)
        if isinstance(message, Event):
            stored = StoredEvent(message.dataset, message.received_ms, message.message_id, bytes(message.xdm),
                                 message.sandbox, bytes(message.data) if message.has_data else b"")
            txn.put(event_key(owner, message.timestamp_ms, message.message_id), encode(stored), db=store.event)
            counted = self._snapshot.by_sandbox.get(message.sandbox)
            if counted:
                computed.count_event(txn, store, owner, counted, self._starts, document, message.timestamp_ms,
                                     message.message_id, message.received_ms)
            return self._observed(message, "experienceevent", document)
        if message.record_class == "account-person":
            if message.account_key:
                active = not removal and document.get("isActive") is not False
                accounts.relation(txn, store, message.sandbox, message.account_key, owner, usable[0].key,
                                  message.dataset, active, message.received_ms)
            return self._observed(message, "account-person", document)
        fragments.write(txn, store, owner, message.dataset, document, message.operation, message.received_ms)
        accounts.person_record(txn, store, message.sandbox, message.account_key, owner, usable[0].key,
                               message.dataset, message.operation, message.received_ms)
        return self._observed(message, "profile", document)

    def _observed(self, message: Event | Record, xdm_class: str, document: dict[str, Any]) -> Observed | None:
        new = self.schema.observe(message.sandbox, xdm_class, message.dataset, document)
        return (message.sandbox, xdm_class, message.dataset, new) if new else None

    def _sweep(self, txn: lmdb.Transaction, now_ms: int) -> None:
        """Forget expired message ids, a bounded slice per batch."""
        self._sweep_after = sweep(
            txn, self.store.applied, self._sweep_after, SWEEP_LIMIT,
            lambda key, value: _EXPIRY.unpack(value)[0] < now_ms,
        )

    def _sweep_events(self, txn: lmdb.Transaction, now_ms: int) -> None:
        """Delete expired events, a bounded slice per batch (reads hide them already)."""

        def is_expired(key: bytes, value: bytes) -> bool:
            stored = decode_event(value)
            return expired(self.event_ttl_ms, stored.sandbox, stored.dataset, event_timestamp(key), now_ms)

        self._events_after = sweep(txn, self.store.event, self._events_after, SWEEP_LIMIT, is_expired)

    def _sweep_computed(self, txn: lmdb.Transaction, now_ms: int) -> None:
        """Delete buckets that left their window, and the state of deleted or changed
        definitions, a bounded slice per batch (reads ignore them already)."""
        self._computed_after = sweep(txn, self.store.computed, self._computed_after, SWEEP_LIMIT,
                                     computed.stale(self._snapshot, now_ms))


def delete_profile(txn: lmdb.Transaction, store: Store, gid: bytes) -> None:
    """Remove the attributes, events, computed values and account links of every identity of
    the profile; the identity graph stays (as in AEP), so a later event for any of them starts
    an empty profile."""
    graph = identity_graph.load(txn, store, gid)
    if graph is None:
        return
    for member in graph.members:
        owner = owner_id(graph.sandbox, member.key)
        delete_prefix(txn, store.fragment, owner)
        delete_prefix(txn, store.event, owner)
        delete_prefix(txn, store.computed, owner)
        accounts.forget_person(txn, store, owner)
    txn.delete(gid, db=store.profile)
