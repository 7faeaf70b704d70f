"""The pull-consumer loop every worker runs: fetch a batch → apply → commit → ack.

A worker hands the loop a `Handler`. The loop fetches up to `batch` messages, awaits
`handler.apply(msgs)` (which must make its writes durable before returning) and then acks
exactly the messages the handler reports as done. A fetch that times out is an idle tick, not
an error: handlers that flush on age (the lake) get `handler.tick()` then.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

log = logging.getLogger("inlet.consume")


class Handler(Protocol):
    async def apply(self, msgs: list[Msg]) -> list[Msg]:
        """Durably apply `msgs`; return those that may now be acked (maybe later ones too)."""
        ...

    async def tick(self) -> list[Msg]:
        """Called when a fetch came back empty; returns messages that may now be acked."""
        ...

    async def close(self) -> list[Msg]:
        """Flush on shutdown; returns messages that may now be acked."""
        ...


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer, or bring an existing one to this config (a create with
    the same durable name and an editable difference updates it on nats-server 2.10+)."""
    await js.add_consumer(stream, config)


def durable(
    name: str,
    ack_wait: float,
    max_ack_pending: int,
    filter_subjects: list[str] | None = None,
    max_deliver: int = -1,
) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
        max_deliver=max_deliver,
        filter_subjects=filter_subjects or None,
    )


async def run(
    js: JetStreamContext,
    stream: str,
    consumer: str,
    handler: Handler,
    batch: int,
    stop: asyncio.Event,
    idle_timeout: float = 1.0,
) -> None:
    """Consume until `stop` is set, then flush the handler and ack what it wrote."""
    sub = await js.pull_subscribe_bind(consumer, stream=stream)
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch, timeout=idle_timeout)
            except asyncio.TimeoutError:
                await _ack(await handler.tick())
                continue
            except Exception as exc:  # connection loss: keep trying, the server holds state
                if stop.is_set():
                    break
                log.warning("Fetch from %s failed (%s); retrying.", consumer, exc)
                await asyncio.sleep(0.5)
                continue
            await _ack(await handler.apply(msgs))
    finally:
        await _ack(await handler.close())
        await sub.unsubscribe()


async def _ack(msgs: list[Msg]) -> None:
    """Ack after the durable write. A failed ack only means a redelivery, which applies
    idempotently, so it is logged and not retried."""
    for msg in msgs:
        try:
            await msg.ack()
        except Exception as exc:
            log.warning("Ack failed (%s); the message will be redelivered.", exc)
            return
