"""The lake worker's handler: buffer rows per partition, flush on size, age or shutdown, ack.

Each fetched message is decoded once. Events and records become rows, buffered by
(sandbox, dataset, hour of receive time); commands (profile deletes, unlinks) are acknowledged
at once, because the lake keeps its data, as in AEP; an undecodable message is dead-lettered.

Everything buffered is written (`worker.lake.commit`, off the event loop) when the buffer
holds `max_rows` rows or `max_bytes` of XDM, when its oldest row has waited `roll_interval`
(checked on every batch and on idle ticks), and on shutdown. A message is returned for
acknowledgement only once its file is durably in place; the messages of a partition that
could not be written are nak'd, to come back after a delay. The age counts from when the
worker buffered a row, not from its receive time, so a backlog replay writes full files
instead of one file per fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from inlet import messages
from inlet.config import Lake
from inlet.messages import Event, Record
from inlet.outcomes import Reason
from inlet.telemetry import BATCH_MESSAGES, BATCH_SECONDS, LAKE_FILES, LAKE_ROWS
from worker.dead_letter import dead_letter, replay_for_another
from worker.lake.commit import Committer, Partition
from worker.lake import rolls
from worker.lake.frames import Row, one_line
from worker.lake.schema import Schema
from worker.lake.writer import partition_dir

log = logging.getLogger("inlet.worker.lake")

HOUR_MS = 3_600_000
Buffered = tuple[str, str, int]  # sandbox, dataset, hours since the epoch (UTC)


class LakeHandler:
    def __init__(
        self,
        js: JetStreamContext,
        lake: Path,
        config: Lake,
        consumer: str = "lake",
        clock: Callable[[], float] = time.monotonic,
        declared: Callable[[str, str], Schema] | None = None,
    ) -> None:
        self.js = js
        self.lake = lake
        self.config = config
        self.consumer = consumer
        self.clock = clock
        self.committer = Committer(lake, declared)  # declared: docs/schemas.md, typed lake
        # Keyed by plain values: a `Path` per message would cost more than the rest of `apply`.
        self.rows: dict[Buffered, list[Row]] = defaultdict(list)
        self.msgs: dict[Buffered, list[Msg]] = defaultdict(list)
        self.buffered = 0
        self.buffered_bytes = 0
        self.oldest: float | None = None
        self.announced: set[str] = set()  # datasets whose next roll is recorded (`rolls`)

    async def apply(self, msgs: list[Msg]) -> list[Msg]:
        ready: list[Msg] = []
        for msg in msgs:
            if replay_for_another(msg, self.consumer):
                ready.append(msg)  # a dead letter of another consumer, redriven: the lake has it
                continue
            try:
                message = messages.decode(msg.data)
            except msgspec.DecodeError as exc:
                await self._dead_letter(msg, str(exc))
                continue
            if not isinstance(message, (Event, Record)) or message.batch:
                # A command: nothing for the lake to keep. A batch's row: the batch is in the
                # lake already, as one file (worker.batches.load).
                ready.append(msg)
                continue
            row = self._row(message, msg)
            key = (row.sandbox, row.dataset, row.received_ms // HOUR_MS)
            self.rows[key].append(row)
            self.msgs[key].append(msg)
            self.buffered += 1
            self.buffered_bytes += len(row.xdm)
            if self.oldest is None:
                self.oldest = self.clock()
        if self._full() or self._aged():
            ready.extend(await self.flush())
        else:
            await self._announce()
        return ready

    async def tick(self) -> list[Msg]:
        return await self.flush() if self._aged() else []

    async def close(self) -> list[Msg]:
        return await self.flush()

    def _full(self) -> bool:
        return self.buffered >= self.config.max_rows or self.buffered_bytes >= self.config.max_bytes

    def _aged(self) -> bool:
        return self.oldest is not None and self.clock() - self.oldest >= self.config.roll_interval

    @staticmethod
    def _row(message: Event | Record, msg: Msg) -> Row:
        data = message.data if isinstance(message, Event) and message.has_data else None
        return Row(
            xdm=one_line(bytes(message.xdm)),
            data=one_line(bytes(data)) if data is not None else None,
            org=message.org,
            sandbox=message.sandbox,
            dataset=message.dataset,
            source=message.source,
            kind=messages.kind_of(message),
            message_id=message.message_id,
            received_ms=message.received_ms,
            stream_seq=msg.metadata.sequence.stream,
        )

    async def _announce(self) -> None:
        """Record when the next roll is due, once per dataset that joins the buffer, so a
        query of a dataset without files can say when it will have one (`worker.lake.rolls`)."""
        datasets = {f"{sandbox}/{dataset}" for sandbox, dataset, _ in self.rows}
        if self.oldest is None or datasets <= self.announced:
            return
        self.announced = datasets
        due = time.time() + self.config.roll_interval - (self.clock() - self.oldest)
        try:
            await asyncio.to_thread(rolls.record, self.lake, self.committer.writer.writer_id, due, sorted(datasets))
        except OSError as exc:  # a hint for `inlet lake query`, nothing more
            log.warning("Could not record the next roll (%s).", exc)

    async def flush(self) -> list[Msg]:
        """Write every buffered partition; returns the messages that may now be acked."""
        if not self.buffered:
            return []
        if self.announced:
            self.announced = set()
            try:
                await asyncio.to_thread(rolls.clear, self.lake, self.committer.writer.writer_id)
            except OSError as exc:
                log.warning("Could not clear the record of the next roll (%s).", exc)
        rows, msgs = self.rows, self.msgs
        self.rows, self.msgs = defaultdict(list), defaultdict(list)
        self.buffered, self.buffered_bytes, self.oldest = 0, 0, None
        partitions: dict[Partition, Buffered] = {
            (sandbox, dataset, partition_dir(self.lake, sandbox, dataset, hour * HOUR_MS)): (sandbox, dataset, hour)
            for sandbox, dataset, hour in rows
        }
        with BATCH_SECONDS.labels(self.consumer).time():
            outcome = await asyncio.to_thread(self.committer.commit, {p: rows[b] for p, b in partitions.items()})
        for partition in outcome.failed:
            for msg in msgs.pop(partitions[partition]):
                await self._retry(msg)
        done = [msg for part in msgs.values() for msg in part]
        LAKE_FILES.inc(len(outcome.files))
        LAKE_ROWS.inc(outcome.rows)
        BATCH_MESSAGES.labels(self.consumer, "applied").inc(len(done))
        log.info(
            "Committed %d rows in %d files (%d with overflow, %d quarantined, %d already written, %d partitions to retry).",
            outcome.rows, len(outcome.files), outcome.overflowed, outcome.quarantined, outcome.duplicates,
            len(outcome.failed),
        )
        return done

    async def _retry(self, msg: Msg) -> None:
        try:
            await msg.nak(delay=self.config.roll_interval)
        except Exception as exc:  # unacknowledged all the same: redelivered after ack_wait
            log.warning("Nak failed (%s); the message will be redelivered after ack_wait.", exc)

    async def _dead_letter(self, msg: Msg, detail: str) -> None:
        try:
            await dead_letter(self.js, msg, self.consumer, Reason.undecodable, detail)
            BATCH_MESSAGES.labels(self.consumer, "dead_lettered").inc()
        except Exception as exc:  # left unacknowledged: it comes back, and is tried again
            log.warning("Could not dead-letter message %s (%s); it will be redelivered.",
                        msg.metadata.sequence.stream, exc)
