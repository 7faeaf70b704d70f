"""Quarantine: rows the lake cannot write as columns are kept, with the reason, never dropped.

A row whose XDM is not a JSON object at all (invalid UTF-8, a number no double holds, a lone
surrogate, an array: `worker.lake.conform`), or a row Polars cannot turn into Parquet even
alone, is written as NDJSON, one line per row with the reason, its lineage and its original
XDM (base64 when its bytes are not UTF-8), under
`<lake>/_quarantine/<sandbox>/<dataset>/inlet_date=…/inlet_hour=…/part-<writer>-<seq>.jsonl`, with the same
temp-fsync-rename discipline as Parquet files; then its messages are acknowledged. An operator
can fix and re-ingest them; `inlet lake ls` counts them.

A row is quarantined once, like a row is written once: a message redelivered after its
quarantine file was renamed into place but before its ack (a crash, a NATS restart) is found
in the partition's quarantine files by stream sequence and message id (`Quarantined`), and
acknowledged without a second line.
"""

from __future__ import annotations

import base64
import time
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
    xdm: msgspec.Raw | None
    data: msgspec.Raw | None = None
    # The document (or data) as sent, when its bytes are not UTF-8 and so cannot sit in a
    # JSON line: base64 (standard alphabet), in place of `xdm` (or `data`).
    xdm_base64: str | None = None
    data_base64: str | None = None


_encode = msgspec.json.Encoder().encode


def _line(row: Row, reason: str) -> bytes:
    # Row XDM is JSON on one line (`frames.one_line`), so each row stays one line here.
    xdm, xdm_base64 = _raw(row.xdm)
    data, data_base64 = _raw(row.data)
    return _encode(QuarantinedRow(reason, row.message_id, row.org, row.sandbox, row.dataset, row.source,
                                  row.kind, row.received_ms, row.stream_seq, xdm, data,
                                  xdm_base64, data_base64)) + b"\n"


def _raw(value: bytes | None) -> tuple[msgspec.Raw | None, str | None]:
    if value is None:
        return None, None
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return None, base64.b64encode(value).decode()
    return msgspec.Raw(value), None


def quarantine(lake: Path, writer: Writer, rows: list[tuple[Row, str]]) -> Path:
    """Durably write (row, reason) pairs of one partition as a quarantine file."""
    first = rows[0][0]
    directory = partition_dir(lake / QUARANTINE, first.sandbox, first.dataset, first.received_ms)
    body = b"".join(_line(row, reason) for row, reason in rows)

    def write(temp: Path) -> None:
        temp.write_bytes(body)

    return writer.commit(directory, writer.name(".jsonl"), write)


class _Key(msgspec.Struct):
    message_id: str
    stream_seq: int


_decode_key = msgspec.json.Decoder(_Key).decode
FORGET_AFTER = 2 * 3600.0  # seconds a partition's keys are kept after its last lookup


class Quarantined:
    """The (stream sequence, message id) of every row in the quarantine partitions this worker
    looks into; each file is read once (files never change), this worker's own never."""

    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self.keys: dict[Path, dict[str, set[tuple[int, str]]]] = {}  # directory → file name → keys
        self.touched: dict[Path, float] = {}

    def directory(self, partition: Path) -> Path:
        """The quarantine directory of a Parquet partition directory."""
        return self.lake / QUARANTINE / partition.relative_to(self.lake)

    def already(self, partition: Path, rows: list[Row]) -> set[str]:
        """Message ids of `rows` (one partition's) already in its quarantine files."""
        directory = self.directory(partition)
        self._forget_idle()
        if not rows or not directory.is_dir():
            return set()
        self.touched[directory] = time.monotonic()
        files = self.keys.setdefault(directory, {})
        wanted = {(r.stream_seq, r.message_id) for r in rows}
        found: set[str] = set()
        for path in directory.glob("part-*.jsonl"):
            keys = files.get(path.name)
            if keys is None:
                keys = files[path.name] = _read_keys(path)
            found.update(mid for _, mid in wanted & keys)
        return found

    def wrote(self, path: Path, rows: list[tuple[Row, str]]) -> None:
        self.touched[path.parent] = time.monotonic()
        self.keys.setdefault(path.parent, {})[path.name] = {(r.stream_seq, r.message_id) for r, _ in rows}

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - FORGET_AFTER
        for directory in [d for d, t in self.touched.items() if t < cutoff]:
            self.keys.pop(directory, None)
            self.touched.pop(directory, None)


def _read_keys(path: Path) -> set[tuple[int, str]]:
    keys = set()
    for line in path.read_bytes().splitlines():
        if line.strip():
            key = _decode_key(line)
            keys.add((key.stream_seq, key.message_id))
    return keys
