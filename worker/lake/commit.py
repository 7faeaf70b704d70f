"""Committing one flush: each buffered partition becomes a durable file (or a quarantine file).

Runs in a worker thread (`asyncio.to_thread`), one flush at a time, so the event loop keeps
fetching while Polars parses and Parquet compresses. Per partition, in order:

1. drop rows already written: a message twice in the buffer, and messages found in the
   partition's files or its quarantine files (redelivered after a crash between rename and
   ack: `worker.lake.dedupe`, `worker.lake.quarantine`);
2. conform the rest to the dataset's schema (`worker.lake.conform`): members no column can
   hold move to the row's `_inlet_overflow`; rows that are not JSON objects go to quarantine
   with the reason;
3. write the Parquet file (temp, fsync, rename, fsync directory: `worker.lake.writer`).

A partition either commits (every row is in a file, a quarantine file, or was there already)
or fails as a whole, and its messages are retried: a full disk, permissions, a file in the
partition that cannot be read. An error that comes from the rows themselves never retries
forever, and never costs the other rows: if the batch still cannot become a table, it is
halved until the rows that cannot are found, and only they are quarantined.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from inlet.telemetry import LAKE_COMMITTED, LAKE_OVERFLOWED, LAKE_QUARANTINED
from worker.lake.conform import Conformed, conform
from worker.lake.dedupe import Written
from worker.lake.frames import Row, table
from worker.lake.quarantine import Quarantined, quarantine
from worker.lake.schema import DatasetSchema, Schema
from worker.lake.writer import Writer

log = logging.getLogger("inlet.worker.lake")

Partition = tuple[str, str, Path]  # sandbox, dataset, hour directory


@dataclass(slots=True)
class Outcome:
    files: list[Path] = field(default_factory=list)
    rows: int = 0  # rows written to Parquet
    quarantined: int = 0
    overflowed: int = 0  # rows written with members in `_inlet_overflow`
    duplicates: int = 0
    failed: list[Partition] = field(default_factory=list)


class Committer:
    def __init__(self, lake: Path, declared: Callable[[str, str], Schema] | None = None) -> None:
        self.lake = lake
        # The columns a dataset's XDM schema declares (docs/schemas.md: typed lake), if any.
        self.declared = declared
        self.writer = Writer(lake)
        self.written = Written()
        self.quarantined = Quarantined(lake)
        self.schemas: dict[tuple[str, str], DatasetSchema] = {}

    def commit(self, partitions: dict[Partition, list[Row]]) -> Outcome:
        outcome = Outcome()
        for key, rows in partitions.items():
            try:
                self._partition(key, rows, outcome)
            except Exception as exc:  # the disk, or an unreadable file in the partition: an operator's call
                outcome.failed.append(key)
                log.error("Could not write %d rows to %s (%s); they will be retried.", len(rows), key[2], exc,
                          exc_info=not isinstance(exc, OSError))
        return outcome

    def _partition(self, key: Partition, rows: list[Row], outcome: Outcome) -> None:
        sandbox, dataset, directory = key
        unique: dict[str, Row] = {}
        for row in rows:  # the first of each message id
            unique.setdefault(row.message_id, row)
        candidates = list(unique.values())
        there = self.written.already(directory, candidates) | self.quarantined.already(directory, candidates)
        fresh = [r for r in candidates if r.message_id not in there]
        outcome.duplicates += len(rows) - len(fresh)
        if not fresh:
            return
        schema = self._schema(sandbox, dataset)
        schema.refresh(directory)
        try:
            conformed, file = _build(fresh, schema)
        except Exception as exc:  # the data itself: find the rows that cause it, write the rest
            conformed, file = self._isolate(fresh, schema, exc)
        if conformed.rejected:
            self._quarantine(dataset, conformed.rejected, outcome)
        if conformed.overflowed:
            outcome.overflowed += conformed.overflowed
            LAKE_OVERFLOWED.labels(dataset).inc(conformed.overflowed)
            log.warning("%d rows of %s keep members no column can hold in _inlet_overflow: %s",
                        conformed.overflowed, dataset, conformed.first_overflow)
        if file is None:
            return
        try:
            path = self.writer.write(file, directory)
        except OSError:
            raise
        except Exception as exc:
            if _io_error(exc):  # Polars reports a full disk as a ComputeError
                raise OSError(str(exc)) from exc
            # Parquet cannot hold something Polars parsed: the data, not the disk.
            self._quarantine(dataset, [(r, f"cannot be written as Parquet: {exc!r}") for r in conformed.rows], outcome)
            return
        schema.learn(path, conformed.columns)
        self.written.wrote(path, conformed.rows)
        outcome.files.append(path)
        outcome.rows += len(conformed.rows)
        LAKE_COMMITTED.labels(dataset).set(time.time())

    def _schema(self, sandbox: str, dataset: str) -> DatasetSchema:
        schema = self.schemas.get((sandbox, dataset))
        if schema is None:
            schema = DatasetSchema(self.lake / sandbox / dataset)
            schema.load()  # kept only once loaded: a failed load is tried again next time
            self.schemas[(sandbox, dataset)] = schema
        declared = self.declared(sandbox, dataset) if self.declared is not None else None
        if declared:
            schema._merge(declared)  # the lake's own rule: new columns at the end, ints widen
        return schema

    def _isolate(self, rows: list[Row], schema: DatasetSchema, exc: Exception) -> tuple[Conformed, pl.DataFrame | None]:
        """A batch that cannot become a table: halve it until the rows that cannot are
        found, quarantine only them, and build the rest."""
        bad = _failing(rows, schema, exc)
        ids = {id(r) for r, _ in bad}
        good = [r for r in rows if id(r) not in ids]
        try:
            conformed, file = _build(good, schema) if good else (Conformed(None, [], [], schema.columns), None)
        except Exception as again:  # rows fine alone and in halves, not together: keep them all
            reason = f"cannot be stored as columns: {again!r}"
            return Conformed(None, [], bad + [(r, reason) for r in good], schema.columns), None
        conformed.rejected.extend(bad)
        return conformed, file

    def _quarantine(self, dataset: str, rows: list[tuple[Row, str]], outcome: Outcome) -> None:
        path = quarantine(self.lake, self.writer, rows)
        self.quarantined.wrote(path, rows)
        outcome.files.append(path)
        outcome.quarantined += len(rows)
        LAKE_QUARANTINED.labels(dataset).inc(len(rows))
        # Out of the dataset's tables until an operator re-ingests them: an operator's call.
        log.error("Quarantined %d rows of %s in %s (re-ingest them once fixed): %s",
                  len(rows), dataset, path, rows[0][1])


def _build(rows: list[Row], schema: DatasetSchema) -> tuple[Conformed, pl.DataFrame | None]:
    conformed = conform(rows, schema)
    return conformed, (table(conformed.xdm, conformed.rows) if conformed.rows else None)


def _failing(rows: list[Row], schema: DatasetSchema, exc: Exception) -> list[tuple[Row, str]]:
    """The rows of `rows` (which failed with `exc`) that cannot be built even alone."""
    if len(rows) == 1:
        return [(rows[0], f"cannot be stored as columns: {exc!r}")]
    out: list[tuple[Row, str]] = []
    half = len(rows) // 2
    for part in (rows[:half], rows[half:]):
        try:
            _build(part, schema)
        except Exception as inner:
            out.extend(_failing(part, schema, inner))
    return out


def _io_error(exc: Exception) -> bool:
    text = str(exc)
    return "os error" in text or "IO error" in text
