"""Schema evolution on real files: new and missing fields and int→float widening stay readable
by every engine; a value that cannot be widened is kept, as sent, in the row's
`_inlet_overflow` JSON column, never dropped, and never turns a column into strings; only a
document that is not a JSON object is quarantined, with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from worker.lake.cli import datasets, table
from worker.lake.commit import Committer, Outcome
from worker.lake.frames import Row
from worker.lake.quarantine import QUARANTINE
from worker.lake.writer import Writer, partition_dir

OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z
HOUR_MS = 3_600_000


def row(i: int, xdm: dict[str, Any] | list[Any], received_ms: int = OLD) -> Row:
    return Row(xdm=json.dumps(xdm).encode(), data=None, org="O", sandbox="prod", dataset="events", source="s",
               kind="event", message_id=f"m{i}", received_ms=received_ms, stream_seq=i)


def commit(committer: Committer, rows: list[Row]) -> Outcome:
    parts: dict[tuple[str, str, Path], list[Row]] = {}
    for r in rows:
        parts.setdefault((r.sandbox, r.dataset, partition_dir(committer.lake, r.sandbox, r.dataset, r.received_ms)), []).append(r)
    outcome = committer.commit(parts)
    assert not outcome.failed
    return outcome


def parquet_files(lake: Path) -> list[Path]:
    return sorted((lake / "prod" / "events").rglob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)


def quarantined(lake: Path) -> dict[str, str]:
    lines = [json.loads(line) for f in (lake / QUARANTINE).rglob("*.jsonl") for line in f.read_text().splitlines()]
    return {q["message_id"]: q["reason"] for q in lines}


def overflow(lake: Path) -> dict[str, Any]:
    """message id → the row's overflow document, for rows that have one."""
    files = parquet_files(lake)
    if not files:
        return {}
    frame = pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")
    return {mid: json.loads(o) for mid, o in zip(frame["_inlet_message_id"], frame["_inlet_overflow"]) if o}


def test_new_missing_and_widened_fields_are_readable_by_every_engine(tmp_path: Path) -> None:
    committer = Committer(tmp_path)
    commit(committer, [row(1, {"_id": "a", "n": 1, "web": {"url": "u1"}})])
    commit(committer, [row(2, {"_id": "b", "n": 2.5, "extra": "new", "web": {"url": "u2", "ref": "r"}})],)
    commit(committer, [row(3, {"_id": "c"}, received_ms=OLD + HOUR_MS)])  # fields missing, next hour
    commit(committer, [row(4, {"_id": "d", "n": 4}, received_ms=OLD + HOUR_MS)])  # an int again

    files = parquet_files(tmp_path)
    schemas = [pl.read_parquet_schema(f) for f in files]
    assert schemas[0]["n"] == pl.Int64 and all(s["n"] == pl.Float64 for s in schemas[1:])  # widened for good
    newest = schemas[-1]
    for older in schemas:  # every file carries the whole schema as it stood: the newest reads them all
        assert list(older)[:2] == list(newest)[:2] and set(older) <= set(newest)
    assert newest["web"] == pl.Struct({"url": pl.String, "ref": pl.String})

    expected = [("a", 1.0, None, "u1"), ("b", 2.5, "new", "u2"), ("c", None, None, None), ("d", 4.0, None, None)]

    # Polars: the newest file's schema, missing columns and struct fields inserted, ints read as floats.
    root = tmp_path / "prod" / "events"
    scanned = pl.scan_parquet(
        root, hive_partitioning=True, schema=pl.read_parquet_schema(files[-1]), missing_columns="insert",
        cast_options=pl.ScanCastOptions(integer_cast="allow-float", missing_struct_fields="insert"),
    ).collect().sort("_id")
    assert list(zip(scanned["_id"], scanned["n"], scanned["extra"], scanned["web"].struct.field("url"))) == expected
    # pyarrow: one schema unified over the files.
    arrow = ds.dataset(root, format="parquet", partitioning="hive")
    unified = pa.unify_schemas([f.physical_schema for f in arrow.get_fragments()], promote_options="permissive")
    table_ = ds.dataset(root, format="parquet", partitioning="hive", schema=unified).to_table()
    assert sorted(table_.column("n").to_pylist(), key=lambda v: (v is None, v)) == [1.0, 2.5, 4.0, None]
    # DuckDB: union by name.
    rows = duckdb.sql(f"SELECT _id, n, extra, web.url FROM read_parquet('{root}/*/*/*.parquet', "
                      "hive_partitioning=true, union_by_name=true) ORDER BY _id").fetchall()
    assert rows == expected
    # inlet lake query's table.
    (files_,) = datasets(tmp_path, "prod").values()
    assert table(files_).collect().sort("_id")["n"].to_list() == [1.0, 2.5, None, 4.0]


