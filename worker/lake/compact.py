"""Compaction: merge the small files of closed hours into one, atomically, while workers write.

An hour partition is closed once no flush can still target it: its end plus twice the roll
interval plus the ack margin has passed (late redeliveries may still add a file later; that is
just another file, handled by the next run). For each closed partition with several files:

1. read them all (by column name, relaxed types) and drop duplicate message ids;
2. write the result into a sibling directory, fsync, and swap the two directories in one
   `renameat2(RENAME_EXCHANGE)` call: a reader lists either the old files or the new one, never
   both (no row twice) and never neither (no half state);
3. move any file a worker wrote into the old directory meanwhile over to the live one, then
   delete the old directory.

A reader that listed the old files but opens one only after the swap gets "file not found" and
retries; on Linux, a reader that already opened a file keeps reading it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from inlet.durable import fsync_path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def closed_partitions(lake: Path, sandbox: str, roll_interval: float) -> list[Path]:
    cutoff = time.time() - 2 * roll_interval - 10
    out = []
    for hour_dir in sorted((lake / sandbox).glob("*/date=*/hour=*")):
        if hour_dir.parent.parent.name.startswith((".", "_")):
            continue
        date = hour_dir.parent.name.removeprefix("date=")
        hour = int(hour_dir.name.removeprefix("hour="))
        start = datetime.strptime(date, "%Y-%m-%d").replace(hour=hour, tzinfo=timezone.utc).timestamp()
        if start + 3600 < cutoff:
            out.append(hour_dir)
    return out


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two directories (Linux renameat2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"renameat2 exchange failed: {os.strerror(errno)}")


def compact_partition(hour_dir: Path) -> Path | None:
    files = sorted(hour_dir.glob("part-*.parquet"))
    if len(files) < 2:
        return None
    frame = (
        pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
        .unique(subset=["_inlet_message_id"], keep="first", maintain_order=True)
    )
    staging = hour_dir.parent / f".{hour_dir.name}.compacting"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    target = staging / f"part-compacted-{uuid.uuid4().hex[:12]}.parquet"
    frame.write_parquet(target, compression="zstd", statistics=True)
    fsync_path(target)
    fsync_path(staging)
    exchange(hour_dir, staging)  # hour_dir now holds the compacted file; staging the old files
    fsync_path(hour_dir.parent)
    inputs = {f.name for f in files}
    for late in staging.glob("part-*.parquet"):
        if late.name not in inputs:
            os.replace(late, hour_dir / late.name)
    fsync_path(hour_dir)
    shutil.rmtree(staging)
    return target


def compact(lake: Path, sandbox: str, roll_interval: float, min_files: int = 2) -> list[Path]:
    done = []
    for hour_dir in closed_partitions(lake, sandbox, roll_interval):
        if len(list(hour_dir.glob("part-*.parquet"))) >= min_files and compact_partition(hour_dir):
            done.append(hour_dir)
    return done
