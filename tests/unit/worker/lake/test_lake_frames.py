"""Rows → frames: nested XDM stays nested, lineage columns are flat and typed."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from worker.lake.conform import conform
from worker.lake.frames import Row, one_line, table
from worker.lake.schema import DatasetSchema

OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def row(i: int, xdm: dict[str, Any] | bytes, data: bytes | None = None) -> Row:
    raw = xdm if isinstance(xdm, bytes) else json.dumps(xdm).encode()
    return Row(xdm=one_line(raw), data=data, org="ORG@AdobeOrg", sandbox="prod", dataset="events", source="web",
               kind="event", message_id=f"m{i}", received_ms=OLD + i, stream_seq=100 + i)


def build(rows: list[Row], tmp_path: Path) -> pl.DataFrame:
    conformed = conform(rows, DatasetSchema(tmp_path / "prod" / "events"))
    assert not conformed.rejected
    return table(conformed.xdm, conformed.rows)


def test_nested_xdm_stays_structs_and_lists(tmp_path: Path) -> None:
    df = build([
        row(1, {"_id": "a", "commerce": {"order": {"priceTotal": 1.5, "currencyCode": "EUR"}},
                "productListItems": [{"SKU": "x", "quantity": 2}], "identityMap": {"ECID": [{"id": "1"}]}}),
        row(2, {"_id": "b", "web": {"webPageDetails": {"URL": "https://shop.example/"}}}),
    ], tmp_path)
    assert df.schema["commerce"] == pl.Struct({"order": pl.Struct({"priceTotal": pl.Float64, "currencyCode": pl.String})})
    assert df.schema["productListItems"] == pl.List(pl.Struct({"SKU": pl.String, "quantity": pl.Int64}))
    assert df.schema["identityMap"] == pl.Struct({"ECID": pl.List(pl.Struct({"id": pl.String}))})
    assert df["commerce"].struct.field("order").struct.field("priceTotal").to_list() == [1.5, None]
    assert df["productListItems"].to_list() == [[{"SKU": "x", "quantity": 2}], None]


def test_lineage_columns_are_flat_and_typed(tmp_path: Path) -> None:
    df = build([row(1, {"_id": "a"}, data=b'{"free":{"form":1}}'), row(2, {"_id": "b"})], tmp_path)
    assert {name: df.schema[name] for name in df.columns if name.startswith("_inlet_")} == {
        "_inlet_received": pl.Datetime("ms", "UTC"),
        "_inlet_org": pl.String,
        "_inlet_sandbox": pl.String,
        "_inlet_dataset": pl.String,
        "_inlet_source": pl.String,
        "_inlet_kind": pl.String,
        "_inlet_message_id": pl.String,
        "_inlet_stream_seq": pl.UInt64,
        "_inlet_data": pl.String,
        "_inlet_overflow": pl.String,
    }
    first = df.row(0, named=True)
    assert first["_inlet_received"] == datetime(2023, 11, 14, 22, 13, 20, 1000, tzinfo=timezone.utc)
    assert (first["_inlet_org"], first["_inlet_sandbox"], first["_inlet_dataset"]) == ("ORG@AdobeOrg", "prod", "events")
    assert (first["_inlet_source"], first["_inlet_kind"], first["_inlet_message_id"]) == ("web", "event", "m1")
    assert first["_inlet_stream_seq"] == 101
    assert json.loads(first["_inlet_data"]) == {"free": {"form": 1}}
    assert df["_inlet_data"].to_list()[1] is None
    assert df.columns[0] == "_id"  # XDM first, lineage after


def test_pretty_printed_xdm_is_one_ndjson_line(tmp_path: Path) -> None:
    pretty = json.dumps({"_id": "p", "web": {"name": "line\nbreak"}}, indent=2).encode()
    assert b"\n" in pretty
    df = build([row(1, pretty), row(2, {"_id": "q"})], tmp_path)
    assert df["_id"].to_list() == ["p", "q"]
    assert df["web"].struct.field("name").to_list() == ["line\nbreak", None]


def test_objects_empty_in_every_row_are_left_out_until_they_have_fields(tmp_path: Path) -> None:
    df = build([row(1, {"_id": "a", "identityMap": {}, "items": [{}]})], tmp_path)
    assert df.columns[:1] == ["_id"] and "identityMap" not in df.columns and "items" not in df.columns
    df = build([row(1, {"_id": "a", "identityMap": {}}), row(2, {"_id": "b", "identityMap": {"x": [1]}})], tmp_path)
    assert df["identityMap"].to_list() == [{"x": None}, {"x": [1]}]


def test_documents_without_fields_still_get_their_lineage(tmp_path: Path) -> None:
    df = build([row(1, {}), row(2, {"e": {}})], tmp_path)
    assert df.height == 2 and df["_inlet_message_id"].to_list() == ["m1", "m2"]


def test_integers_past_64_bits_widen_to_float(tmp_path: Path) -> None:
    df = build([row(1, {"n": 12345678901234567890123})], tmp_path)
    assert df.schema["n"] == pl.Float64
