"""Quarantine: rows the lake cannot write as columns are kept, with the reason, never dropped.

A row whose values conflict with its dataset's columns (`worker.lake.conform`), or a batch
Polars cannot turn into a Parquet file at all, is written as NDJSON, one line per row with the
reason, its lineage and its original XDM, under
`<lake>/_quarantine/<sandbox>/<dataset>/date=…/hour=…/part-<writer>-<seq>.jsonl`, with the same
temp-fsync-rename discipline as Parquet files; then its messages are acknowledged. An operator
can fix and re-ingest them; `inlet lake ls` counts them.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from worker.lake.frames import Row
from worker.lake.writer import Writer, partition_dir

QUARANTINE = "_quarantine"


class QuarantinedRow(msgspec.Struct):
    reason: str
    message_id: str
    org: str
    sandbox: str
    dataset: str
    source: str
    kind: str
    received_ms: int
    stream_seq: int
    xdm: msgspec.Raw
    data: msgspec.Raw | None = None


_encode = msgspec.json.Encoder().encode


def _line(row: Row, reason: str) -> bytes:
    # Row XDM is JSON on one line (`frames.one_line`), so each row stays one line here.
    data = msgspec.Raw(row.data) if row.data is not None else None
    return _encode(QuarantinedRow(reason, row.message_id, row.org, row.sandbox, row.dataset, row.source,
                                  row.kind, row.received_ms, row.stream_seq, msgspec.Raw(row.xdm), data)) + b"\n"


def quarantine(lake: Path, writer: Writer, rows: list[tuple[Row, str]]) -> Path:
    """Durably write (row, reason) pairs of one partition as a quarantine file."""
    first = rows[0][0]
    directory = partition_dir(lake / QUARANTINE, first.sandbox, first.dataset, first.received_ms)
    body = b"".join(_line(row, reason) for row, reason in rows)

    def write(temp: Path) -> None:
        temp.write_bytes(body)

    return writer.commit(directory, writer.name(".jsonl"), write)
