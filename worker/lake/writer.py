"""Writing a Parquet file so that readers never see half of it, and a crash never loses it.

Layout: `<data dir>/lake/<sandbox>/<dataset>/date=YYYY-MM-DD/hour=HH/part-<writer>-<seq>.parquet`
(hive partitioning by receive time, UTC; zstd). A file is written to a temporary name in the
same directory, fsynced, renamed into place, and the directory fsynced: only then does it
exist for readers, and only then are its messages acknowledged. `<writer>` is unique per
process, so several lake workers never clash on a name.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from inlet.durable import fsync_path

TEMP_SUFFIX = ".tmp"


def partition_dir(lake: Path, sandbox: str, dataset: str, received_ms: int) -> Path:
    moment = datetime.fromtimestamp(received_ms / 1000, timezone.utc)
    return lake / sandbox / dataset / f"date={moment:%Y-%m-%d}" / f"hour={moment:%H}"


class Writer:
    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self.writer_id = uuid.uuid4().hex[:12]
        self.seq = 0

    def write(self, frame: pl.DataFrame, directory: Path) -> Path:
        """Durably write `frame` as the next part file in `directory`; returns its path."""
        directory.mkdir(parents=True, exist_ok=True)
        self.seq += 1
        final = directory / f"part-{self.writer_id}-{self.seq:06d}.parquet"
        temp = directory / f".{final.name}{TEMP_SUFFIX}"
        frame.write_parquet(temp, compression="zstd", statistics=True)
        fsync_path(temp)
        os.replace(temp, final)
        fsync_path(directory)
        return final




def remove_temp_files(lake: Path) -> int:
    """Leftovers of a crash mid-write: never renamed, so never acknowledged; safe to delete."""
    count = 0
    for temp in lake.rglob(f".part-*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)
        count += 1
    return count
