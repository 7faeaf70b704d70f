"""A batch's state, kept in the NATS key-value bucket `inlet_batches` (one key per batch).

Every gateway and every loader reads and writes the same document, so any gateway can take
any request of a batch and the Catalog answers the same everywhere. Writers update it with
compare-and-set on the entry's revision (`update`), so two gateways recording two uploaded
parts of one batch at once never lose one of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from inlet import buckets
from inlet.dataprep.mapping import MappingSet

BUCKET = "inlet_batches"
Format = Literal["json", "parquet", "csv"]
# loading: files may be uploaded; staged: completed by the client, queued for the loader;
# processing: the loader is writing it; success / failed: final; abandoned: the client aborted.
Status = Literal["loading", "staged", "processing", "success", "failed", "abandoned"]
FINAL = ("success", "failed", "abandoned")
MAX_REPORTED_ERRORS = 100


class InputFormat(msgspec.Struct, kw_only=True, omit_defaults=True):
    format: Format = "json"
    delimiter: str = ","
    quote: str = '"'
    header: bool = True


class Part(msgspec.Struct, array_like=True):
    """Bytes [start, end) of a file, as stored by one upload request (`upload`)."""

    start: int
    end: int
    upload: str


class FileState(msgspec.Struct, kw_only=True):
    name: str
    key: str  # the file's subject token in stream BATCHFILES (a hash of its name)
    parts: list[Part] = []
    size: int = -1  # known once the file is complete
    complete: bool = False
    large: bool = False  # initialised for a chunked (large file) upload


class RowError(msgspec.Struct, kw_only=True, omit_defaults=True):
    code: str  # parse_failed, mapping_failed, schema_mismatch, missing_identity, missing_field, file_failed
    description: str
    file: str = ""
    row: int = 0
    destination: str = ""
    function: str = ""
    value: str | int | float | bool | None = None


class Metrics(msgspec.Struct, kw_only=True):
    recordsRead: int = 0
    recordsWritten: int = 0  # rows in the lake
    failedRecordCount: int = 0
    inletProfileRecords: int = 0  # rows published to the profile (0 when the dataset is not enabled)
    inputByteSize: int = 0


class BatchState(msgspec.Struct, kw_only=True):
    id: str
    org: str
    sandbox: str
    dataset: str
    inputFormat: InputFormat = msgspec.field(default_factory=InputFormat)
    mapping: MappingSet | None = None
    # Adobe's partial batch ingestion: the share of rows that may fail while the rest load.
    # 0 (the default, as in Adobe without partial ingestion): any failed row fails the batch.
    partialIngestionPercent: float = 0
    status: Status = "loading"
    created: int = 0
    updated: int = 0
    completed: int = 0
    files: list[FileState] = []
    errors: list[RowError] = []
    metrics: Metrics = msgspec.field(default_factory=Metrics)
    # Fixed when the loader first takes the batch: every row's receive time, so a retried load
    # writes into the same lake partition under the same file name.
    received_ms: int = 0
    lake_committed: bool = False
    lake_file: str = ""
    published: int = 0  # good rows published to the profile so far (a resumed load skips them)
    attempts: int = 0

    def file(self, name: str) -> FileState | None:
        return next((f for f in self.files if f.name == name), None)


encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(BatchState).decode


def now_ms() -> int:
    return int(time.time() * 1000)


async def open_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    return await buckets.open_bucket(js, BUCKET, history=1, replicas=replicas)


async def get(kv: KeyValue, batch_id: str) -> tuple[BatchState, int] | None:
    try:
        entry = await kv.get(batch_id)
    except KeyNotFoundError:
        return None
    if entry.value is None:
        return None
    return decode(entry.value), entry.revision or 0


async def create(kv: KeyValue, state: BatchState) -> None:
    await kv.create(state.id, encode(state))


class Conflict(Exception):
    """`change` refused the update (it raises this with a reason the caller answers with)."""


async def update(kv: KeyValue, batch_id: str, change: Callable[[BatchState], None], attempts: int = 20) -> BatchState:
    """Read, apply `change`, write back if nobody wrote meanwhile; else read again and retry."""
    for _ in range(attempts):
        found = await get(kv, batch_id)
        if found is None:
            raise KeyError(batch_id)
        state, revision = found
        change(state)
        state.updated = now_ms()
        try:
            await kv.update(batch_id, encode(state), last=revision)
            return state
        except KeyWrongLastSequenceError:
            await asyncio.sleep(0.005)
    raise RuntimeError(f"batch {batch_id}: too many concurrent updates")
