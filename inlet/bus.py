"""Connecting to NATS and declaring the JetStream streams every process relies on.

Each process declares the streams it needs on start-up (idempotently), so any process can be
the first one up, and a deployment needs no separate provisioning step.
"""

from __future__ import annotations

import logging

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from inlet import subjects
from inlet.config import Config

log = logging.getLogger("inlet.bus")


async def connect(config: Config, name: str) -> Client:
    """A connection that reconnects forever: a NATS restart must not end a process."""
    if not config.nats.url:
        raise RuntimeError("nats.url is empty: set INLET_NATS_URL or run `inlet up`")

    nc = Client()

    async def on_disconnect() -> None:
        if not (nc.is_draining or nc.is_closed):
            log.warning("Disconnected from NATS; reconnecting.")

    async def on_reconnect() -> None:
        log.info("Reconnected to NATS.")

    async def on_error(exc: Exception) -> None:
        log.warning("NATS connection error: %s", exc)

    await nc.connect(
        config.nats.url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
        pending_size=64 * 1024 * 1024,
    )
    return nc


async def close(nc: Client) -> None:
    """Drain (let in-flight acks and publishes finish), or just close if the connection is
    down or reconnecting and so cannot drain."""
    try:
        await nc.drain()
    except Exception:
        await nc.close()


def jetstream(nc: Client, config: Config) -> JetStreamContext:
    return nc.jetstream(
        timeout=config.nats.publish_timeout,
        publish_async_max_pending=config.nats.max_pending_publishes,
    )


async def ensure_streams(js: JetStreamContext, config: Config) -> None:
    """Create or update `INGEST` and `DEADLETTER`; safe to call from every process."""
    await _ensure(
        js,
        StreamConfig(
            name=config.nats.stream,
            subjects=subjects.INGEST_SUBJECTS,
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            duplicate_window=config.nats.duplicate_window,
            num_replicas=config.nats.replicas,
        ),
    )
    await _ensure(
        js,
        StreamConfig(
            name=subjects.DEAD_LETTER_STREAM,
            subjects=subjects.DEAD_LETTER_SUBJECTS,
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            num_replicas=config.nats.replicas,
        ),
    )


async def _ensure(js: JetStreamContext, stream: StreamConfig) -> None:
    try:
        await js.add_stream(stream)
    except BadRequestError:
        # Exists with another config (for example an older duplicate window): converge.
        await js.update_stream(stream)
