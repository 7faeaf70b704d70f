"""Completed batches waiting for a loader: stream `BATCHJOBS` (a work queue).

Completing a batch publishes one job, `inletbatch.job.<batch id>` (outside `inlet.>`: the `INGEST` subjects `inlet.*.<kind>.*` would overlap), with `Nats-Msg-Id`
`complete/<batch id>`, so a client that completes twice queues it once. Lake workers share
the durable consumer `batch-loader`; a job stays unacknowledged while its batch loads (the
loader says `in_progress` as it goes), so a loader killed mid-batch gives the job back after
`batches.job_ack_wait`, and the next loader starts it again.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

STREAM = "BATCHJOBS"
PREFIX = "inletbatch.job"
CONSUMER = "batch-loader"


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=STREAM, subjects=[f"{PREFIX}.>"], storage=StorageType.FILE,
                                         retention=RetentionPolicy.WORK_QUEUE, num_replicas=replicas,
                                         duplicate_window=600.0))


async def enqueue(js: JetStreamContext, batch_id: str) -> None:
    await js.publish(f"{PREFIX}.{batch_id}", batch_id.encode(), stream=STREAM,
                     headers={"Nats-Msg-Id": f"complete/{batch_id}"})
