"""Writing a file so that readers never see half of it and a crash never loses it.

Layout: `<data dir>/lake/<sandbox>/<dataset>/inlet_date=YYYY-MM-DD/inlet_hour=HH/part-<writer>-<seq>.parquet`
(hive partitioning by receive time, UTC; zstd). The partition keys are named so no XDM field
can shadow them (`schema.PARTITION_KEYS`: a top-level field of that name goes to overflow). A file is written under a temporary name in
`<lake>/.writing/`, fsynced, renamed into its partition, and the partition directory fsynced: only
then does it exist for readers, and only then are its messages acknowledged. Temporary files
live outside the datasets because engines list dataset directories wholesale (Polars fails on
a stray temporary file, DuckDB's `*` matches hidden names). `<writer>` is random per process, and
`<seq>` counts that process's files, so lake workers never clash on a name (they may write
into the same directory: they share one durable consumer).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from inlet.durable import fsync_path
from worker.lake.schema import PARTITION_KEYS

DATE_KEY, HOUR_KEY = PARTITION_KEYS

TEMP_DIR = ".writing"
TEMP_SUFFIX = ".tmp"  # never `.parquet`: a glob for Parquet files must not catch a half-written one


def partition_dir(lake: Path, sandbox: str, dataset: str, received_ms: int) -> Path:
    moment = datetime.fromtimestamp(received_ms / 1000, timezone.utc)
    return lake / sandbox / dataset / f"{DATE_KEY}={moment:%Y-%m-%d}" / f"{HOUR_KEY}={moment:%H}"


class Writer:
    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self.temp_dir = lake / TEMP_DIR
        self.writer_id = uuid.uuid4().hex[:12]
        self.seq = 0
        self.durable_dirs: set[Path] = set()

    def name(self, suffix: str) -> str:
        """The next file name of this writer."""
        self.seq += 1
        return f"part-{self.writer_id}-{self.seq:06d}{suffix}"

    def write(self, frame: pl.DataFrame, directory: Path) -> Path:
        """Durably write `frame` as the next Parquet file in `directory`; returns its path."""
        return self.commit(directory, self.name(".parquet"),
                           lambda temp: frame.write_parquet(temp, compression="zstd", statistics=True))

    def commit(self, directory: Path, name: str, write: Callable[[Path], None]) -> Path:
        """`write` to a temporary name, fsync, rename to `directory/name`, fsync `directory`."""
        self._durable_dir(directory)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        final = directory / name
        temp = self.temp_dir / f"{name}{TEMP_SUFFIX}"
        try:
            write(temp)
            fsync_path(temp)
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_path(directory)
        return final

    def _durable_dir(self, directory: Path) -> None:
        """Create `directory` and make its entry, and its parents' entries up to the lake,
        durable: a file renamed into a directory that a crash forgets would be lost after
        its ack. Once per directory and process."""
        if directory in self.durable_dirs:
            return
        directory.mkdir(parents=True, exist_ok=True)
        for parent in directory.parents:
            fsync_path(parent)
            if parent == self.lake or self.lake not in parent.parents:
                break
        self.durable_dirs.add(directory)


def remove_temp_files(lake: Path, older_than: float) -> int:
    """Leftovers of a crash mid-write: never renamed, so never acknowledged, safe to delete.
    Only old ones: a young temporary file may be another worker's write in progress."""
    cutoff = time.time() - older_than
    count = 0
    for temp in (lake / TEMP_DIR).glob(f"part-*{TEMP_SUFFIX}"):
        try:
            if temp.stat().st_mtime < cutoff:
                temp.unlink()
                count += 1
        except FileNotFoundError:
            continue
    return count
