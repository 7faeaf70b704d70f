"""Where an owner identity's data lives when the profile tier runs as N shards.

Every shard applies the graph part of every message (the graph is a fold over one ordered
stream, identical everywhere: docs/scaling.md), but stores events, fragments and computed
buckets only for the owners in its slots. An owner's slot is fixed by its id and
`nats.partitions`; shard `i` of `shards` owns the contiguous slot range
`subjects.shard_partitions`, so resharding moves whole slots.
"""

from __future__ import annotations

import lmdb

from inlet import subjects
from inlet.messages import BusMessage, Event, Record
from worker.profile import accounts
from worker.profile.identity_graph import Linker, Rules
from worker.profile.store import owner_id

# Business-account data is replicated like the graph (small, and person links touch the
# account's meta): these record classes are applied whole by every shard.
REPLICATED_CLASSES = ("account", "account-person")


def slot(owner: bytes, partitions: int) -> int:
    """The slot of an owner id (a 16-byte hash already: its first 4 bytes are uniform)."""
    return int.from_bytes(owner[:4], "big") % partitions


class Placement:
    """Which owners shard `shard` of `shards` keeps data for."""

    def __init__(self, shard: int, shards: int, partitions: int) -> None:
        self.shard = shard
        self.shards = shards
        self.partitions = partitions
        self.slots = frozenset(subjects.shard_partitions(shard, shards, partitions))
        self._shard_of = [0] * partitions
        for s in range(shards):
            for p in subjects.shard_partitions(s, shards, partitions):
                self._shard_of[p] = s

    def shard_of(self, owner: bytes) -> int:
        return self._shard_of[slot(owner, self.partitions)]

    def owns(self, owner: bytes) -> bool:
        return slot(owner, self.partitions) in self.slots

    def owns_message(self, message: BusMessage, rules: Rules) -> bool:
        """True if this shard applies the message whole (its data is ours, or it is replicated)."""
        if not isinstance(message, (Event, Record)):
            return True  # deletes and unlinks: every shard, in stream order
        if isinstance(message, Record) and message.record_class in REPLICATED_CLASSES:
            return True
        usable = rules.order(rules.usable(message.identities))
        if not usable:
            return True  # lake only: nothing to place
        return self.owns(owner_id(message.sandbox, usable[0].key))

    def replicate(self, txn: lmdb.Transaction, linker: Linker, rules: Rules, message: Event | Record) -> None:
        """The parts of a message another shard stores the data of, that every shard keeps:
        its identity links, and a person record's business-account link."""
        usable = rules.order(rules.usable(message.identities))
        gid = linker.link(usable, message.message_id)
        if gid is None or isinstance(message, Event):
            return
        owner = owner_id(message.sandbox, usable[0].key)
        accounts.person_record(txn, linker.store, message.sandbox, message.account_key, owner, usable[0].key,
                               message.dataset, message.operation, message.received_ms)
