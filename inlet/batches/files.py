"""Uploaded batch files, stored in JetStream (stream `BATCHFILES`) as blocks.

Why JetStream and not the gateway's disk: any gateway may take any upload request of a batch
(and any chunk of a large file), and the loader runs in a lake worker that may be on another
machine; the stream is the storage every process already shares, replicated like `INGEST` on a
cluster. A request body is streamed into blocks of `BLOCK` bytes as it arrives (never held
whole in memory), each a message on `inletbatch.file.<batch>.<file key>` with its byte offset
and the id of the upload request that carried it. The batch state lists, per file, which
(start, end, upload) parts are complete: only a request whose every block JetStream
acknowledged is recorded, so the blocks of an interrupted upload are simply never read; its
retry is a new upload. The loader replays the file's blocks into a local file at their
offsets, keeping only recorded uploads, and the batch's blocks are purged once it is loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from inlet.batches.state import FileState

STREAM = "BATCHFILES"
PREFIX = "inletbatch.file"
BLOCK = 256 * 1024  # well under nats-server's default 1 MiB max payload
IN_FLIGHT = 8  # blocks published before the oldest ack is awaited


def file_key(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=10).hexdigest()


def subject(batch_id: str, key: str) -> str:
    return f"{PREFIX}.{batch_id}.{key}"


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    config = StreamConfig(name=STREAM, subjects=[f"{PREFIX}.>"], storage=StorageType.FILE,
                          num_replicas=replicas, max_age=7 * 24 * 3600.0, duplicate_window=120.0)
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)


async def store(js: JetStreamContext, batch_id: str, key: str, upload: str, offset: int,
                body: AsyncIterator[bytes]) -> int:
    """Publish `body` as blocks from `offset`; returns its length once every block is
    acknowledged (raises otherwise: then the upload is not recorded, and is retried)."""
    target = subject(batch_id, key)
    pending: list[asyncio.Future[object]] = []
    buffer = bytearray()
    written = 0

    async def flush(data: bytes) -> None:
        nonlocal written
        headers = {"Inlet-Offset": str(offset + written), "Inlet-Upload": upload,
                   "Nats-Msg-Id": f"{batch_id}/{key}/{upload}/{written}"}
        pending.append(asyncio.ensure_future(js.publish(target, data, stream=STREAM, headers=headers)))
        written += len(data)
        if len(pending) >= IN_FLIGHT:
            await pending.pop(0)

    try:
        async for chunk in body:
            buffer.extend(chunk)
            while len(buffer) >= BLOCK:
                await flush(bytes(buffer[:BLOCK]))
                del buffer[:BLOCK]
        if buffer:
            await flush(bytes(buffer))
        for future in pending:
            await future
    finally:
        for future in pending:
            if not future.done():
                future.cancel()
    return written


async def fetch(js: JetStreamContext, batch_id: str, file: FileState, path: Path) -> None:
    """Write the recorded parts of `file` into `path` (replayed at their offsets)."""
    wanted = {p.upload for p in file.parts}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        sub = await js.pull_subscribe(subject(batch_id, file.key), stream=STREAM,
                                      config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                                                            inactive_threshold=60.0))
        try:
            pending = (await sub.consumer_info()).num_pending or 0
            while pending > 0:
                msgs = await sub.fetch(min(64, pending), timeout=10)
                for msg in msgs:
                    headers = msg.headers or {}
                    if headers.get("Inlet-Upload") in wanted:
                        await asyncio.to_thread(os.pwrite, fd, msg.data, int(headers["Inlet-Offset"]))
                    pending = msg.metadata.num_pending or 0
        finally:
            await sub.unsubscribe()
        await asyncio.to_thread(os.ftruncate, fd, file.size)
    finally:
        os.close(fd)


async def purge(js: JetStreamContext, batch_id: str) -> None:
    await js.purge_stream(STREAM, subject=f"{PREFIX}.{batch_id}.>")
