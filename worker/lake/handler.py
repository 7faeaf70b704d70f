"""The lake worker's handler: buffer rows per partition, write on size, age or shutdown, ack.

Rows are grouped by (sandbox, dataset, date, hour) of their receive time. Everything buffered
is written when the buffer holds `max_rows` rows, when its oldest row is `roll_interval` old
(checked on every batch and on idle ticks), and on shutdown. The messages of a file are
acknowledged only after the file is durably in place (`writer.Writer`). Commands (deletes,
unlinks) are acknowledged at once: the lake keeps its data, as in AEP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from inlet import messages
from inlet.config import Lake
from inlet.messages import Event, Record
from inlet.outcomes import Reason
from inlet.telemetry import BATCH_MESSAGES, BATCH_SECONDS, LAKE_COMMITTED, LAKE_FILES, LAKE_ROWS
from worker.dead_letter import dead_letter
from worker.lake.dedupe import Seen
from worker.lake.frames import Row, frame
from worker.lake.quarantine import quarantine
from worker.lake.schema import conflicts, established, misfits, widen
from worker.lake.writer import Writer, partition_dir

log = logging.getLogger("inlet.worker.lake")

Partition = tuple[str, str, Path]  # sandbox, dataset, directory


class LakeHandler:
    def __init__(self, js: JetStreamContext, lake: Path, config: Lake, consumer: str = "lake") -> None:
        self.js = js
        self.lake = lake
        self.config = config
        self.consumer = consumer
        self.writer = Writer(lake)
        self.seen = Seen()
        self.rows: dict[Partition, list[Row]] = defaultdict(list)
        self.pending: list[Msg] = []
        self.buffered = 0
        self.buffered_bytes = 0
        self.oldest: float | None = None
        self.schemas: dict[tuple[str, str], dict[str, Any]] = {}

    async def apply(self, msgs: list[Msg]) -> list[Msg]:
        ready: list[Msg] = []
        for msg in msgs:
            try:
                message = messages.decode(msg.data)
            except msgspec.DecodeError as exc:
                await dead_letter(self.js, msg, self.consumer, Reason.undecodable, str(exc))
                continue
            if not isinstance(message, (Event, Record)):
                ready.append(msg)
                continue
            row = Row(
                xdm=bytes(message.xdm),
                data=bytes(message.data) if isinstance(message, Event) and message.data is not None else None,
                org=message.org,
                sandbox=message.sandbox,
                dataset=message.dataset,
                source=message.source,
                kind=messages.kind_of(message),
                message_id=message.message_id,
                received_ms=message.received_ms,
                stream_seq=msg.metadata.sequence.stream,
            )
            key = (row.sandbox, row.dataset, partition_dir(self.lake, row.sandbox, row.dataset, row.received_ms))
            self.rows[key].append(row)
            self.pending.append(msg)
            self.buffered += 1
            self.buffered_bytes += len(row.xdm)
            self.oldest = self.oldest or time.monotonic()
        if self._full() or self._aged():
            ready.extend(await self.flush())
        return ready

    async def tick(self) -> list[Msg]:
        return await self.flush() if self._aged() else []

    async def close(self) -> list[Msg]:
        return await self.flush()

    def _full(self) -> bool:
        return self.buffered >= self.config.max_rows or self.buffered_bytes >= self.config.max_bytes

    def _aged(self) -> bool:
        return self.oldest is not None and time.monotonic() - self.oldest >= self.config.roll_interval

    async def flush(self) -> list[Msg]:
        """Write every buffered partition; returns the messages that may now be acked."""
        if not self.buffered:
            return []
        rows, pending = self.rows, self.pending
        self.rows, self.pending, self.buffered, self.oldest = defaultdict(list), [], 0, None
        self.buffered_bytes = 0
        with BATCH_SECONDS.labels(self.consumer).time():
            written, count = await asyncio.to_thread(self._write_all, rows)
        LAKE_FILES.inc(len(written))
        LAKE_ROWS.inc(count)
        BATCH_MESSAGES.labels(self.consumer, "applied").inc(len(pending))
        log.info("Committed %d rows in %d files.", count, len(written))
        return pending

    def _write_all(self, rows: dict[Partition, list[Row]]) -> tuple[list[Path], int]:
        written, count = [], 0
        self.seen.forget_idle()
        for (sandbox, dataset, directory), part in rows.items():
            known = self.seen.known(directory)
            fresh: dict[str, Row] = {}
            for row in part:  # also drops a duplicate inside the batch itself
                if row.message_id not in known:
                    fresh.setdefault(row.message_id, row)
            part = list(fresh.values())
            if not part:
                continue
            count += len(part)
            try:
                table, part, rejected = self._conforming(sandbox, dataset, part)
                if rejected:
                    written.append(self._quarantine(dataset, rejected))
                if table is not None:
                    path = self.writer.write(table, directory)
                    key = (sandbox, dataset)
                    self.schemas[key] = widen(self.schemas[key], dict(table.schema))
                    self.seen.written(directory, path, [r.message_id for r in part])
                    LAKE_COMMITTED.labels(dataset).set(time.time())
                    written.append(path)
            except Exception as exc:  # the rows are kept, as text, with the reason
                written.append(self._quarantine(dataset, [(r, repr(exc)) for r in part]))
        return written, count

    def _conforming(
        self, sandbox: str, dataset: str, part: list[Row]
    ) -> tuple[pl.DataFrame | None, list[Row], list[tuple[Row, str]]]:
        """The frame of the rows the dataset's columns can take, those rows, and the others
        with the reason they cannot join."""
        key = (sandbox, dataset)
        if key not in self.schemas:
            self.schemas[key] = established(self.lake / sandbox / dataset)
        table = frame(part)
        paths = conflicts(self.schemas[key], dict(table.schema)) if self.schemas[key] else []
        if not paths:
            return table, part, []
        keep, rejected = [], []
        for row in part:
            reason = misfits(row.xdm, paths)
            if reason:
                rejected.append((row, reason))
            else:
                keep.append(row)
        return (frame(keep) if keep else None), keep, rejected

    def _quarantine(self, dataset: str, rows: list[tuple[Row, str]]) -> Path:
        self.writer.seq += 1
        path = quarantine(self.lake, self.writer.writer_id, self.writer.seq, rows)
        log.warning("Quarantined %d rows of %s in %s: %s", len(rows), dataset, path, rows[0][1])
        return path