def test_values_that_cannot_widen_are_kept_as_json_beside_the_columns(tmp_path: Path) -> None:
    committer = Committer(tmp_path)
    commit(committer, [row(1, {"_id": "a", "price": 1, "tags": ["x"], "flag": True, "web": {"url": "u"}})])
    outcome = commit(committer, [
        row(2, {"_id": "b", "price": 2.5}),  # widening: fine
        row(3, {"_id": "c", "price": "cheap"}),
        row(4, {"_id": "d", "tags": {"not": "a list"}}),
        row(5, {"_id": "e", "flag": 1}),
        row(6, {"_id": "f", "web": {"url": 42, "name": "kept"}}),
        row(7, ["not", "an", "object"]),
    ])
    assert (outcome.rows, outcome.overflowed, outcome.quarantined) == (5, 4, 1)
    assert overflow(tmp_path) == {
        "m3": {"price": "cheap"}, "m4": {"tags": {"not": "a list"}}, "m5": {"flag": 1}, "m6": {"web": {"url": 42}},
    }
    assert "object" in quarantined(tmp_path)["m7"]
    written = pl.concat([pl.read_parquet(f) for f in parquet_files(tmp_path)], how="diagonal_relaxed").sort("_id")
    assert written["_id"].to_list() == ["a", "b", "c", "d", "e", "f"] and written.schema["price"] == pl.Float64
    assert written["price"].to_list() == [1.0, 2.5, None, None, None, None]  # the columns keep their meaning
    assert written["web"].struct.field("name").to_list()[-1] == "kept"  # only the member that does not fit moves
    line = next((tmp_path / QUARANTINE).rglob("*.jsonl")).read_text().splitlines()[0]
    assert json.loads(line)["xdm"] == ["not", "an", "object"]  # the original document, kept


def test_within_one_batch_the_first_kind_seen_wins(tmp_path: Path) -> None:
    committer = Committer(tmp_path)  # a new dataset: nothing established yet
    outcome = commit(committer, [
        row(1, {"_id": "a", "code": "A1", "items": [{"sku": "x"}]}),
        row(2, {"_id": "b", "code": 7}),  # Polars alone would turn the column into strings
        row(3, {"_id": "c", "items": {"sku": "y"}}),  # Polars alone would fail the batch
        row(4, {"_id": "d", "code": "D4", "ok": True}),
        row(5, {"_id": "e", "ok": 1}),
        row(6, {"_id": "f", "items": [{"sku": 5}]}),  # inside an array: the array goes whole
    ])
    assert (outcome.rows, outcome.overflowed, outcome.quarantined) == (6, 4, 0)
    assert overflow(tmp_path) == {"m2": {"code": 7}, "m3": {"items": {"sku": "y"}}, "m5": {"ok": 1},
                                  "m6": {"items": [{"sku": 5}]}}
    (path,) = parquet_files(tmp_path)
    written = pl.read_parquet(path)
    assert written["code"].to_list() == ["A1", None, None, "D4", None, None]
    assert written.schema["items"] == pl.List(pl.Struct({"sku": pl.String}))


