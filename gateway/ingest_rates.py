"""Accepted messages per dataset and connection over the last hour, for the workspace's chart.

Prometheus counters say how many since the process started; the ingestion overview wants a
rate history ("events/s per dataset over the last hour") that survives a page reload and
covers every gateway process. Each gateway counts what it accepted in 10-second buckets in
memory (`RATES`, fed by `Publisher`), and every `STEP_SECONDS` puts its last hour into the KV
bucket `inlet_ingest_rates` under its own key; the overview sums every gateway's key. A key
expires when its gateway stops pushing, so a stopped gateway's history leaves the chart after
a few minutes; a restarted gateway starts a new history.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from inlet import buckets

STEP_SECONDS = 10
WINDOW_SECONDS = 3600
BUCKET = "inlet_ingest_rates"

log = logging.getLogger("inlet.gateway.rates")

# (bucket start s, sandbox, dataset, connection, messages)
Row = tuple[int, str, str, str, int]
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(list[Row]).decode


class Rates:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.buckets: dict[int, Counter[tuple[str, str, str]]] = {}

    def count(self, sandbox: str, dataset: str, connection: str) -> None:
        start = int(self.clock()) // STEP_SECONDS * STEP_SECONDS
        bucket = self.buckets.get(start)
        if bucket is None:
            bucket = self.buckets[start] = Counter()
            self._prune(start)
        bucket[(sandbox, dataset, connection)] += 1

    def _prune(self, now: int) -> None:
        for start in [s for s in self.buckets if s <= now - WINDOW_SECONDS]:
            del self.buckets[start]

    def rows(self) -> list[Row]:
        self._prune(int(self.clock()))
        return [(start, *key, n) for start, bucket in sorted(self.buckets.items()) for key, n in bucket.items()]


RATES = Rates()


def process_key() -> str:
    import os
    import socket

    return re.sub(r"[^-_=.a-zA-Z0-9]", "-", f"gateway@{socket.gethostname()}:{os.getpid()}")


async def open_bucket(js: JetStreamContext) -> KeyValue:
    return await buckets.open_bucket(js, BUCKET, history=1, ttl=6 * STEP_SECONDS)


async def push_forever(js: JetStreamContext) -> None:
    """This gateway's last hour into the shared bucket, until cancelled (best effort, like
    metrics: a missed push only delays the chart)."""
    key = process_key()
    while True:
        try:
            bucket = await open_bucket(js)
            await bucket.put(key, _encode(RATES.rows()))
        except Exception as exc:
            log.debug("Could not push ingest rates: %s", exc)
        await asyncio.sleep(STEP_SECONDS)


async def read_all(js: JetStreamContext) -> list[Row]:
    """Every gateway's rows; this process's own are read from memory, so they are current."""
    own = process_key()
    rows = RATES.rows()
    bucket = await open_bucket(js)
    try:
        keys = await bucket.keys()
    except Exception:  # no keys yet
        keys = []
    for key in keys:
        if key == own:
            continue
        entry = await bucket.get(key)
        if entry.value:
            rows.extend(_decode(entry.value))
    return rows
