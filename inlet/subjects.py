"""Subject names and partitioning: the one place that knows how subjects are spelled.

`inlet.<sandbox>.<kind>.<partition>` carries ingested messages (stream `INGEST`);
`inlet.<sandbox>.dead.<consumer>` carries what a worker could not apply (stream `DEADLETTER`);
`inlet.query.profile` is the request/reply subject on which profile workers answer lookups;
`inlet.notify.<sandbox>.<profile id>` says a profile changed (after its batch committed).
Deletes travel beside events in the same stream, so their order relative to the events of the
same profile is the order in which they were accepted.
"""

from __future__ import annotations

import zlib

KINDS = ("event", "record", "command")
INGEST_SUBJECTS = [f"inlet.*.{kind}.*" for kind in KINDS]
DEAD_LETTER_STREAM = "DEADLETTER"
DEAD_LETTER_SUBJECTS = ["inlet.*.dead.*"]
PROFILE_QUERY = "inlet.query.profile"


def notify(sandbox: str, profile_id: str) -> str:
    """Core NATS (not stored): a profile changed; the profile page listens to its own."""
    return f"inlet.notify.{sandbox}.{profile_id}"


def partition(routing_key: str, partitions: int) -> int:
    """A stable partition for a routing identity (crc32 is stable across processes and
    Python versions, unlike `hash()`)."""
    return zlib.crc32(routing_key.encode()) % partitions


def ingest(sandbox: str, kind: str, part: int) -> str:
    return f"inlet.{sandbox}.{kind}.{part}"


def dead_letter(sandbox: str, consumer: str) -> str:
    return f"inlet.{sandbox}.dead.{consumer}"


def shard_partitions(shard: int, shards: int, partitions: int) -> list[int]:
    """The contiguous range of slots (owner identities hashed into `partitions`) whose data
    profile shard `shard` of `shards` keeps (worker/profile/placement.py)."""
    per, extra = divmod(partitions, shards)
    start = shard * per + min(shard, extra)
    return list(range(start, start + per + (1 if shard < extra else 0)))


def shard_filters(shard: int, shards: int, partitions: int) -> list[str]:
    """Consumer filter subjects for a profile shard: none. Every shard reads the whole stream
    in its one order, because every shard folds every message into the (replicated) identity
    graph and applies every delete and unlink at its position; it stores the data only of the
    owners in its slots (docs/scaling.md). A filter per shard would give each shard its own
    order of graph updates, and two shards could decide one merge differently."""
    return []
