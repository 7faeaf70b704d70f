"""Applying bus messages to the profile store, a whole batch in one LMDB write transaction.

Each message runs in a nested transaction: a message that fails is rolled back alone and
reported for dead-lettering, while the rest of the batch commits. Its id is recorded in
`applied` in the same transaction as its effects, so a batch redelivered after a crash (the
commit happened, the acks did not) changes nothing the second time.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass

import lmdb
import msgspec

from inlet.messages import BusMessage, DeleteProfile, Event, Record
from inlet.outcomes import Reason
from worker.profile import fragments, identity_graph
from worker.profile.store import Store, StoredEvent, encode, event_key, prefix_items

log = logging.getLogger("inlet.worker.profile")

_EXPIRY = struct.Struct(">q")
_decode_document = msgspec.json.Decoder(dict).decode


@dataclass(frozen=True)
class Failure:
    index: int
    reason: Reason
    detail: str


class Applier:
    def __init__(self, store: Store, applied_ttl_ms: int) -> None:
        self.store = store
        self.applied_ttl_ms = applied_ttl_ms
        self._sweep_after = b""

    def apply_batch(self, batch: list[BusMessage | None], now_ms: int | None = None) -> list[Failure]:
        """Apply in order, commit once; `None` entries (undecodable) are skipped by the caller."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        failures: list[Failure] = []
        store = self.store
        with store.env.begin(write=True) as txn:
            for index, message in enumerate(batch):
                if message is None:
                    continue
                mid = message.message_id.encode()
                if txn.get(mid, db=store.applied) is not None:
                    continue
                nested = store.env.begin(write=True, parent=txn)
                try:
                    self._apply(nested, message)
                    nested.put(mid, _EXPIRY.pack(now_ms + self.applied_ttl_ms), db=store.applied)
                except Exception as exc:
                    nested.abort()
                    log.warning("Could not apply message %s: %r", message.message_id, exc)
                    failures.append(Failure(index, Reason.apply_failed, repr(exc)))
                else:
                    nested.commit()
            self._sweep(txn, now_ms)
        return failures

    def _apply(self, txn: lmdb.Transaction, message: BusMessage) -> None:
        store = self.store
        if isinstance(message, DeleteProfile):
            gid = identity_graph.lookup(txn, store, message.sandbox, message.identity)
            if gid is not None:
                delete_profile(txn, store, gid)
            return
        if not message.identities:
            return  # lake-only: nothing to key a profile by
        gid = identity_graph.resolve(
            txn, store, message.sandbox, message.identities, message.message_id, message.received_ms
        )
        if isinstance(message, Event):
            stored = StoredEvent(message.dataset, message.received_ms, message.message_id, bytes(message.xdm))
            txn.put(event_key(gid, message.timestamp_ms, message.message_id), encode(stored), db=store.event)
        elif isinstance(message, Record):
            document = _decode_document(message.xdm) if message.operation != "delete" else {}
            fragments.write(txn, store, gid, message.dataset, document, message.operation, message.received_ms)
        identity_graph.touch(txn, store, gid, message.sandbox, message.received_ms)

    def _sweep(self, txn: lmdb.Transaction, now_ms: int, limit: int = 1000) -> None:
        """Forget expired message ids, a bounded slice per batch, resuming where it stopped."""
        cursor = txn.cursor(self.store.applied)
        if not cursor.set_range(self._sweep_after):
            cursor.first()
        seen = 0
        for key, value in cursor:
            seen += 1
            if _EXPIRY.unpack(value)[0] < now_ms:
                cursor.delete()
            if seen >= limit:
                self._sweep_after = bytes(key)
                return
        self._sweep_after = b""


def delete_profile(txn: lmdb.Transaction, store: Store, gid: bytes) -> None:
    """Remove fragments, events and profile metadata; the identity graph stays (as in AEP)."""
    fragments.delete_all(txn, store, gid)
    for key, _ in prefix_items(txn, store.event, gid):
        txn.delete(key, db=store.event)
    txn.delete(gid, db=store.profile)
