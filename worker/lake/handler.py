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
from worker.dead_letter import dead_letter
from worker.lake.commit import Committer, Partition
from worker.lake.frames import Row, one_line
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
    ) -> None:
        self.js = js
        self.lake = lake
        self.config = config
        self.consumer = consumer
        self.clock = clock
        self.committer = Committer(lake)
        # Keyed by plain values: a `Path` per message would cost more than the rest of `apply`.
        self.rows: dict[Buffered, list[Row]] = defaultdict(list)
        self.msgs: dict[Buffered, list[Msg]] = defaultdict(list)
        self.buffered = 0
        self.buffered_bytes = 0
        self.oldest: float | None = None

    async def apply(self, msgs: list[Msg]) -> list[Msg]:
        ready: list[Msg] = []
        for msg in msgs:
            try:
                message = messages.decode(msg.data)
            except msgspec.DecodeError as exc:
                await self._dead_letter(msg, str(exc))
                continue
            if not isinstance(message, (Event, Record)):
                ready.append(msg)  # a command: nothing for the lake to keep
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
        data = message.data if isinstance(message, Event) else None
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

    async def flush(self) -> list[Msg]:
        """Write every buffered partition; returns the messages that may now be acked."""
        if not self.buffered:
            return []
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
            "Committed %d rows in %d files (%d quarantined, %d already written, %d partitions to retry).",
            outcome.rows, len(outcome.files), outcome.quarantined, outcome.duplicates, len(outcome.failed),
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
