"""The lake's pieces on real Parquet files: frames, layout, atomic writes, dedupe, schema
evolution, quarantine, compaction and the CLI's query."""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds

from inlet.config import load
from worker.lake.cli import datasets, ls, query, table
from worker.lake.compact import compact
from worker.lake.dedupe import Seen
from worker.lake.frames import Row, frame
from worker.lake.quarantine import quarantine
from worker.lake.writer import Writer, partition_dir, remove_temp_files

HOUR_MS = 3_600_000
OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z: a long-closed hour


def row(i: int, xdm: dict, received_ms: int = OLD, dataset: str = "events") -> Row:
    return Row(xdm=json.dumps(xdm).encode(), data=None, org="O", sandbox="prod", dataset=dataset, source="demo",
               kind="event", message_id=f"m{i}", received_ms=received_ms, stream_seq=i)


def test_frames_keep_xdm_nested_and_add_lineage() -> None:
    df = frame([row(1, {"_id": "a", "commerce": {"order": {"priceTotal": 1.5}}, "items": [{"sku": "x"}]}),
                row(2, {"_id": "b", "identityMap": {}})])
    assert df.schema["commerce"] == pl.Struct({"order": pl.Struct({"priceTotal": pl.Float64})})
    assert df.schema["items"] == pl.List(pl.Struct({"sku": pl.String}))
    assert df["_inlet_message_id"].to_list() == ["m1", "m2"]
    assert df.schema["_inlet_received"] == pl.Datetime("ms", "UTC")
    assert df["identityMap"].to_list() == [None, "{}"]  # an always-empty object is kept as text


def test_files_are_laid_out_by_partition_and_written_atomically(tmp_path: Path) -> None:
    writer = Writer(tmp_path)
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    assert directory == tmp_path / "prod" / "events" / "date=2023-11-14" / "hour=22"
    path = writer.write(frame([row(1, {"_id": "a"})]), directory)
    assert path.name.startswith(f"part-{writer.writer_id}-") and path.suffix == ".parquet"
    assert [p.name for p in directory.iterdir()] == [path.name]
    (directory / ".part-x.parquet.tmp").write_bytes(b"half")
    assert remove_temp_files(tmp_path) == 1
    other = Writer(tmp_path)
    assert other.writer_id != writer.writer_id


def test_seen_ids_come_from_every_file_in_the_partition(tmp_path: Path) -> None:
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    Writer(tmp_path).write(frame([row(1, {"_id": "a"}), row(2, {"_id": "b"})]), directory)
    seen = Seen()
    assert seen.known(directory) == {"m1", "m2"}
    Writer(tmp_path).write(frame([row(3, {"_id": "c"})]), directory)  # another worker's file
    assert seen.known(directory) == {"m1", "m2", "m3"}


def test_schema_evolution_reads_back_by_name_with_widening(tmp_path: Path) -> None:
    writer = Writer(tmp_path)
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    writer.write(frame([row(1, {"_id": "a", "n": 1})]), directory)
    writer.write(frame([row(2, {"_id": "b", "n": 2.5, "extra": "new"})]), directory)
    writer.write(frame([row(3, {"_id": "c"})]), directory)
    (files,) = datasets(tmp_path, "prod").values()
    result = table(files).collect().sort("_id")
    assert result["n"].to_list() == [1.0, 2.5, None]
    assert result["extra"].to_list() == [None, "new", None]
    out = query(tmp_path, "prod", "SELECT count(*) AS n FROM events", "csv")
    assert out.splitlines() == ["n", "3"]


def test_unstorable_rows_are_quarantined_with_the_reason(tmp_path: Path) -> None:
    path = quarantine(tmp_path, "w1", 1, [(row(1, {"_id": "a"}), "ComputeError('boom')")])
    assert path.parent.parts[-5:-2] == ("_quarantine", "prod", "events")
    (line,) = path.read_text().splitlines()
    assert json.loads(line)["reason"] == "ComputeError('boom')" and json.loads(line)["xdm"] == {"_id": "a"}


def test_compaction_merges_closed_hours_once_and_drops_duplicates(tmp_path: Path) -> None:
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    for i in range(3):
        Writer(tmp_path).write(frame([row(i, {"_id": f"e{i}"}), row(9, {"_id": "dup"})]), directory)
    now_dir = partition_dir(tmp_path, "prod", "events", int(time.time() * 1000))
    Writer(tmp_path).write(frame([row(10, {"_id": "open"})]), now_dir)
    Writer(tmp_path).write(frame([row(11, {"_id": "open2"})]), now_dir)

    assert compact(tmp_path, "prod", roll_interval=60) == [directory]
    (compacted,) = directory.glob("part-*.parquet")
    rows = pl.read_parquet(compacted)
    assert sorted(rows["_id"].to_list()) == ["dup", "e0", "e1", "e2"]
    assert len(list(now_dir.glob("part-*.parquet"))) == 2  # the open hour is left alone
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")]
    arrow = ds.dataset(tmp_path / "prod" / "events", format="parquet", partitioning="hive")
    assert arrow.count_rows() == 6
    assert "events" in ls(tmp_path, "prod")


class _Msg:
    def __init__(self, data: bytes, seq: int) -> None:
        self.data, self.subject = data, "inlet.prod.event.0"
        self.metadata = type("M", (), {"sequence": type("S", (), {"stream": seq})()})()


async def test_type_conflicts_are_quarantined_and_the_rest_written(tmp_path: Path) -> None:
    import msgspec

    from inlet.messages import Event, encode
    from worker.lake.handler import LakeHandler

    def msg(i: int, xdm: dict) -> _Msg:
        return _Msg(encode(Event(org="O", sandbox="prod", dataset="events", source="s", message_id=f"m{i}",
                                 received_ms=OLD, timestamp_ms=0, xdm=msgspec.Raw(json.dumps(xdm).encode()))), i)

    handler = LakeHandler(None, tmp_path, load({}).lake)  # type: ignore[arg-type]
    await handler.apply([msg(1, {"_id": "a", "price": 1, "tags": ["x"]})])  # type: ignore[list-item]
    assert len(await handler.close()) == 1
    await handler.apply([msg(2, {"_id": "b", "price": 2.5, "new": True}),  # widening and a new field: fine
                         msg(3, {"_id": "c", "price": "cheap"}),  # a string among numbers: quarantined
                         msg(4, {"_id": "d", "tags": {"not": "a list"}})])  # type: ignore[list-item]
    assert len(await handler.close()) == 3  # all acknowledged: written or quarantined, never dropped
    (files,) = datasets(tmp_path, "prod").values()
    rows = table(files).collect().sort("_id")
    assert rows["_id"].to_list() == ["a", "b"] and rows["price"].to_list() == [1.0, 2.5]
    quarantined = [json.loads(line) for f in (tmp_path / "_quarantine").rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(q["message_id"] for q in quarantined) == ["m3", "m4"]
    assert all("in the dataset's files" in q["reason"] for q in quarantined)
