"""The lake worker: consumes `INGEST` into a partitioned Parquet lake (see docs/lake.md).

Lake workers share one durable consumer, `lake`, so several can run at once (queue
semantics); each writes its own files. Messages stay unacknowledged while their rows are
buffered, so the consumer's `ack_wait` exceeds the roll interval and `max_ack_pending` exceeds
the buffer.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from inlet import bus, telemetry
from inlet.config import Config
from worker import consume
from worker.lake.handler import LakeHandler
from worker.lake.writer import remove_temp_files

log = logging.getLogger("inlet.worker.lake")

CONSUMER = "lake"


async def main(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    lake = config.data_path / "lake"
    lake.mkdir(parents=True, exist_ok=True)
    removed = remove_temp_files(lake)
    if removed:
        log.info("Removed %d unfinished temporary files from an earlier run.", removed)
    nc = await bus.connect(config, name="inlet-lake")
    js = bus.jetstream(nc, config)
    await bus.ensure_streams(js, config)
    await consume.ensure_consumer(
        js,
        config.nats.stream,
        consume.durable(
            CONSUMER,
            ack_wait=2 * config.lake.roll_interval + 10,
            max_ack_pending=2 * config.lake.max_rows + config.lake.batch,
        ),
    )
    handler = LakeHandler(js, lake, config.lake)
    pusher = asyncio.create_task(telemetry.push_forever(js, telemetry.process_name("lake")))
    log.info("Lake worker consuming %s into %s.", config.nats.stream, lake)
    try:
        await consume.run(js, config.nats.stream, CONSUMER, handler, config.lake.batch, stop)
    finally:
        pusher.cancel()
        await bus.close(nc)
        log.info("Lake worker stopped.")