def test_a_mixed_array_from_adobes_tests_reaches_the_lake(tmp_path: Path) -> None:
    """Issue 11.9. The XDM is the one Adobe's Edge extension sends in its tests
    (adobe/aepsdk-edge-ios, Tests/UpstreamIntegrationTests/UpstreamIntegrationTests.swift,
    testSendEvent_withXDMData_sendsCorrectRequestEvent: `"testArray": ["arrayElem1", 2, true]`).
    No Parquet list holds it; Polars alone would store ["arrayElem1", "2", "true"]."""
    xdm = {"_id": "x", "testString": "xdm", "testInt": 10, "testBool": False, "testDouble": 12.89,
           "testArray": ["arrayElem1", 2, True], "testDictionary": {"key": "val"}}
    outcome = commit(Committer(tmp_path), [row(1, xdm), row(2, {"_id": "y", "testArray": ["a", "b"]})])
    assert (outcome.rows, outcome.quarantined) == (2, 0)
    assert overflow(tmp_path) == {"m1": {"testArray": ["arrayElem1", 2, True]}}
    written = pl.read_parquet(parquet_files(tmp_path)[0]).sort("_id")
    assert written["testInt"].to_list() == [10, None] and written["testArray"].to_list() == [None, ["a", "b"]]
    assert written["testDictionary"].to_list() == [{"key": "val"}, None]


def test_a_moved_member_does_not_shape_the_schema_for_the_rows_after_it(tmp_path: Path) -> None:
    outcome = commit(Committer(tmp_path), [
        row(1, {"a": "s"}),
        row(2, {"a": 1, "b": {"c": 2, "d": [1, "x"]}}),  # `b.d` moves: its `1`, seen first, must not set a number
        row(3, {"b": {"d": ["text"]}}),
    ])
    assert (outcome.rows, outcome.overflowed) == (3, 1)
    assert overflow(tmp_path) == {"m2": {"a": 1, "b": {"d": [1, "x"]}}}
    written = pl.read_parquet(parquet_files(tmp_path)[0])
    assert written["b"].to_list() == [None, {"c": 2, "d": None}, {"c": None, "d": ["text"]}]


def test_an_empty_object_then_a_real_one_is_not_a_conflict(tmp_path: Path) -> None:
    committer = Committer(tmp_path)
    commit(committer, [row(1, {"_id": "a", "identityMap": {}})])
    outcome = commit(committer, [row(2, {"_id": "b", "identityMap": {"Email": [{"id": "x@y"}]}})])
    assert (outcome.rows, outcome.quarantined) == (1, 0)


def test_lineage_names_are_reserved(tmp_path: Path) -> None:
    outcome = commit(Committer(tmp_path), [row(1, {"_id": "a"}), row(2, {"_id": "b", "_inlet_org": "forged"})])
    assert (outcome.rows, outcome.quarantined) == (2, 0)
    assert overflow(tmp_path) == {"m2": {"_inlet_org": "forged"}}
    assert pl.read_parquet(parquet_files(tmp_path)[0])["_inlet_org"].to_list() == ["O", "O"]  # not forged


def test_a_restarted_worker_learns_the_schema_from_the_files(tmp_path: Path) -> None:
    commit(Committer(tmp_path), [row(1, {"_id": "a", "price": 1.5})])
    outcome = commit(Committer(tmp_path), [row(2, {"_id": "b", "price": "cheap"}), row(3, {"_id": "c", "price": 2})])
    assert (outcome.rows, outcome.overflowed) == (2, 1) and overflow(tmp_path) == {"m2": {"price": "cheap"}}
    assert pl.read_parquet_schema(parquet_files(tmp_path)[-1])["price"] == pl.Float64


def test_a_worker_sees_fields_another_worker_added_in_the_same_partition(tmp_path: Path) -> None:
    mine, theirs = Committer(tmp_path), Committer(tmp_path)
    commit(mine, [row(1, {"_id": "a"})])
    commit(theirs, [row(2, {"_id": "b", "color": "red"})])
    outcome = commit(mine, [row(3, {"_id": "c", "color": 3})])
    assert (outcome.rows, outcome.overflowed) == (1, 1) and overflow(tmp_path) == {"m3": {"color": 3}}


def test_a_batch_that_cannot_become_a_file_is_quarantined_whole(tmp_path: Path, monkeypatch: Any) -> None:
    committer = Committer(tmp_path)

    def refuse(self: Writer, frame: pl.DataFrame, directory: Path) -> Path:
        raise pl.exceptions.ComputeError("parquet: nested type not supported")

    monkeypatch.setattr(Writer, "write", refuse)
    outcome = commit(committer, [row(1, {"_id": "a"}), row(2, {"_id": "b"})])
    assert (outcome.rows, outcome.quarantined) == (0, 2)
    assert "cannot be written as Parquet" in quarantined(tmp_path)["m1"]
