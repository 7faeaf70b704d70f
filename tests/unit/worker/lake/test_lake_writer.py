"""Layout, naming and atomic, durable writes; the files read as a hive dataset by any engine."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from worker.lake.writer import TEMP_DIR, Writer, partition_dir, remove_temp_files

HOUR_MS = 3_600_000
OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def frame(n: int, start: int = 0) -> pl.DataFrame:
    return pl.DataFrame({"_id": [f"e{i}" for i in range(start, start + n)],
                         "commerce": [{"order": {"priceTotal": float(i)}} for i in range(n)]})


def test_partitions_are_by_receive_time_in_utc(tmp_path: Path) -> None:
    assert partition_dir(tmp_path, "prod", "events", OLD) == tmp_path / "prod/events/inlet_date=2023-11-14/inlet_hour=22"
    midnight = 1_700_006_400_000  # 2023-11-15T00:00:00Z
    assert partition_dir(tmp_path, "prod", "events", midnight - 1).parts[-2:] == ("inlet_date=2023-11-14", "inlet_hour=23")
    assert partition_dir(tmp_path, "prod", "events", midnight).parts[-2:] == ("inlet_date=2023-11-15", "inlet_hour=00")


def test_files_are_named_by_writer_and_sequence_and_never_clash(tmp_path: Path) -> None:
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    first, second = Writer(tmp_path), Writer(tmp_path)  # two lake workers, one directory
    assert first.writer_id != second.writer_id and re.fullmatch(r"[0-9a-f]{12}", first.writer_id)
    paths = [first.write(frame(1), directory), second.write(frame(1), directory), first.write(frame(1), directory)]
    assert [p.name for p in paths] == [f"part-{first.writer_id}-000001.parquet",
                                       f"part-{second.writer_id}-000001.parquet",
                                       f"part-{first.writer_id}-000002.parquet"]
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in paths)


def test_a_write_is_zstd_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    path = Writer(tmp_path).write(frame(3), directory)
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert pl.read_parquet(path).height == 3
    assert list(directory.iterdir()) == [path]
    assert list((tmp_path / TEMP_DIR).iterdir()) == []


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    writer = Writer(tmp_path)

    def half(temp: Path) -> None:
        temp.write_bytes(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        writer.commit(directory, writer.name(".parquet"), half)
    assert list(directory.iterdir()) == [] and list((tmp_path / TEMP_DIR).iterdir()) == []


def test_only_stale_temporary_files_are_removed_at_start(tmp_path: Path) -> None:
    temp = tmp_path / TEMP_DIR
    temp.mkdir()
    (temp / "part-dead-000001.parquet.tmp").write_bytes(b"crashed mid-write")
    (temp / "part-live-000001.parquet.tmp").write_bytes(b"another worker, writing now")
    old = time.time() - 3600
    os.utime(temp / "part-dead-000001.parquet.tmp", (old, old))
    assert remove_temp_files(tmp_path, older_than=60) == 1
    assert [p.name for p in temp.iterdir()] == ["part-live-000001.parquet.tmp"]


def test_polars_pyarrow_and_duckdb_read_the_files_as_a_hive_dataset(tmp_path: Path) -> None:
    writer = Writer(tmp_path)
    for hour in range(3):
        writer.write(frame(2, start=2 * hour), partition_dir(tmp_path, "prod", "events", OLD + hour * HOUR_MS))
    root = tmp_path / "prod" / "events"
    hive = pl.scan_parquet(root, hive_partitioning=True).collect()
    assert hive.height == 6 and hive["inlet_hour"].unique().sort().to_list() == [0, 22, 23]
    assert set(hive["inlet_date"].cast(pl.String).unique()) == {"2023-11-14", "2023-11-15"}
    arrow = ds.dataset(root, format="parquet", partitioning="hive")
    assert arrow.count_rows() == 6 and {"inlet_date", "inlet_hour"} <= set(arrow.schema.names)
    assert duckdb.sql(
        f"SELECT count(*), count(DISTINCT inlet_hour) FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning=true)"
    ).fetchall() == [(6, 3)]
