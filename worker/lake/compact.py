"""Compaction: merge the small files of closed hours into one, atomically, while workers write.

An hour partition is closed once the normal flow can no longer write to it: its end plus the
consumer's `ack_wait` has passed. (A redelivery after a crash can still add a file later;
that is just another file, for the next run.) For each closed partition with enough files:

1. read them all (by column name, relaxed types: an integer column widened later reads as
   float) and keep the first row of each message id;
2. write the result into a staging directory outside the dataset (`<lake>/.compacting/…`,
   where no reader lists), fsync it, and swap the staging and partition directories in one
   `renameat2(RENAME_EXCHANGE)`: a reader lists either the old files or the new one, never
   both (no row twice) and never neither (no half state);
3. move into the live directory any file a worker renamed into the old one meanwhile, then
   delete the old directory.

A crash in between leaves the staging directory; the next run sorts it out before anything
else: a file whose message ids are all in the live partition goes, any other is moved back.
One compaction runs at a time per lake (a lock file). A reader that listed the old files but
opens one after the swap gets "file not found" and retries; on Linux, a reader that already
opened a file keeps reading it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from inlet.durable import fsync_path
from worker.lake.writer import DATE_KEY, HOUR_KEY

STAGING = ".compacting"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class CompactionBusy(Exception):
    """Another compaction holds the lake's lock."""


# The partition layouts compaction knows: this one, and the one before the keys were renamed.
LAYOUTS = ((DATE_KEY, HOUR_KEY), ("date", "hour"))


def closed_partitions(lake: Path, sandbox: str, ack_wait: float) -> list[Path]:
    cutoff = time.time() - ack_wait
    out = []
    for date_key, hour_key in LAYOUTS:
        for hour_dir in sorted((lake / sandbox).glob(f"*/{date_key}=*/{hour_key}=*")):
            if hour_dir.parent.parent.name.startswith((".", "_")) or not hour_dir.is_dir():
                continue
            try:
                date = hour_dir.parent.name.removeprefix(f"{date_key}=")
                hour = int(hour_dir.name.removeprefix(f"{hour_key}="))
                start = datetime.strptime(date, "%Y-%m-%d").replace(hour=hour, tzinfo=timezone.utc).timestamp()
            except ValueError:  # not a partition this lake writes
                continue
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


def _ids(path: Path) -> set[str]:
    return set(pl.read_parquet(path, columns=["_inlet_message_id"], hive_partitioning=False)["_inlet_message_id"])


def recover(staging: Path, hour_dir: Path) -> None:
    """Finish or undo a compaction that a crash interrupted: keep every row exactly once."""
    live: set[str] = set()
    for path in hour_dir.glob("part-*.parquet"):
        live |= _ids(path)
    for path in staging.glob("part-*.parquet"):
        if not _ids(path) <= live:  # a late worker file (or inputs, if the swap never happened)
            os.replace(path, hour_dir / path.name)
    fsync_path(hour_dir)
    shutil.rmtree(staging)


def compact_partition(lake: Path, hour_dir: Path, min_files: int = 2) -> Path | None:
    """Merge the files of `hour_dir` into one; returns the new file, or None if left alone."""
    staging = lake / STAGING / hour_dir.relative_to(lake)
    if staging.exists():
        recover(staging, hour_dir)
    files = sorted(hour_dir.glob("part-*.parquet"))
    if len(files) < max(2, min_files):
        return None
    merged = pl.concat(
        [pl.scan_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed"
    ).unique(subset=["_inlet_message_id"], keep="first", maintain_order=True)
    staging.mkdir(parents=True)
    target = staging / f"part-compacted-{uuid.uuid4().hex[:12]}.parquet"
    merged.sink_parquet(target, compression="zstd", statistics=True)
    fsync_path(target)
    fsync_path(staging)
    exchange(hour_dir, staging)  # hour_dir now holds the compacted file; staging the old files
    fsync_path(hour_dir.parent)
    fsync_path(staging.parent)
    inputs = {f.name for f in files}
    for late in staging.glob("part-*.parquet"):
        if late.name not in inputs:
            os.replace(late, hour_dir / late.name)
    fsync_path(hour_dir)
    shutil.rmtree(staging)
    return hour_dir / target.name


@contextlib.contextmanager
def _lock(lake: Path) -> Iterator[None]:
    lake.mkdir(parents=True, exist_ok=True)
    with open(lake / ".compact.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactionBusy(f"another compaction of {lake} is running") from None
        yield


def compact(lake: Path, sandbox: str, ack_wait: float, min_files: int = 2) -> list[Path]:
    """Compact every closed hour of `sandbox` with at least `min_files` files; returns them."""
    done = []
    with _lock(lake):
        for hour_dir in closed_partitions(lake, sandbox, ack_wait):
            if compact_partition(lake, hour_dir, min_files):
                done.append(hour_dir)
    return done
