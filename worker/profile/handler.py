"""The profile worker's batch handler: decode → apply (one LMDB transaction) → ack.

The transaction runs in a thread so the event loop keeps answering lookups and heartbeats
while LMDB fsyncs. Messages that can never be applied (undecodable, or failing on their own
content) are dead-lettered with their reason and terminated; everything else is acked only
after the commit returned.

A failure of the store itself (`apply.TRANSIENT`: a full LMDB map, a full disk, an I/O error)
is not the messages' fault and would be a loss if dead-lettered. The batch is then held and
retried, in order, with a growing delay (0.5 s doubling to 30 s), while its messages are kept
from redelivery (`in_progress`); nothing behind it is fetched meanwhile, so the order of a
profile's messages is kept. That is logged at ERROR once (an operator may have to act: raise
`profile.map_size_bytes` and restart, or free disk space), counted in
`inlet_worker_batch_retries`, and shown by the `inlet_worker_stalled` gauge. Stopping the worker
leaves the batch unacknowledged: JetStream redelivers it to the restarted worker.

A batch that fails as a whole for any other reason (a message broke something outside its own
nested transaction) is applied again one message at a time, in order, so that only the message
at fault is dead-lettered and the worker never stops on it.
"""

from __future__ import annotations

import asyncio
import logging

import lmdb
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from inlet import messages, subjects
from inlet.messages import BusMessage
from inlet.outcomes import Reason
from inlet.telemetry import BATCH_MESSAGES, BATCH_RETRIES, BATCH_SECONDS, WORKER_STALLED
from worker.dead_letter import dead_letter, replay_for_another
from worker.profile.apply import TRANSIENT, Applier, Failure

log = logging.getLogger("inlet.worker.profile")

RETRY_FIRST = 0.5
RETRY_MAX = 30.0


class ProfileHandler:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        applier: Applier,
        consumer: str,
        writer: asyncio.Lock | None = None,
        stop: asyncio.Event | None = None,
        keepalive: float = 3.0,
    ) -> None:
        self.nc = nc
        self.js = js
        self.applier = applier
        self.consumer = consumer
        # Held around every write transaction: the backfill takes turns with batches.
        self.writer = writer or asyncio.Lock()
        # Set when the worker stops: a held batch is then given back to JetStream.
        self.stop = stop or asyncio.Event()
        # How often a held batch tells JetStream it is still being worked on (below ack_wait).
        self.keepalive = keepalive

    async def apply(self, msgs: list[Msg]) -> list[Msg]:
        batch: list[BusMessage | None] = []
        poison: list[tuple[Msg, Reason, str]] = []
        skipped: list[Msg] = []
        for msg in msgs:
            if replay_for_another(msg, self.consumer):
                batch.append(None)  # a replay for another consumer: ack it, apply nothing
                skipped.append(msg)
                continue
            try:
                batch.append(messages.decode(msg.data))
            except msgspec.DecodeError as exc:
                batch.append(None)
                poison.append((msg, Reason.undecodable, str(exc)))
        failures = await self._apply_isolating(msgs, batch)
        if failures is None:
            return []  # stopping while the store refused the batch: JetStream redelivers it
        failed = {f.index for f in failures}
        poison.extend((msgs[f.index], f.reason, f.detail) for f in failures)
        parked: list[Msg] = []
        for msg, reason, detail in poison:
            try:
                await dead_letter(self.js, msg, self.consumer, reason, detail)
            except Exception as exc:  # left unacknowledged: it comes back and is tried again
                log.warning("Could not dead-letter message %s (%s); it will be redelivered.",
                            msg.metadata.sequence.stream, exc)
            else:
                parked.append(msg)
        for sandbox, profile_id in self.applier.touched:
            await self.nc.publish(subjects.notify(sandbox, profile_id), b"")
        done = [m for i, m in enumerate(msgs) if batch[i] is not None and i not in failed]
        BATCH_MESSAGES.labels(self.consumer, "applied").inc(len(done))
        BATCH_MESSAGES.labels(self.consumer, "dead_lettered").inc(len(parked))
        return done + skipped

    async def _apply_isolating(self, msgs: list[Msg], batch: list[BusMessage | None]) -> list[Failure] | None:
        """Apply the batch; if it fails as a whole, but not for the store's sake (a message broke
        something outside its own nested transaction), apply its messages one at a time, in
        order, so that only the one that fails is dead-lettered. None if the worker stops."""
        try:
            return await self._apply_until_stored(msgs, batch)
        except Exception as exc:
            log.warning("A batch of %d messages failed as a whole (%r); applying them one at a time.", len(msgs), exc)
        failures: list[Failure] = []
        touched: set[tuple[str, str]] = set()
        for index, message in enumerate(batch):
            if message is None:
                continue
            try:
                alone = await self._apply_until_stored(msgs, [message])
            except Exception as exc:
                failures.append(Failure(index, Reason.apply_failed, repr(exc)))
                continue
            if alone is None:
                return None
            failures.extend(Failure(index, f.reason, f.detail) for f in alone)
            touched |= self.applier.touched
        self.applier.touched = touched
        return failures

    async def _apply_until_stored(self, msgs: list[Msg], batch: list[BusMessage | None]) -> list[Failure] | None:
        """Apply `batch`, retrying while the store fails, with `msgs` (all fetched, not yet
        acked) kept from redelivery meanwhile; None if the worker stops first."""
        delay = RETRY_FIRST
        stalled = False
        try:
            while True:
                try:
                    async with self.writer:
                        with BATCH_SECONDS.labels(self.consumer).time():
                            return await asyncio.to_thread(self.applier.apply_batch, batch)
                except TRANSIENT as exc:
                    BATCH_RETRIES.labels(self.consumer, type(exc).__name__).inc()
                    if not stalled:
                        stalled = True
                        WORKER_STALLED.labels(self.consumer).set(1)
                        log.error(
                            "The profile store cannot take a batch of %d messages (%r)%s. Nothing is lost: "
                            "the batch is held and retried, and the stream keeps everything behind it.",
                            sum(m is not None for m in batch), exc, _advice(exc),
                        )
                    else:
                        log.warning("Retrying the held batch in %.1f s (%r).", delay, exc)
                if await self._hold(msgs, delay):
                    return None
                delay = min(delay * 2, RETRY_MAX)
        finally:
            if stalled:
                WORKER_STALLED.labels(self.consumer).set(0)
                if not self.stop.is_set():
                    log.info("The profile store took the held batch; consuming again.")

    async def _hold(self, msgs: list[Msg], seconds: float) -> bool:
        """Wait `seconds`, keeping `msgs` from redelivery; True if the worker is stopping."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            for msg in msgs:
                try:
                    await msg.in_progress()
                except Exception:  # the bus is away: it redelivers after ack_wait, idempotently
                    break
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self.stop.is_set()
            try:
                await asyncio.wait_for(self.stop.wait(), min(remaining, self.keepalive))
                return True
            except asyncio.TimeoutError:
                continue

    async def tick(self) -> list[Msg]:
        return []

    async def close(self) -> list[Msg]:
        return []


def _advice(exc: BaseException) -> str:
    if isinstance(exc, lmdb.MapFullError):
        return "; the LMDB map is full: raise profile.map_size_bytes and restart this worker"
    if isinstance(exc, OSError):
        return "; check the disk of the profile store"
    if isinstance(exc, (lmdb.CorruptedError, lmdb.PanicError, lmdb.PageNotFoundError)):
        return "; restart this worker, and if that does not help, restore its store or rebuild it from the stream"
    return ""
