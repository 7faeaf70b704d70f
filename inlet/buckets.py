"""Opening a NATS KV bucket: every document store of inlet (merge policies, computed attribute
definitions, the catalog, schemas, shard leases, metrics) is one, opened the same way.

A bucket is created on first use, so a fresh deployment needs no set-up step. On a fresh
cluster a bucket that another process has just created (or that this one has) may have no
stream leader yet for a moment, and JetStream then answers "no responders" or "unavailable":
that is a wait, not a failure, so opening retries for a bounded time before it gives up.
"""

from __future__ import annotations

import asyncio
import time

from nats.errors import NoRespondersError, TimeoutError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import (
    BucketNotFoundError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue

# How long a bucket may stay leaderless before opening it fails (a cluster elects in seconds).
LEADER_WAIT_SECONDS = 30.0
_NOT_YET = (NoStreamResponseError, ServiceUnavailableError, NoRespondersError, TimeoutError)


async def open_bucket(
    js: JetStreamContext, bucket: str, *, history: int = 5, replicas: int = 1, ttl: float = 0.0
) -> KeyValue:
    """The bucket `bucket`, created with this shape when it does not exist yet."""
    deadline = time.monotonic() + LEADER_WAIT_SECONDS
    delay = 0.05
    while True:
        try:
            try:
                kv = await js.key_value(bucket)
            except (BucketNotFoundError, NotFoundError):
                config = KeyValueConfig(bucket=bucket, history=history, replicas=replicas, ttl=ttl or None)
                kv = await js.create_key_value(config)
            await js.stream_info(f"KV_{bucket}")  # answered only once the bucket has a leader
            return kv
        except _NOT_YET:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)  # waiting for a leader election, not synchronising a test
            delay = min(delay * 2, 1.0)
