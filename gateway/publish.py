"""Publishing to JetStream: pipelined, deduplicated, and answered only after the ack.

All messages of one request are sent before any ack is awaited (`publish_async`), so a batch
of 1,000 costs one round trip, not 1,000. Each carries `Nats-Msg-Id`, so a client that retries
after a lost response is stored once. A message counts as accepted only when its future
resolves with a `PubAck`; anything else is `Reason.unavailable` for that message.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from inlet import messages, subjects
from inlet.config import Config
from inlet.messages import BusMessage
from inlet.outcomes import Reason, Rejected

log = logging.getLogger("inlet.gateway.publish")

RETRY_AFTER_SECONDS = 5


class Publisher:
    def __init__(self, nc: Client, js: JetStreamContext, config: Config) -> None:
        self.nc = nc
        self.js = js
        self.partitions = config.nats.partitions
        self.stream = config.nats.stream
        self.timeout = config.nats.publish_timeout
        self.max_pending = config.nats.max_pending_publishes

    def subject(self, message: BusMessage) -> str:
        if isinstance(message, (messages.DeleteProfile, messages.UnlinkIdentity)):
            key = message.identity.key
        elif message.identities:
            key = message.identities[0].key
        else:
            key = message.message_id
        part = subjects.partition(key, self.partitions)
        return subjects.ingest(message.sandbox, messages.kind_of(message), part)

    def check_available(self, count: int = 1) -> None:
        """Refuse early, before sending anything, when the bus cannot take more."""
        if not self.nc.is_connected:
            raise Rejected(Reason.unavailable, "the event bus is unreachable", RETRY_AFTER_SECONDS)
        if self.js.publish_async_pending() + count > self.max_pending:
            raise Rejected(Reason.unavailable, "the gateway is overloaded", 1)

    async def publish(self, batch: list[BusMessage]) -> list[PubAck | Rejected]:
        """Publish all, await all acks; one outcome per message, in order."""
        self.check_available(len(batch))
        futures: list[asyncio.Future[PubAck] | Rejected] = []
        for message in batch:
            try:
                futures.append(
                    await self.js.publish_async(
                        self.subject(message),
                        messages.encode(message),
                        wait_stall=self.timeout,
                        stream=self.stream,
                        headers={"Nats-Msg-Id": message.message_id},
                    )
                )
            except Exception as exc:
                futures.append(_unavailable(exc))
        outcomes = await asyncio.gather(*(self._settle(f) for f in futures))
        return list(outcomes)

    async def _settle(self, future: asyncio.Future[PubAck] | Rejected) -> PubAck | Rejected:
        if isinstance(future, Rejected):
            return future
        try:
            return await asyncio.wait_for(future, self.timeout)
        except Exception as exc:
            return _unavailable(exc)


def _unavailable(exc: BaseException) -> Rejected:
    log.warning("Publish not acknowledged by JetStream: %r", exc)
    return Rejected(
        Reason.unavailable, "the event bus did not acknowledge the message", RETRY_AFTER_SECONDS
    )
