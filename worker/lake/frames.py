"""Rows → Polars frames: nested XDM stays nested, lineage columns sit beside it.

The XDM bytes of a batch are joined as NDJSON and parsed by Polars in Rust (`read_ndjson`),
so no row ever becomes a Python dict; structs and lists stay structs and lists. The flat
`_inlet_*` columns say where each row came from, for partition pruning and lineage.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import polars as pl


@dataclass(frozen=True, slots=True)
class Row:
    xdm: bytes
    data: bytes | None
    org: str
    sandbox: str
    dataset: str
    source: str
    kind: str
    message_id: str
    received_ms: int
    stream_seq: int


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
}


def _storable(dtype: Any) -> Any:
    """Parquet cannot hold a struct without fields (an object that is always `{}` in the
    batch); such a field is kept as its JSON text instead."""
    if isinstance(dtype, pl.Struct):
        if not dtype.fields:
            return pl.String
        return pl.Struct([pl.Field(f.name, _storable(f.dtype)) for f in dtype.fields])
    if isinstance(dtype, (pl.List, pl.Array)):
        return pl.List(_storable(dtype.inner))
    return dtype


def frame(rows: list[Row]) -> pl.DataFrame:
    """One frame for rows of one dataset (their XDM shares a schema, give or take fields)."""
    ndjson = b"\n".join(r.xdm for r in rows)
    xdm = pl.read_ndjson(io.BytesIO(ndjson), infer_schema_length=None)
    storable = {name: _storable(dtype) for name, dtype in xdm.schema.items()}
    if storable != dict(xdm.schema):
        xdm = pl.read_ndjson(io.BytesIO(ndjson), schema=storable)
    lineage = pl.DataFrame(
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
        },
        schema={**LINEAGE, "_inlet_received": pl.Int64},
    ).with_columns(pl.col("_inlet_received").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))
    if xdm.width == 0:  # every document was `{}`
        return lineage
    return pl.concat([xdm, lineage], how="horizontal")
