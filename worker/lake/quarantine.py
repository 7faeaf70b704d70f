"""Quarantine: rows the lake cannot write as Parquet are kept, never dropped.

A batch whose XDM Polars cannot turn into a storable frame (or whose file cannot be written)
is written as NDJSON, one line per row with its lineage and the reason, under
`<lake>/_quarantine/<sandbox>/<dataset>/date=…/hour=…/`, with the same temp-fsync-rename
discipline as Parquet files; then its messages are acknowledged. An operator can fix and
re-ingest them; `inlet lake ls` counts them.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from worker.lake.frames import Row
from inlet.durable import fsync_path
from worker.lake.writer import partition_dir


class QuarantinedRow(msgspec.Struct):
    reason: str
    message_id: str
    dataset: str
    received_ms: int
    stream_seq: int
    xdm: msgspec.Raw


_encode = msgspec.json.Encoder().encode


def quarantine(lake: Path, writer_id: str, seq: int, rows: list[tuple[Row, str]]) -> Path:
    """Write (row, reason) pairs of one partition as a quarantine file."""
    first = rows[0][0]
    directory = partition_dir(lake / "_quarantine", first.sandbox, first.dataset, first.received_ms)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"part-{writer_id}-{seq:06d}.jsonl"
    temp = directory / f".{final.name}.tmp"
    with open(temp, "wb") as out:
        for row, reason in rows:
            out.write(_encode(QuarantinedRow(reason, row.message_id, row.dataset, row.received_ms,
                                             row.stream_seq, msgspec.Raw(row.xdm))) + b"\n")
    fsync_path(temp)
    os.replace(temp, final)
    fsync_path(directory)
    return final
