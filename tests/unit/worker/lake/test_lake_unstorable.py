"""What no column can hold never costs the lake anything else (issue 12.3-12.6, 12.8).

A field name with a quote, backslash or control character, a value that is not JSON (invalid
UTF-8, a number past a double), nesting past what readers read, thousands of keys, a field
named like a partition key: each stays with its own row (in `_inlet_overflow`, or in
quarantine with the reason), and every other row, before and after, lands in Parquet that
Polars, pyarrow and DuckDB read without our code.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from worker.lake.commit import Committer, Outcome
from worker.lake.frames import Row
from worker.lake.quarantine import QUARANTINE
from worker.lake.schema import MAX_DEPTH, MAX_FIELDS
from worker.lake.writer import Writer, partition_dir

OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def row(i: int, xdm: dict[str, Any] | bytes, data: bytes | None = None) -> Row:
    raw = xdm if isinstance(xdm, bytes) else json.dumps(xdm).encode()
    return Row(xdm=raw, data=data, org="O", sandbox="prod", dataset="events", source="s", kind="event",
               message_id=f"m{i}", received_ms=OLD, stream_seq=i)


def good(i: int) -> Row:
    return row(i, {"_id": f"e{i}", "eventType": "view", "web": {"url": f"https://shop.example/{i}"}, "n": i})


def commit(committer: Committer, rows: list[Row]) -> Outcome:
    outcome = committer.commit({("prod", "events", partition_dir(committer.lake, "prod", "events", OLD)): rows})
    assert not outcome.failed
    return outcome


def root(lake: Path) -> Path:
    return lake / "prod" / "events"


def written(lake: Path) -> pl.DataFrame:
    files = sorted(root(lake).rglob("part-*.parquet"))
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")


def overflow(lake: Path) -> dict[str, Any]:
    frame = written(lake)
    return {m: json.loads(o) for m, o in zip(frame["_inlet_message_id"], frame["_inlet_overflow"]) if o}


def quarantined(lake: Path) -> dict[str, str]:
    lines = [json.loads(line) for f in (lake / QUARANTINE).rglob("*.jsonl") for line in f.read_text().splitlines()]
    return {q["message_id"]: q["reason"] for q in lines}


def _sql(query: str) -> duckdb.DuckDBPyRelation:
    relation = duckdb.sql(query)
    assert relation is not None
    return relation


def every_engine_reads(lake: Path) -> int:
    """Rows of the dataset as Polars, pyarrow and DuckDB read it as a hive dataset (they agree)."""
    files = sorted(root(lake).rglob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    newest = pl.read_parquet_schema(files[-1])
    polars = pl.scan_parquet(root(lake), hive_partitioning=True, schema=newest, missing_columns="insert",
                             cast_options=pl.ScanCastOptions(integer_cast="allow-float",
                                                             missing_struct_fields="insert")).collect()
    for f in files:
        pq.read_table(f)  # pyarrow's Parquet reader, file by file
    arrow = ds.dataset(root(lake), format="parquet", partitioning="hive")
    unified = pa.unify_schemas([f.physical_schema for f in arrow.get_fragments()], promote_options="permissive")
    table = ds.dataset(root(lake), format="parquet", partitioning="hive", schema=unified).to_table()
    ((duck,),) = _sql(f"SELECT count(*) FROM read_parquet('{root(lake)}/*/*/*.parquet', "
                            "hive_partitioning=true, union_by_name=true)").fetchall()
    assert polars.height == table.num_rows == duck
    return int(duck)


@pytest.mark.parametrize("name", ['say "hi"', "back\\slash", "bell\u0007", "line\nbreak"])
def test_a_field_name_no_column_can_have_never_poisons_the_dataset(tmp_path: Path, name: str) -> None:
    """Issue 12.3: before, the name became a column, and every later flush (also after a
    restart, the schema being learned from the files) failed and quarantined every row."""
    committer = Committer(tmp_path)
    outcome = commit(committer, [good(1), row(2, {"_id": "bad", name: 1, "web": {name: "x", "url": "u"}}), good(3)])
    assert (outcome.rows, outcome.quarantined) == (3, 0)
    assert overflow(tmp_path) == {"m2": {name: 1, "web": {name: "x"}}}  # kept, as sent
    assert commit(committer, [good(4), good(5)]).rows == 2
    assert commit(Committer(tmp_path), [good(6), row(7, {name: [1]})]).rows == 2  # a restarted worker too
    assert sorted(written(tmp_path)["_id"].drop_nulls()) == ["bad", "e1", "e3", "e4", "e5", "e6"]
    assert every_engine_reads(tmp_path) == 7
    # Once the dataset's columns are known, a batch whose only novelty is such a name (a number,
    # top-level or inside a known struct) must not make it a column either.
    committer = Committer(tmp_path)
    outcome = commit(committer, [good(8), row(9, {"n": 9, name: 2})])
    assert (outcome.rows, outcome.overflowed) == (2, 1)
    outcome = commit(committer, [good(11), row(10, {"web": {"url": "u", name: 3}})])
    assert (outcome.rows, outcome.overflowed) == (2, 1)
    assert overflow(tmp_path)["m9"] == {name: 2} and overflow(tmp_path)["m10"] == {"web": {name: 3}}
    for f in root(tmp_path).rglob("part-*.parquet"):
        assert name not in pq.read_schema(f).names and name not in str(pq.read_schema(f))


def test_a_dataset_whose_old_files_hold_such_a_column_takes_new_rows(tmp_path: Path) -> None:
    """Files an older inlet wrote may already hold a column named so; a worker that learns the
    schema from them must still write (msgspec, our validator, cannot rename to that name)."""
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    Writer(tmp_path).write(pl.DataFrame({"_id": ["old"], 'a"b': [1], "_inlet_message_id": ["m0"],
                                         "_inlet_stream_seq": pl.Series([0], dtype=pl.UInt64)}), directory)
    outcome = commit(Committer(tmp_path), [good(1), row(2, {"_id": "again", 'a"b': "now a string"})])
    assert (outcome.rows, outcome.quarantined) == (2, 0)
    assert overflow(tmp_path) == {"m2": {'a"b': "now a string"}}
    assert written(tmp_path).filter(pl.col("_id") == "e1")["n"].to_list() == [1]


@pytest.mark.parametrize("bad, why", [
    (b'{"_id": "bad", "name": "caf\xe9"}', "not valid JSON"),  # Latin-1, not UTF-8
    (b'{"_id": "bad", "price": 1e400}', "not valid JSON"),
    (b'{"_id": "bad", "name": "x\\ud800y"}', "not valid JSON"),  # Polars alone stores "x\x00y"
])
def test_one_unstorable_row_is_quarantined_alone(tmp_path: Path, bad: bytes, why: str) -> None:
    """Issue 12.4: 100 good rows and 1 bad one in a partition: 100 in Parquet, 1 quarantined
    with its reason (before: 0 in Parquet, 101 quarantined)."""
    rows = [good(i) for i in range(50)] + [row(50, bad)] + [good(i) for i in range(51, 101)]
    outcome = commit(Committer(tmp_path), rows)
    assert (outcome.rows, outcome.quarantined) == (100, 1)
    reasons = quarantined(tmp_path)
    assert list(reasons) == ["m50"] and why in reasons["m50"]
    assert written(tmp_path).height == 100
    text = next((tmp_path / QUARANTINE).rglob("*.jsonl")).read_bytes()
    (line,) = [json.loads(line) for line in text.decode().splitlines()]  # a JSON line, even for bytes that are not UTF-8
    assert line["stream_seq"] == 50
    assert (base64.b64decode(line["xdm_base64"]) if line["xdm"] is None else text[text.index(bad):][:len(bad)]) == bad


def test_a_lone_surrogate_is_never_stored_as_another_character(tmp_path: Path) -> None:
    """Polars reads the escape `\\ud800` as another character, quietly; msgspec refuses it."""
    committer = Committer(tmp_path)
    commit(committer, [good(1)])  # the dataset's columns are known: no walk unless needed
    outcome = commit(committer, [good(2), row(3, b'{"n": 3, "k\\ud800": 1}'), good(4)])
    assert (outcome.rows, outcome.quarantined) == (2, 1) and list(quarantined(tmp_path)) == ["m3"]
    assert all(not c.startswith("k") for c in written(tmp_path).columns)


def test_data_that_is_not_utf8_is_quarantined_alone(tmp_path: Path) -> None:
    rows = [good(i) for i in range(10)] + [row(10, {"_id": "bad"}, data=b'{"k": "\xff"}')]
    outcome = commit(Committer(tmp_path), rows)
    assert (outcome.rows, outcome.quarantined) == (10, 1) and list(quarantined(tmp_path)) == ["m10"]


def test_an_integer_past_128_bits_is_kept_as_json(tmp_path: Path) -> None:
    huge = 10**45
    outcome = commit(Committer(tmp_path), [good(1), row(2, b'{"_id": "big", "n": ' + str(huge).encode() + b"}")])
    assert (outcome.rows, outcome.quarantined) == (2, 0)
    assert overflow(tmp_path) == {"m2": {"n": huge}}


def nest(levels: int, leaf: Any, kind: str) -> Any:
    for _ in range(levels):
        leaf = [leaf] if kind == "array" else {"k": leaf}
    return leaf


def test_nesting_past_the_lake_limit_is_kept_as_json_and_every_reader_reads_the_files(tmp_path: Path) -> None:
    """Issue 12.5: arrays 50 deep passed the gateway's 64-level limit and made files pyarrow
    cannot open (Parquet spends two levels per list; pyarrow stops at 100)."""
    def levels(level: int, last: int) -> dict[str, Any]:  # an object at each level, saying which
        return {"v": level, **({"k": levels(level + 1, last)} if level < last else {})}

    deep_array = nest(50, 1, "array")
    committer = Committer(tmp_path)
    outcome = commit(committer, [good(1), row(2, {"_id": "deep", "a": deep_array, "o": levels(1, 40)})])
    assert (outcome.rows, outcome.quarantined) == (2, 0)
    kept = overflow(tmp_path)["m2"]
    assert kept["a"] == deep_array  # an array goes whole
    # An object is cut where it passes the limit: its first MAX_DEPTH levels are columns.
    moved, stored = kept["o"], written(tmp_path).filter(pl.col("_id") == "deep")["o"].to_list()[0]
    for _ in range(MAX_DEPTH - 1):
        moved, stored = moved["k"], stored["k"]
    assert stored == {"v": MAX_DEPTH} and moved == {"k": levels(MAX_DEPTH + 1, 40)}
    commit(committer, [good(3), row(4, {"_id": "ok", "a2": nest(MAX_DEPTH, 1, "array")})])  # at the limit: columns
    assert "m4" not in overflow(tmp_path)
    assert every_engine_reads(tmp_path) == 4


def test_thousands_of_keys_do_not_widen_every_later_file(tmp_path: Path) -> None:
    """Issue 12.5: one event with 10,000 distinct keys added 10,000 columns to every later
    file. Past MAX_FIELDS, new fields stay in the row's overflow."""
    wide = {f"k{i}": i for i in range(10_000)}
    committer = Committer(tmp_path)
    outcome = commit(committer, [good(1), row(2, {"_id": "wide", "_tenant": wide})])
    assert (outcome.rows, outcome.quarantined) == (2, 0)
    frame = written(tmp_path)
    tenant = frame.schema["_tenant"]
    assert isinstance(tenant, pl.Struct) and len(tenant.fields) < MAX_FIELDS
    stored = frame.filter(pl.col("_id") == "wide")["_tenant"].to_list()[0]
    moved = overflow(tmp_path)["m2"]["_tenant"]
    assert {**stored, **moved} == wide and not stored.keys() & moved.keys()  # every key, once
    commit(committer, [good(3), row(4, {"_id": "more", "other": 1})])
    newest = max(root(tmp_path).rglob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    assert len(pq.read_schema(newest).names) < 30  # "other" is past the budget too: no new column
    assert overflow(tmp_path)["m4"] == {"other": 1}
    assert every_engine_reads(tmp_path) == 4


def test_fields_named_like_partitions_read_back_as_data(tmp_path: Path) -> None:
    """Issue 12.6: a top-level `date` or `hour` read back as the partition value. The
    partition keys are `inlet_date`/`inlet_hour`; a field of that name is kept in overflow."""
    commit(Committer(tmp_path), [
        row(1, {"_id": "a", "date": "1999-01-01", "hour": 7}),
        row(2, {"_id": "b", "inlet_date": "forged", "inlet_hour": 3}),
    ])
    polars = pl.scan_parquet(root(tmp_path), hive_partitioning=True).collect().sort("_id")
    assert polars["date"].to_list() == ["1999-01-01", None] and polars["hour"].to_list() == [7, None]
    assert [str(d) for d in polars["inlet_date"]] == ["2023-11-14"] * 2 and polars["inlet_hour"].to_list() == [22, 22]
    duck = _sql(f"SELECT _id, date, hour, inlet_date, inlet_hour FROM read_parquet("
                      f"'{root(tmp_path)}/*/*/*.parquet', hive_partitioning=true) ORDER BY _id").fetchall()
    assert [(r[0], r[1], r[2], str(r[3]), r[4]) for r in duck] == [
        ("a", "1999-01-01", 7, "2023-11-14", 22), ("b", None, None, "2023-11-14", 22)]
    assert overflow(tmp_path) == {"m2": {"inlet_date": "forged", "inlet_hour": 3}}


def test_quarantine_is_written_once_when_a_message_is_redelivered(tmp_path: Path) -> None:
    """Issue 12.8: a redelivery (a crash or NATS restart between the quarantine file's rename
    and the ack) wrote the row to quarantine again; Parquet was deduplicated, quarantine not."""
    bad = row(2, b'{"_id": "bad", "name": "\xff"}')
    assert commit(Committer(tmp_path), [good(1), bad]).quarantined == 1
    again = commit(Committer(tmp_path), [good(1), bad, good(3)])  # a restarted worker gets them again
    assert (again.rows, again.quarantined, again.duplicates) == (1, 0, 2)
    lines = [line for f in (tmp_path / QUARANTINE).rglob("*.jsonl") for line in f.read_bytes().splitlines()]
    assert len(lines) == 1
    committer = Committer(tmp_path)
    assert commit(committer, [row(4, b"[1]")]).quarantined == 1
    assert commit(committer, [row(4, b"[1]")]).duplicates == 1  # the same worker, its own file


def test_a_dataset_already_past_the_field_budget_is_not_walked_row_by_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files an older inlet wrote may hold more fields than the budget: batches that add no
    field stay on the fast path (parsed once, in Rust); one that adds a field keeps it as JSON."""
    import worker.lake.conform as conform

    directory = partition_dir(tmp_path, "prod", "events", OLD)
    wide = pl.DataFrame({f"k{i}": [i] for i in range(MAX_FIELDS + 10)}).with_columns(
        pl.lit("m0").alias("_inlet_message_id"), pl.lit(0, dtype=pl.UInt64).alias("_inlet_stream_seq"))
    Writer(tmp_path).write(wide, directory)
    walked: list[int] = []
    real_fit = conform.fit

    def fit(rows: list[Row], known: Any) -> conform.Fitted:
        walked.append(len(rows))
        return real_fit(rows, known)

    monkeypatch.setattr(conform, "fit", fit)
    committer = Committer(tmp_path)
    assert commit(committer, [row(1, {"k1": 5, "k2": 6}), row(2, {"k3": 7})]).rows == 2
    assert walked == []
    outcome = commit(committer, [row(3, {"k1": 1}), row(4, {"k1": 2, "new": 3})])
    assert (outcome.rows, outcome.overflowed) == (2, 1) and walked == [2]
    assert overflow(tmp_path) == {"m4": {"new": 3}}


def test_a_too_deep_column_in_old_files_is_not_carried_into_new_ones(tmp_path: Path) -> None:
    """Files an older inlet wrote may hold a list nested 50 deep (pyarrow cannot open them).
    Every file carries the dataset's schema, so new files would inherit it: they must not."""
    directory = partition_dir(tmp_path, "prod", "events", OLD)
    old = pl.DataFrame({"_id": ["old"], "deep": [nest(50, 1, "array")], "o": [{"a": 1, "deep": nest(40, 1, "array")}],
                        "_inlet_message_id": ["m0"], "_inlet_stream_seq": pl.Series([0], dtype=pl.UInt64)})
    Writer(tmp_path).write(old, directory)
    outcome = commit(Committer(tmp_path), [good(1), row(2, {"_id": "x", "deep": nest(50, 2, "array"), "o": {"a": 2}})])
    assert (outcome.rows, outcome.quarantined) == (2, 0)
    newest = max(root(tmp_path).rglob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    table = pq.read_table(newest)  # pyarrow opens it
    assert "deep" not in table.column_names and table.schema.field("o").type == pa.struct([("a", pa.int64())])
    assert json.loads(table.column("_inlet_overflow").to_pylist()[1]) == {"deep": nest(50, 2, "array")}
