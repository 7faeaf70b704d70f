"""Backfill: a new (or changed) computed attribute counts the events already stored.

A definition starts counting streamed events with the next batch; the events already in the
profile store are counted by a backfill that walks the `event` database owner by owner, in
bounded write transactions (`step`), so streaming batches run between the chunks. For each
owner it rebuilds that definition's buckets from the owner's stored events (`recompute`),
replacing rather than adding: a chunk that is repeated after a crash, or an owner whose newest
events streaming already counted, ends in exactly the state streaming alone would have built.

Progress is a `Job` per definition fingerprint in the `backfill` database, written in the
same transaction as the chunk it describes, so a restarted worker resumes where it stopped. A
changed definition has a new fingerprint, hence a new job; jobs of fingerprints no longer
current are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import lmdb
import msgspec

from worker.profile.computed import Compiled, Definitions, recompute
from worker.profile.store import (
    ID_BYTES,
    Store,
    StoredEvent,
    decode_event,
    event_timestamp,
    prefix_items,
)

CHUNK_EVENTS = 2_000
RETRY_SECONDS = 5.0
log = logging.getLogger("inlet.worker.profile")


class Job(msgspec.Struct, gc=False):
    sandbox: str
    name: str
    run: str  # a new id per run: a restarted backfill reports afresh
    after: bytes  # the event key to resume from (the next owner's first key); b"" at the start
    processed: int
    total: int
    done: bool = False


_encode = msgspec.msgpack.Encoder().encode
_decode_job = msgspec.msgpack.Decoder(Job).decode


@dataclass(frozen=True)
class Report:
    sandbox: str
    name: str
    fingerprint: str
    run: str
    done: bool
    processed: int
    total: int


Reporter = Callable[[list[Report]], Awaitable[None]]


class Backfill:
    def __init__(
        self,
        store: Store,
        definitions: Definitions,
        clock: Callable[[], float] = time.time,
        chunk_events: int = CHUNK_EVENTS,
    ) -> None:
        self.store = store
        self.definitions = definitions
        self.clock = clock
        self.chunk_events = chunk_events

    def step(self) -> tuple[list[Report], bool]:
        """One bounded write transaction of backfill work: (progress of every current
        definition, whether work remains)."""
        snapshot = self.definitions.snapshot
        now_ms = int(self.clock() * 1000)
        store = self.store
        with store.env.begin(write=True) as txn:
            jobs = {key: _decode_job(value) for key, value in prefix_items(txn, store.backfill, b"")}
            dropped = self.definitions.take_dropped()
            for fp in [fp for fp in jobs if fp not in snapshot.by_fp or fp in dropped]:
                txn.delete(fp, db=store.backfill)
                del jobs[fp]
            pending = [c for c in snapshot.all if c.fp not in jobs or not jobs[c.fp].done]
            if pending:
                c = pending[0]
                job = jobs.get(c.fp) or Job(c.sandbox, c.name, os.urandom(4).hex(), b"", 0,
                                            int(txn.stat(store.event)["entries"]))
                self._chunk(txn, c, job, now_ms)
                txn.put(c.fp, _encode(job), db=store.backfill)
                jobs[c.fp] = job
        reports = [
            Report(c.sandbox, c.name, c.fp.hex(), jobs[c.fp].run, jobs[c.fp].done, jobs[c.fp].processed,
                   max(jobs[c.fp].total, jobs[c.fp].processed))
            for c in snapshot.all if c.fp in jobs
        ]
        return reports, any(not r.done for r in reports) or len(reports) < len(snapshot.all)

    def run_to_end(self) -> list[Report]:
        """Every pending backfill, to the end (tests, and tools that own the store)."""
        while True:
            reports, more = self.step()
            if not more:
                return reports

    def _chunk(self, txn: lmdb.Transaction, c: Compiled, job: Job, now_ms: int) -> None:
        """Recompute whole owners from `job.after` until `chunk_events` events were read."""
        start = c.start(now_ms)
        cursor = txn.cursor(self.store.event)
        positioned = cursor.set_range(job.after) if job.after else cursor.first()
        owner = b""
        events: list[tuple[int, StoredEvent]] = []
        sandbox_matches = False
        read = 0
        while positioned:
            key = bytes(cursor.key())
            if key[:ID_BYTES] != owner:
                if owner and sandbox_matches:
                    recompute(txn, self.store, owner, c, events, start)
                if read >= self.chunk_events:
                    job.after = key  # the next owner starts here
                    return
                owner, events = key[:ID_BYTES], []
                sandbox_matches = False
            stored = decode_event(cursor.value())
            sandbox_matches = stored.sandbox == c.sandbox
            if sandbox_matches:
                events.append((event_timestamp(key), stored))
            read += 1
            job.processed += 1
            positioned = cursor.next()
        if owner and sandbox_matches:
            recompute(txn, self.store, owner, c, events, start)
        job.after, job.done = b"", True


async def follow(
    backfill: Backfill,
    writer: asyncio.Lock,
    report: Reporter,
    wake: asyncio.Event,
) -> None:
    """Run backfill chunks while there is work, each under the writer lock (so streaming
    batches take turns with them), reporting progress after each; then wait for `wake` (a
    definition changed). Runs until cancelled."""
    while True:
        wake.clear()
        try:
            async with writer:
                reports, more = await asyncio.to_thread(backfill.step)
            await report(reports)
        except Exception:
            # Values of the definition stay partial until it succeeds: an operator should look.
            log.exception("A computed attribute backfill step failed; retrying in %s s.", RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if not more:
            await wake.wait()
