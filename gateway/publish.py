"""Publishing to JetStream: pipelined, deduplicated, and answered only after the ack (or the
spool's fsync).

All messages of one request are sent before any ack is awaited (`publish_async`), so a batch
of 1,000 costs one round trip, not 1,000. Each carries `Nats-Msg-Id`, so a client that retries
after a lost response is stored once. A message counts as accepted only when JetStream
acknowledged it, or when it is durably in the spool because JetStream could not take it
(`gateway.spool`); otherwise it is `Reason.unavailable` (503 + `Retry-After`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from gateway.spool import Spool, SpooledMessage
from inlet import messages, subjects
from inlet.config import Config
from inlet.messages import BusMessage
from inlet.outcomes import Reason, Rejected
from inlet.telemetry import EVENTS_ACCEPTED, PUBLISH_SECONDS

log = logging.getLogger("inlet.gateway.publish")

RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Accepted:
    """JetStream has the message (`seq` is its stream sequence), or the spool has it."""

    seq: int
    spooled: bool = False


class Publisher:
    def __init__(self, nc: Client, js: JetStreamContext, config: Config, spool: Spool | None = None) -> None:
        self.nc = nc
        self.js = js
        self.spool = spool
        self.partitions = config.nats.partitions
        self.stream = config.nats.stream
        self.timeout = config.nats.publish_timeout
        self.max_pending = config.nats.max_pending_publishes

    def subject(self, message: BusMessage) -> str:
        if isinstance(message, (messages.DeleteProfile, messages.UnlinkIdentity)):
            key = message.identity.key
        elif isinstance(message, messages.Record) and message.record_class == "account":
            key = "account:" + message.account_key  # accounts route by their key
        elif message.identities:
            key = message.identities[0].key
        else:
            key = message.message_id
        part = subjects.partition(key, self.partitions)
        return subjects.ingest(message.sandbox, messages.kind_of(message), part)

    async def publish(self, batch: list[BusMessage]) -> list[Accepted | Rejected]:
        """Publish all, await all acks; one outcome per message, in order."""
        prepared = [
            SpooledMessage(self.subject(m), m.message_id, messages.encode(m), int(time.time() * 1000)) for m in batch
        ]
        if self.spool is not None and (self.spool.active or not self.nc.is_connected):
            spooled = await self._spool(prepared)
            self._count(batch, spooled)
            return spooled
        if not self.nc.is_connected:
            raise Rejected(Reason.unavailable, "the event bus is unreachable", RETRY_AFTER_SECONDS)
        if self.js.publish_async_pending() + len(batch) > self.max_pending:
            raise Rejected(Reason.unavailable, "the gateway is overloaded", 1)
        with PUBLISH_SECONDS.time():
            outcomes = await self._send(prepared)
        failed = [i for i, o in enumerate(outcomes) if isinstance(o, Rejected)]
        if failed and self.spool is not None:
            spooled = await self._spool([prepared[i] for i in failed])
            for i, outcome in zip(failed, spooled):
                outcomes[i] = outcome
        self._count(batch, outcomes)
        return outcomes

    def _count(self, batch: list[BusMessage], outcomes: list[Accepted | Rejected]) -> None:
        for message, outcome in zip(batch, outcomes):
            if isinstance(outcome, Accepted):
                EVENTS_ACCEPTED.labels(messages.kind_of(message), str(outcome.spooled).lower()).inc()

    async def _send(self, prepared: list[SpooledMessage]) -> list[Accepted | Rejected]:
        futures: list[asyncio.Future[PubAck] | Rejected] = []
        for item in prepared:
            try:
                futures.append(
                    await self.js.publish_async(
                        item.subject,
                        item.payload,
                        wait_stall=self.timeout,
                        stream=self.stream,
                        headers={"Nats-Msg-Id": item.message_id},
                    )
                )
            except Exception as exc:
                futures.append(_unavailable(exc))
        return list(await asyncio.gather(*(self._settle(f) for f in futures)))

    async def _settle(self, future: asyncio.Future[PubAck] | Rejected) -> Accepted | Rejected:
        if isinstance(future, Rejected):
            return future
        try:
            ack = await asyncio.wait_for(future, self.timeout)
        except Exception as exc:
            return _unavailable(exc)
        return Accepted(ack.seq)

    async def _spool(self, prepared: list[SpooledMessage]) -> list[Accepted | Rejected]:
        assert self.spool is not None
        refusal = self.spool.refusal(sum(len(p.payload) for p in prepared))
        if refusal:
            log.warning("Refusing %d messages: %s.", len(prepared), refusal)
            return [Rejected(Reason.unavailable, refusal, RETRY_AFTER_SECONDS) for _ in prepared]
        await self.spool.append(prepared)
        return [Accepted(0, spooled=True) for _ in prepared]

    async def replay_run(self, run: list[SpooledMessage]) -> int:
        """Publish spooled messages in order; how many from the start were acknowledged."""
        if not self.nc.is_connected:
            return 0
        outcomes = await self._send(run)
        for count, outcome in enumerate(outcomes):
            if isinstance(outcome, Rejected):
                return count
        return len(outcomes)

    async def replay_forever(self, interval: float = 0.5) -> None:
        """While the app runs: whenever the bus is back and the spool holds anything, drain it."""
        assert self.spool is not None
        while True:
            if self.spool.active and self.nc.is_connected:
                try:
                    if await self.spool.replay(self.replay_run):
                        log.info("The spool is empty; publishing directly again.")
                except Exception:
                    log.exception("Spool replay failed; retrying.")
            await asyncio.sleep(interval)


def _unavailable(exc: BaseException) -> Rejected:
    log.warning("Publish not acknowledged by JetStream: %r", exc)
    return Rejected(
        Reason.unavailable, "the event bus did not acknowledge the message", RETRY_AFTER_SECONDS
    )
