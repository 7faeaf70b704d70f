"""Write-time deduplication: a message whose rows are already in a file is not written again.

A message's rows are in a file before the message is acknowledged. A crash, or a lost
connection, between the rename and the ack makes JetStream deliver the message again, maybe
to another lake worker. `num_delivered` is no guide: a nats-server that is killed can lose its
consumer's recent state and deliver such a message as if for the first time. What does not
change is where it can be (the hour partition its receive time names) and its stream sequence.

So before writing a partition, a worker looks up the batch's stream sequences in that
partition's files. Each file's `_inlet_stream_seq` range is known (from the rows of files this
worker wrote, read once from the others'), and only files whose range overlaps the batch are
searched, with a filter that Parquet statistics prune. One worker's own files end below its
next batch, so in the normal case nothing is read; with several workers, a few recent files
of the others are. A row found with the same message id is acknowledged, not written.

Why at write time: readers (DuckDB, Spark, Polars) see the files directly, so a duplicate must
never reach a file. What this cannot see, compaction and `inlet lake query` drop by message id
(docs/lake.md): a redelivery that overtakes its first delivery still sitting in another
worker's buffer (the consumer's `ack_wait` is longer than a buffer lives, so only a worker
stalled past it), and a client retry after the duplicate window (a new stream sequence).
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from worker.lake.frames import Row

FORGET_AFTER = 2 * 3600.0  # seconds a partition's ranges are kept after its last write


class Written:
    """The stream-sequence range of every file in the partitions this worker writes to."""

    def __init__(self) -> None:
        self.ranges: dict[Path, dict[str, tuple[int, int]]] = {}
        self.touched: dict[Path, float] = {}

    def already(self, directory: Path, rows: list[Row]) -> set[str]:
        """Message ids of `rows` (one partition's) already in the partition's files."""
        wanted = {r.stream_seq: r.message_id for r in rows}
        self._forget_idle()
        self.touched[directory] = time.monotonic()
        ranges = self.ranges.setdefault(directory, {})
        if not wanted or not directory.is_dir():
            return set()
        present = {p.name: p for p in directory.glob("part-*.parquet")}
        for gone in ranges.keys() - present.keys():  # compacted away
            del ranges[gone]
        low, high = min(wanted), max(wanted)
        found: set[str] = set()
        for name, path in present.items():
            try:
                if name not in ranges:
                    ranges[name] = _range(path)
                first, last = ranges[name]
                if last < low or first > high:
                    continue
                hits = (
                    pl.scan_parquet(path, hive_partitioning=False)
                    .select("_inlet_stream_seq", "_inlet_message_id")
                    .filter(pl.col("_inlet_stream_seq").is_in(list(wanted)))
                    .collect()
                )
            except FileNotFoundError:  # compacted between the listing and the read
                continue
            found.update(mid for seq, mid in hits.iter_rows() if wanted.get(seq) == mid)
        return found

    def wrote(self, path: Path, rows: list[Row]) -> None:
        """This worker wrote `rows` as `path`: its range is known without reading it."""
        seqs = [r.stream_seq for r in rows]
        self.ranges.setdefault(path.parent, {})[path.name] = (min(seqs), max(seqs))

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - FORGET_AFTER
        for directory in [d for d, t in self.touched.items() if t < cutoff]:
            self.ranges.pop(directory, None)
            self.touched.pop(directory, None)


def _range(path: Path) -> tuple[int, int]:
    seqs = pl.scan_parquet(path, hive_partitioning=False).select(
        pl.col("_inlet_stream_seq").min().alias("first"), pl.col("_inlet_stream_seq").max().alias("last")
    ).collect()
    first, last = seqs.row(0)
    return (int(first), int(last)) if first is not None else (0, -1)
