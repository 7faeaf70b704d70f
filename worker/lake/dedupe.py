"""Write-time deduplication: a message redelivered after its file was committed (a crash or a
lost connection between the rename and the ack) is not written twice.

For each hour partition it writes to, the worker knows the message ids in that partition's
files: it reads the `_inlet_message_id` column of every file it has not seen yet (its own and
other lake workers'), once per file, just before a flush. Rows whose id is already there are
acknowledged without being written again. Partitions untouched for two hours are forgotten.

Why at write time rather than only at compaction: readers (DuckDB, Spark, Polars) see the
files directly, so a duplicate must never reach a file. The window where two workers could
still both write one id (a redelivery to another worker while the first is mid-flush) needs
`ack_wait` to expire first, which the consumer's settings make longer than any flush;
compaction (`inlet lake compact`) also drops duplicate ids, as a second net.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

FORGET_AFTER = 2 * 3600.0


class Seen:
    def __init__(self) -> None:
        self.ids: dict[Path, set[str]] = {}
        self.files: dict[Path, set[str]] = {}
        self.touched: dict[Path, float] = {}

    def known(self, directory: Path) -> set[str]:
        """Message ids already in `directory`'s Parquet files (reading only new files)."""
        ids = self.ids.setdefault(directory, set())
        read = self.files.setdefault(directory, set())
        if directory.is_dir():
            for path in directory.glob("part-*.parquet"):
                if path.name not in read:
                    ids.update(pl.read_parquet(path, columns=["_inlet_message_id"])["_inlet_message_id"].to_list())
                    read.add(path.name)
        self.touched[directory] = time.monotonic()
        return ids

    def written(self, directory: Path, path: Path, message_ids: list[str]) -> None:
        self.ids.setdefault(directory, set()).update(message_ids)
        self.files.setdefault(directory, set()).add(path.name)

    def forget_idle(self) -> None:
        cutoff = time.monotonic() - FORGET_AFTER
        for directory in [d for d, t in self.touched.items() if t < cutoff]:
            self.ids.pop(directory, None)
            self.files.pop(directory, None)
            self.touched.pop(directory, None)
