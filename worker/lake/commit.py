"""Committing one flush: each buffered partition becomes a durable file (or a quarantine file).

Runs in a worker thread (`asyncio.to_thread`), one flush at a time, so the event loop keeps
fetching while Polars parses and Parquet compresses. Per partition, in order:

1. drop rows already written: a message twice in the buffer, and messages found in the
   partition's files (redelivered after a crash between rename and ack: `worker.lake.dedupe`);
2. conform the rest to the dataset's schema (`worker.lake.conform`); rows that conflict go
   to quarantine with the reason;
3. write the Parquet file (temp, fsync, rename, fsync directory: `worker.lake.writer`).

A partition either commits (every row is in a file, a quarantine file, or was there already)
or fails as a whole, and its messages are retried: a full disk, permissions, a file in the
partition that cannot be read. An error that comes from the rows themselves never retries
forever: they are quarantined.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from inlet.telemetry import LAKE_COMMITTED
from worker.lake.conform import conform
from worker.lake.dedupe import Written
from worker.lake.frames import Row, table
from worker.lake.quarantine import quarantine
from worker.lake.schema import DatasetSchema
from worker.lake.writer import Writer

log = logging.getLogger("inlet.worker.lake")

Partition = tuple[str, str, Path]  # sandbox, dataset, hour directory


@dataclass(slots=True)
class Outcome:
    files: list[Path] = field(default_factory=list)
    rows: int = 0  # rows written to Parquet
    quarantined: int = 0
    duplicates: int = 0
    failed: list[Partition] = field(default_factory=list)


class Committer:
    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self.writer = Writer(lake)
        self.written = Written()
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
        there = self.written.already(directory, list(unique.values()))
        fresh = [r for r in unique.values() if r.message_id not in there]
        outcome.duplicates += len(rows) - len(fresh)
        if not fresh:
            return
        schema = self._schema(sandbox, dataset)
        schema.refresh(directory)
        try:
            conformed = conform(fresh, schema)
            file = table(conformed.xdm, conformed.rows) if conformed.rows else None
        except Exception as exc:  # the data itself: keep the rows, as sent, with the reason
            self._quarantine(dataset, [(r, f"cannot be stored as columns: {exc!r}") for r in fresh], outcome)
            return
        if conformed.rejected:
            self._quarantine(dataset, conformed.rejected, outcome)
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
        return schema

    def _quarantine(self, dataset: str, rows: list[tuple[Row, str]], outcome: Outcome) -> None:
        path = quarantine(self.lake, self.writer, rows)
        outcome.files.append(path)
        outcome.quarantined += len(rows)
        log.warning("Quarantined %d rows of %s in %s: %s", len(rows), dataset, path, rows[0][1])


def _io_error(exc: Exception) -> bool:
    text = str(exc)
    return "os error" in text or "IO error" in text
