"""Connecting to NATS and declaring the JetStream streams every process relies on.

Each process declares the streams it needs on start-up (idempotently), so any process can be
the first one up, and a deployment needs no separate provisioning step.
"""

from __future__ import annotations

import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError

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
        # A cluster is a comma-separated list (any node will do; the others are learnt from it).
        [url.strip() for url in config.nats.url.split(",") if url.strip()],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        # A server that vanished without closing the socket (power loss, partition) is noticed
        # after about 3 pings instead of nats-py's default 2 x 120 s; a killed one at once.
        ping_interval=10,
        max_outstanding_pings=3,
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


class _JetStream(JetStreamContext):
    """JetStream with publish_async errors delivered to the caller's future.

    nats-py 2.16 builds the error of a negative PubAck with `APIError.from_error`, which raises
    instead of returning, so the error escapes into the subscription task and the future stays
    pending until the caller's timeout (nats-io/nats.py#985, fix pending in #994). A full
    stream (discard=new: "maximum bytes exceeded") would then cost every publish the whole
    publish timeout instead of an immediate refusal the gateway can spool or answer 503 to.
    """

    async def _handle_async_reply(self, msg: Msg) -> None:
        try:
            await super()._handle_async_reply(msg)
        except APIError as exc:
            # The token is what follows "<inbox prefix>.<22-char nuid>." in the reply subject,
            # as in the library's own handler.
            token = msg.subject[len(self._nc._inbox_prefix) + 22 + 2:]
            future = self._publish_async_futures.get(token)
            if future is not None and not future.done():
                future.set_exception(exc)


def jetstream(nc: Client, config: Config) -> JetStreamContext:
    return _JetStream(
        nc,
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
            # Bounded, and full means "refuse new" (the gateway spools, then answers 503),
            # never "delete the oldest", which JetStream would do whether or not a consumer
            # had acknowledged it. docs/operations.md: retention.
            discard=DiscardPolicy.NEW,
            max_bytes=config.nats.max_bytes or -1,
            max_age=config.nats.max_age or None,
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
