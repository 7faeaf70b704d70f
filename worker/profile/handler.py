"""The profile worker's batch handler: decode → apply (one LMDB transaction) → ack.

The transaction runs in a thread so the event loop keeps answering lookups and heartbeats
while LMDB fsyncs. Messages that cannot be decoded or applied are dead-lettered with their
reason and terminated; everything else is acked only after the commit returned.
"""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from inlet import messages, subjects
from inlet.messages import BusMessage
from inlet.outcomes import Reason
from inlet.telemetry import BATCH_MESSAGES, BATCH_SECONDS
from worker.dead_letter import dead_letter
from worker.profile.apply import Applier


class ProfileHandler:
    def __init__(
        self, nc: Client, js: JetStreamContext, applier: Applier, consumer: str, writer: asyncio.Lock | None = None
    ) -> None:
        self.nc = nc
        self.js = js
        self.applier = applier
        self.consumer = consumer
        # Held around every write transaction: the backfill takes turns with batches.
        self.writer = writer or asyncio.Lock()

    async def apply(self, msgs: list[Msg]) -> list[Msg]:
        batch: list[BusMessage | None] = []
        poison: list[tuple[Msg, Reason, str]] = []
        for msg in msgs:
            try:
                batch.append(messages.decode(msg.data))
            except msgspec.DecodeError as exc:
                batch.append(None)
                poison.append((msg, Reason.undecodable, str(exc)))
        async with self.writer:
            with BATCH_SECONDS.labels(self.consumer).time():
                failures = await asyncio.to_thread(self.applier.apply_batch, batch)
        failed = {f.index for f in failures}
        poison.extend((msgs[f.index], f.reason, f.detail) for f in failures)
        for msg, reason, detail in poison:
            await dead_letter(self.js, msg, self.consumer, reason, detail)
        for sandbox, profile_id in self.applier.touched:
            await self.nc.publish(subjects.notify(sandbox, profile_id), b"")
        done = [m for i, m in enumerate(msgs) if batch[i] is not None and i not in failed]
        BATCH_MESSAGES.labels(self.consumer, "applied").inc(len(done))
        BATCH_MESSAGES.labels(self.consumer, "dead_lettered").inc(len(poison))
        return done

    async def tick(self) -> list[Msg]:
        return []

    async def close(self) -> list[Msg]:
        return []
