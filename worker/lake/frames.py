"""Rows → Polars frames: nested XDM stays nested, flat lineage columns sit beside it.

A `Row` is what the lake keeps of one bus message: the sender's XDM bytes and where they came
from. The XDM of a batch is joined as NDJSON and parsed by Polars in Rust, so no row ever
becomes a Python dict on the way to Parquet; objects stay structs and arrays stay lists.
Which types the columns get is `worker.lake.conform`'s decision. The `_inlet_*` columns say where each row came from, for
lineage, deduplication and pruning; `_inlet_data` and `_inlet_overflow` hold JSON text (the
Edge event's free-form `data`, and the members of the XDM no column can hold).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import polars as pl


@dataclass(frozen=True, slots=True)
class Row:
    xdm: bytes
    data: bytes | None  # the free-form `data` of an Edge Network event (JSON), if any
    org: str
    sandbox: str
    dataset: str
    source: str  # streaming connection or datastream id
    kind: str  # "event" or "record"
    message_id: str
    received_ms: int
    stream_seq: int
    # The members of the XDM that no column can hold (a JSON object shaped like the document,
    # holding only them: `worker.lake.conform`); None when every member is a column.
    overflow: bytes | None = None


def one_line(raw: bytes) -> bytes:
    """JSON on one line: rows are joined as NDJSON, and a sender may have pretty-printed its
    XDM (JSON strings cannot hold a raw newline, so only whitespace between tokens goes)."""
    if b"\n" in raw or b"\r" in raw:
        return msgspec.json.format(raw, indent=-1)
    return raw


LINEAGE: dict[str, Any] = {
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


def _ndjson(rows: list[Row]) -> io.BytesIO:
    return io.BytesIO(b"\n".join(r.xdm for r in rows))


def infer(rows: list[Row]) -> pl.DataFrame | None:
    """The XDM of `rows` with the types Polars infers over all of them; None when Polars
    finds no one type for a field (an object in one row, a list in another)."""
    try:
        return pl.read_ndjson(_ndjson(rows), infer_schema_length=None)
    except pl.exceptions.PolarsError:
        return None


def parse(rows: list[Row], columns: Mapping[str, Any]) -> pl.DataFrame:
    """The XDM of `rows` as `columns`, by field name (strict: a value that does not fit raises;
    a field not in `columns` is not read)."""
    return pl.read_ndjson(_ndjson(rows), schema=dict(columns))


def lineage(rows: list[Row]) -> pl.DataFrame:
    """The flat lineage columns of `rows`, built from column lists (no per-row objects)."""
    return pl.DataFrame(
        {
            "_inlet_received": [r.received_ms for r in rows],
            "_inlet_org": [r.org for r in rows],
            "_inlet_sandbox": [r.sandbox for r in rows],
            "_inlet_dataset": [r.dataset for r in rows],
            "_inlet_source": [r.source for r in rows],
            "_inlet_kind": [r.kind for r in rows],
            "_inlet_message_id": [r.message_id for r in rows],
            "_inlet_stream_seq": [r.stream_seq for r in rows],
            "_inlet_data": [r.data.decode() if r.data is not None else None for r in rows],
            "_inlet_overflow": [r.overflow.decode() if r.overflow is not None else None for r in rows],
        },
        schema={**LINEAGE, "_inlet_received": pl.Int64},
    ).with_columns(pl.col("_inlet_received").cast(pl.Datetime("ms", "UTC")))


def table(xdm: pl.DataFrame | None, rows: list[Row]) -> pl.DataFrame:
    """The file's table: the XDM columns (None when every document was `{}`), then lineage."""
    if xdm is None or xdm.width == 0:
        return lineage(rows)
    return pl.concat([xdm, lineage(rows)], how="horizontal")
