"""The batch loader: lake workers take completed batches from `BATCHJOBS` and load them
(`worker.batches.load`; the whole design is in docs/batches.md).

It runs inside each lake worker, beside the streaming consumer: the lake is the loader's
first sink, and a batch needs no process of its own. One batch at a time per worker; the job
stays unacknowledged while it loads (`in_progress` keeps it), so a killed worker gives it back
after `batches.job_ack_wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from inlet.batches import files, jobs
from inlet.batches import state as batch_state
from inlet.config import Config
from inlet.schemas.registry import Registry
from worker.batches.load import Loader
from worker.lake.schema import Schema

log = logging.getLogger("inlet.worker.batches")


async def run(js: JetStreamContext, config: Config, lake: Path, stop: asyncio.Event,
              registry: Registry | None = None, declared: Callable[[str, str], Schema] | None = None) -> None:
    """Load batches until `stop`; if the loader itself fails (NATS gone at start-up), say so
    and start it again: completed batches wait in their stream meanwhile, nothing is lost."""
    while not stop.is_set():
        try:
            await _load_forever(js, config, lake, stop, registry, declared)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.error("The batch loader stopped; it restarts in 5 s (completed batches wait in %s).",
                      jobs.STREAM, exc_info=True)
            await asyncio.sleep(5)


async def _load_forever(js: JetStreamContext, config: Config, lake: Path, stop: asyncio.Event,
                        registry: Registry | None, declared: Callable[[str, str], Schema] | None) -> None:
    kv = await batch_state.open_bucket(js, config.nats.replicas)
    await files.ensure_stream(js, config.nats.replicas)
    await jobs.ensure_stream(js, config.nats.replicas)
    ack_wait = config.batches.job_ack_wait
    sub = await js.pull_subscribe(f"{jobs.PREFIX}.>", durable=jobs.CONSUMER, stream=jobs.STREAM,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait,
                                                        max_ack_pending=64))
    loader = Loader(js, kv, config, lake, registry, declared)
    try:
        await _take_jobs(sub, loader, ack_wait, stop)
    finally:
        # Gone before the connection drains: a pull subscription left to the drain is cut off
        # mid-fetch, and asyncio reports the drain's cancelled gather.
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _take_jobs(sub: JetStreamContext.PullSubscription, loader: Loader, ack_wait: float,
                     stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            msgs = await sub.fetch(1, timeout=1)
        except (NatsTimeout, asyncio.TimeoutError):
            continue
        for msg in msgs:
            batch_id = msg.data.decode()

            async def heartbeat(msg=msg) -> None:  # type: ignore[no-untyped-def]
                with contextlib.suppress(Exception):
                    await msg.in_progress()

            beat = asyncio.create_task(_beat(heartbeat, ack_wait / 4))
            try:
                await loader.load(batch_id, heartbeat)
            except Exception as exc:  # NATS or the disk: the job comes back and starts again
                log.warning("Batch %s could not be loaded now (%r); it will be retried.", batch_id, exc,
                            exc_info=True)
                with contextlib.suppress(Exception):
                    await msg.nak(delay=5)
                continue
            finally:
                beat.cancel()
            await msg.ack()


async def _beat(heartbeat: Callable[[], object], every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await heartbeat()  # type: ignore[misc]
