"""The lake worker: consumes `INGEST` into a partitioned Parquet lake (see docs/lake.md).

The path of one event: the gateway published it to `inlet.<sandbox>.event.<partition>`; a lake
worker fetches it with a batch (`worker.consume`), the handler decodes it and buffers its XDM
bytes as a row of its (sandbox, dataset, hour) partition (`handler`); at the next flush the
rows of that partition are deduplicated, checked against the dataset's schema (`conform`) and
parsed by Polars straight from the bytes (`frames`), written as one zstd Parquet file (temp
name, fsync, rename, fsync directory: `writer`), and only then is the message acknowledged.

Lake workers share one durable consumer, `lake`, so several can run at once (queue
semantics); each writes its own files. Messages stay unacknowledged while their rows are
buffered, so the consumer's `ack_wait` is more than twice the roll interval and
`max_ack_pending` more than twice the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from inlet import bus, telemetry
from inlet.catalog import live as catalog_live
from inlet.config import Config
from inlet.schemas import lake_types
from inlet.schemas import registry as schema_registry
from worker import batches, consume
from worker.lake import rolls
from worker.lake.handler import LakeHandler
from worker.lake.writer import remove_temp_files

log = logging.getLogger("inlet.worker.lake")

CONSUMER = "lake"


def ack_wait(config: Config) -> float:
    """Seconds a fetched message may stay unacknowledged: a buffer lives one roll interval,
    and its write must fit in the rest."""
    return 2 * config.lake.roll_interval + 10


async def main(config: Config, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or until `stop` is set, when the caller passes one),
    then write what is buffered, acknowledge it, and return."""
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)
    try:
        await _run(config, stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _run(config: Config, stop: asyncio.Event) -> None:
    lake = config.data_path / "lake"
    lake.mkdir(parents=True, exist_ok=True)
    removed = remove_temp_files(lake, older_than=ack_wait(config))
    rolls.remove_stale(lake, older_than=ack_wait(config))
    if removed:
        log.info("Removed %d unfinished temporary files of an earlier run.", removed)
    nc = await bus.connect(config, name="inlet-lake")
    try:
        js = bus.jetstream(nc, config)
        await bus.ensure_streams(js, config)
        await consume.ensure_consumer(
            js,
            config.nats.stream,
            consume.durable(
                CONSUMER,
                ack_wait=ack_wait(config),
                max_ack_pending=2 * config.lake.max_rows + config.lake.batch,
            ),
        )
        # The datasets' XDM schemas, followed live: their declared column types (typed lake).
        registry = schema_registry.registry_for(config)
        schema_watch = await schema_registry.follow(await schema_registry.open_bucket(js, config.nats.replicas),
                                                    registry)
        _, datasets = await catalog_live.follow(js, config)  # datasets made at runtime, and their schemas
        handler = LakeHandler(js, lake, config.lake, declared=lake_types.declared_columns(config, registry))
        pusher = asyncio.create_task(telemetry.push_forever(js, telemetry.process_name("lake")))
        # Completed batches (docs/batches.md) load beside the stream, one file per batch.
        loader = asyncio.create_task(batches.run(js, config, lake, stop, registry,
                                                 lake_types.declared_columns(config, registry)))
        log.info("Lake worker consuming %s into %s.", config.nats.stream, lake)
        try:
            await consume.run(js, config.nats.stream, CONSUMER, handler, config.lake.batch, stop)
        finally:
            schema_watch.cancel()
            await datasets.stop()
            pusher.cancel()
            await asyncio.wait([loader], timeout=5)  # it sees `stop` within one fetch (1 s)
            loader.cancel()  # a batch mid-load: its job comes back to the next loader
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
    finally:
        await bus.close(nc)
        log.info("Lake worker stopped.")
