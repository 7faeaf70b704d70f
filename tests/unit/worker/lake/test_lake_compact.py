"""Compaction: closed hours become one file, atomically, with duplicates dropped and no
file a worker wrote meanwhile lost, even across a crash."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.dataset as ds
import pytest

from worker.lake import compact as compaction
from worker.lake.compact import STAGING, CompactionBusy, compact, recover
from worker.lake.conform import conform
from worker.lake.frames import Row, table
from worker.lake.schema import DatasetSchema
from worker.lake.writer import Writer, partition_dir

OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z: a long-closed hour


def write(lake: Path, ids: list[str], received_ms: int = OLD, xdm: dict[str, Any] | None = None) -> Path:
    rows = [Row(xdm=json.dumps(xdm or {"_id": i}).encode(), data=None, org="O", sandbox="prod", dataset="events",
                source="s", kind="event", message_id=i, received_ms=received_ms, stream_seq=n)
            for n, i in enumerate(ids)]
    conformed = conform(rows, DatasetSchema(lake / "prod" / "events"))
    return Writer(lake).write(table(conformed.xdm, conformed.rows), partition_dir(lake, "prod", "events", received_ms))


def ids_in(directory: Path) -> list[str]:
    files = sorted(directory.glob("part-*.parquet"))
    return sorted(pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")["_inlet_message_id"])


def test_closed_hours_become_one_file_without_duplicates(tmp_path: Path) -> None:
    closed = partition_dir(tmp_path, "prod", "events", OLD)
    write(tmp_path, ["a", "dup"], xdm={"n": 1})
    write(tmp_path, ["b", "dup"], xdm={"n": 2.5, "extra": "x"})  # widened and a new field
    write(tmp_path, ["c"])
    now = int(time.time() * 1000)
    open_hour = partition_dir(tmp_path, "prod", "events", now)
    write(tmp_path, ["d"], received_ms=now)
    write(tmp_path, ["e"], received_ms=now)

    assert compact(tmp_path, "prod", ack_wait=12) == [closed]
    (merged,) = closed.glob("part-*.parquet")
    assert merged.name.startswith("part-compacted-")
    frame = pl.read_parquet(merged)
    assert sorted(frame["_inlet_message_id"]) == ["a", "b", "c", "dup"]
    assert frame.schema["n"] == pl.Float64 and "date" not in frame.columns
    assert len(list(open_hour.glob("part-*.parquet"))) == 2  # the open hour is left alone
    assert not (tmp_path / STAGING).exists() or not any((tmp_path / STAGING).rglob("*.parquet"))
    arrow = ds.dataset(tmp_path / "prod" / "events", format="parquet", partitioning="hive")
    assert arrow.count_rows() == 6
    assert compact(tmp_path, "prod", ack_wait=12) == []  # nothing left to do


def test_a_file_written_during_compaction_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = partition_dir(tmp_path, "prod", "events", OLD)
    write(tmp_path, ["a"])
    write(tmp_path, ["b"])
    swap = compaction.exchange

    def late_then_swap(a: Path, b: Path) -> None:
        write(tmp_path, ["late"])  # a redelivery lands in the old directory just before the swap
        swap(a, b)

    monkeypatch.setattr(compaction, "exchange", late_then_swap)
    compact(tmp_path, "prod", ack_wait=12)
    assert ids_in(closed) == ["a", "b", "late"]
    assert len(list(closed.glob("part-*.parquet"))) == 2


def test_a_crash_after_the_swap_is_recovered_without_loss_or_duplicates(tmp_path: Path) -> None:
    closed = partition_dir(tmp_path, "prod", "events", OLD)
    write(tmp_path, ["a"])
    write(tmp_path, ["b"])
    staging = tmp_path / STAGING / closed.relative_to(tmp_path)
    # What a crash right after the swap leaves: the merged file live, the inputs and a late
    # worker file in staging.
    staging.parent.mkdir(parents=True)
    shutil.copytree(closed, staging)
    for f in closed.glob("part-*.parquet"):
        f.unlink()
    write(tmp_path, ["a", "b"])
    late = write(tmp_path, ["late"])
    late.rename(staging / late.name)

    recover(staging, closed)
    assert ids_in(closed) == ["a", "b", "late"] and not staging.exists()


def test_a_crash_before_the_swap_leaves_the_partition_as_it_was(tmp_path: Path) -> None:
    closed = partition_dir(tmp_path, "prod", "events", OLD)
    write(tmp_path, ["a"])
    write(tmp_path, ["b"])
    staging = tmp_path / STAGING / closed.relative_to(tmp_path)
    staging.mkdir(parents=True)
    merged = write(tmp_path, ["a", "b"])
    merged.rename(staging / "part-compacted-0.parquet")

    assert compact(tmp_path, "prod", ack_wait=12) == [closed]  # recovers, then compacts
    assert ids_in(closed) == ["a", "b"] and len(list(closed.glob("part-*.parquet"))) == 1


def test_one_compaction_at_a_time(tmp_path: Path) -> None:
    with compaction._lock(tmp_path):
        with pytest.raises(CompactionBusy):
            compact(tmp_path, "prod", ack_wait=12)


def test_partitions_of_the_layout_before_the_rename_are_compacted_too(tmp_path: Path) -> None:
    """Files written before the partition keys became `inlet_date`/`inlet_hour` (issue 12.6)
    sit under `date=`/`hour=`; compaction still merges them, in place."""
    write(tmp_path, ["a"])
    write(tmp_path, ["b"])
    new = partition_dir(tmp_path, "prod", "events", OLD)
    old = tmp_path / "prod" / "events" / "date=2023-11-14" / "hour=22"
    old.parent.mkdir(parents=True)
    new.rename(old)
    assert compact(tmp_path, "prod", ack_wait=12) == [old]
    assert len(list(old.glob("part-*.parquet"))) == 1 and ids_in(old) == ["a", "b"]
