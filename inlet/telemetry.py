"""Logs and metrics, declared once, the same in every process.

Logs: one line per record, JSON by default when stderr is not a terminal (`log_format`), with
the request id of the HTTP request being served (a context variable set by the gateway's
middleware). Log messages are sentences; ERROR means data loss or operator action.

Metrics: every metric is declared here once, with help text and low-cardinality labels. The
gateway serves `/metrics`; workers have no HTTP server, so each pushes its registry to the
`inlet_metrics` key-value bucket every few seconds, and the gateway includes those snapshots.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import socket
import sys
import time

from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from inlet import buckets

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

METRICS_BUCKET = "inlet_metrics"
PUSH_INTERVAL = 5.0


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "process": self.process_name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


def configure_logging(level: str, log_format: str, process_name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    if use_json:
        handler.setFormatter(JsonFormatter(process_name))
    else:
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.Formatter.converter = time.gmtime
    logging.getLogger("nats").setLevel(logging.CRITICAL)  # its errors reach our callbacks


# The gateway serves REGISTRY; workers push WORKER_REGISTRY (kept apart so no family is
# declared twice in one scrape).
REGISTRY = CollectorRegistry(auto_describe=True)
WORKER_REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "inlet_http_requests", "HTTP requests answered, by route template and status.",
    ["route", "status"], registry=REGISTRY,
)
EVENTS_ACCEPTED = Counter(
    "inlet_messages_accepted", "Messages accepted (stored in JetStream or spooled), by message kind.",
    ["kind", "spooled"], registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "inlet_messages_rejected", "Messages or requests refused, by reason.", ["reason"], registry=REGISTRY,
)
SCHEMA_FAILURES = Counter(
    "inlet_schema_failures", "Messages refused by their dataset's XDM schema and kept in the failure store, "
    "by sandbox and dataset (docs/schemas.md).", ["sandbox", "dataset"], registry=REGISTRY,
)
PUBLISH_SECONDS = Histogram(
    "inlet_publish_seconds", "Time from publishing a request's messages to their last JetStream ack.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=REGISTRY,
)
SPOOL_BYTES = Gauge("inlet_spool_bytes", "Bytes waiting in the gateway's disk spool.", registry=REGISTRY)
BATCH_SECONDS = Histogram(
    "inlet_worker_batch_seconds", "Time to apply and commit one fetched batch, by worker.",
    ["worker"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=WORKER_REGISTRY,
)
BATCH_MESSAGES = Counter(
    "inlet_worker_messages", "Messages a worker applied (or dead-lettered), by worker and outcome.",
    ["worker", "outcome"], registry=WORKER_REGISTRY,
)
DEAD_LETTERS = Counter(
    "inlet_dead_letters", "Messages a worker parked in DEADLETTER (accepted, not applied), by worker and reason.",
    ["worker", "reason"], registry=WORKER_REGISTRY,
)
BATCH_RETRIES = Counter(
    "inlet_worker_batch_retries", "Batches retried after a failure of the store (full map or disk, I/O), by worker and error.",
    ["worker", "error"], registry=WORKER_REGISTRY,
)
WORKER_STALLED = Gauge(
    "inlet_worker_stalled", "1 while a worker retries a batch its store cannot take (operator action needed).",
    ["worker"], registry=WORKER_REGISTRY,
)
LAKE_FILES = Counter("inlet_lake_files", "Parquet files the lake worker committed.", registry=WORKER_REGISTRY)
LAKE_ROWS = Counter("inlet_lake_rows", "Rows the lake worker committed to Parquet.", registry=WORKER_REGISTRY)
LAKE_QUARANTINED = Counter(
    "inlet_lake_quarantined_rows", "Rows the lake worker quarantined (kept as NDJSON, not in Parquet), by dataset.",
    ["dataset"], registry=WORKER_REGISTRY,
)
LAKE_OVERFLOWED = Counter(
    "inlet_lake_overflowed_rows", "Rows written with members no column can hold kept in _inlet_overflow, by dataset.",
    ["dataset"], registry=WORKER_REGISTRY,
)
LAKE_COMMITTED = Gauge(
    "inlet_lake_committed_timestamp_seconds", "When the newest Parquet file of a dataset was committed.",
    ["dataset"], registry=WORKER_REGISTRY,
)


def process_name(kind: str) -> str:
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


async def metrics_bucket(js: JetStreamContext) -> KeyValue:
    return await buckets.open_bucket(js, METRICS_BUCKET, history=1, ttl=6 * PUSH_INTERVAL)


async def push_forever(js: JetStreamContext, name: str) -> None:
    """A worker's metrics, into the shared bucket, until cancelled."""
    bucket = await metrics_bucket(js)
    key = re.sub(r"[^-_=.a-zA-Z0-9]", "-", name)
    while True:
        try:
            await bucket.put(key, generate_latest(WORKER_REGISTRY))
        except Exception as exc:  # the bus may be away; metrics are best effort
            logging.getLogger("inlet.telemetry").debug("Could not push metrics: %s", exc)
        await asyncio.sleep(PUSH_INTERVAL)
