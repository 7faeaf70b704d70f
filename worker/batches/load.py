"""Loading one completed batch: the lake first, as one file, then the profile, paced.

1. Take the batch (status `processing`; its receive time is fixed on the first attempt, so
   every attempt writes the same partition and file name).
2. Fetch its files from stream `BATCHFILES` into `<data dir>/batches/<id>/`.
3. Lake pass (a worker thread): read each file row by row, map and check each row
   (`inlet.batches.rows`), and commit chunks of `batches.chunk_rows` rows through the lake's
   own `Committer` (conform to the dataset's schema, quarantine, temp-fsync-rename) into a
   staging directory outside every dataset, `<lake>/.batches/<id>/`.
4. Decide by the documented rule: more failed rows than `partialIngestionPercent` allows
   (by default any) fails the batch: nothing of it becomes visible, its staging is removed.
5. Otherwise join the staged chunks into one Parquet file, streamed by Polars, written to a
   temporary name, fsynced and renamed into the dataset's hour partition as
   `part-batch-<id>.parquet`: one rename, so readers see all of the batch or none of it.
6. For a Profile-enabled dataset, read the files again and publish every good row to
   `INGEST` (the same subjects and worker path as streaming data), `publish_window` at a time,
   and only while the profile consumers' backlog is under `profile_backlog`: streaming events
   queue behind at most that many batch rows. Ids are deterministic, so a resumed or repeated
   load is applied once.
7. Mark it `success`, purge its blocks, remove its local copies.

A crash anywhere repeats the load from step 1: the final file's existence (or
`lake_committed`) skips step 5, and `published` resumes step 6 where it was recorded.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from inlet import messages, subjects
from inlet.batches import files
from inlet.batches import state as batch_state
from inlet.batches.rows import Preparer, read
from inlet.batches.state import MAX_REPORTED_ERRORS, BatchState, RowError
from inlet.config import Config, Dataset
from inlet.messages import Event, Record
from inlet.schemas.registry import Registry
from worker.lake.commit import Committer
from worker.lake.frames import Row, one_line
from worker.lake.schema import Schema
from worker.lake.writer import Writer, partition_dir

log = logging.getLogger("inlet.worker.batches")

STAGING = ".batches"


def lake_file_name(batch_id: str) -> str:
    return f"part-batch-{batch_id}.parquet"


@dataclass
class LakePass:
    read: int = 0
    good: int = 0
    failed: int = 0
    written: int = 0
    errors: list[RowError] = field(default_factory=list)


class Loader:
    def __init__(self, js: JetStreamContext, kv: KeyValue, config: Config, lake: Path,
                 registry: Registry | None = None, declared: Callable[[str, str], Schema] | None = None) -> None:
        self.js = js
        self.kv = kv
        self.config = config
        self.lake = lake
        self.registry = registry
        self.committer = Committer(lake, declared)
        self.writer = Writer(lake)

    async def load(self, batch_id: str, heartbeat: Callable[[], Awaitable[None]]) -> None:
        found = await batch_state.get(self.kv, batch_id)
        if found is None or found[0].status not in ("staged", "processing"):
            return  # unknown, still loading, or already final: nothing to do
        current = found[0]
        dataset = self.config.dataset(current.sandbox, current.dataset)
        if dataset is None:
            await self._fail(batch_id, [RowError(code="unknown_dataset",
                                                 description=f"dataset {current.dataset!r} no longer exists")], LakePass())
            return

        def begin(s: BatchState) -> None:
            s.status = "processing"
            s.attempts += 1
            s.received_ms = s.received_ms or batch_state.now_ms()
        current = await batch_state.update(self.kv, batch_id, begin)
        work = self.config.data_path / "batches" / batch_id
        for file in current.files:
            await files.fetch(self.js, batch_id, file, work / file.key)
            await heartbeat()
        preparer = Preparer(self.config, current, dataset, self._validator(dataset))
        hour_dir = partition_dir(self.lake, current.sandbox, current.dataset, current.received_ms)
        final = hour_dir / lake_file_name(batch_id)
        committed = current.lake_committed or final.exists()
        loop = asyncio.get_running_loop()

        def report(rows: int) -> None:  # from the lake pass's thread: progress for `inlet batch load`
            asyncio.run_coroutine_threadsafe(self._progress(batch_id, rows), loop)
        outcome = await asyncio.to_thread(self._lake_pass, current, preparer, work, not committed, report)
        allowed = current.partialIngestionPercent / 100 * outcome.read
        if outcome.failed > allowed or outcome.read == 0:
            if outcome.read == 0 and not outcome.errors:
                outcome.errors.append(RowError(code="no_rows", description="the batch's files hold no rows"))
            await self._fail(batch_id, outcome.errors, outcome)
            await asyncio.to_thread(self._clean, batch_id, work)
            return
        if not committed and outcome.written:
            await asyncio.to_thread(self._publish_lake_file, batch_id, hour_dir)
        written = outcome.written if not committed else current.metrics.recordsWritten

        def lake_done(s: BatchState) -> None:
            s.lake_committed = True
            s.lake_file = str(final.relative_to(self.lake)) if written else ""
            s.errors = outcome.errors
            s.metrics.recordsRead = outcome.read
            s.metrics.failedRecordCount = outcome.failed
            s.metrics.recordsWritten = written
        current = await batch_state.update(self.kv, batch_id, lake_done)
        log.info("Batch %s is in the lake: %d rows in %s (%d failed).", batch_id, written, final, outcome.failed)
        published = 0
        if dataset.profile:
            published = await self._publish_profile(current, preparer, work, heartbeat)

        def done(s: BatchState) -> None:
            s.status = "success"
            s.completed = batch_state.now_ms()
            s.metrics.inletProfileRecords = published
            s.published = published
        await batch_state.update(self.kv, batch_id, done)
        await files.purge(self.js, batch_id)
        await asyncio.to_thread(self._clean, batch_id, work)
        log.info("Batch %s loaded: %d rows to the lake, %d to the profile.", batch_id, written, published)

    def _validator(self, dataset: Dataset):  # type: ignore[no-untyped-def]
        if self.registry is None:
            return None
        ref = self.registry.dataset_schema(dataset)
        return self.registry.validator(dataset.sandbox, ref) if ref else None

    def _rows(self, current: BatchState, preparer: Preparer, work: Path) -> Iterator[Event | Record | RowError]:
        for index, file in enumerate(current.files):
            for number, source in read(work / file.key, current.inputFormat):
                if isinstance(source, RowError):
                    source.file = file.name
                    yield source
                    continue
                xdm = preparer.xdm(source, number, file.name)
                if isinstance(xdm, RowError):
                    yield xdm
                    continue
                yield preparer.message(xdm, number, index, file.name, current.received_ms)

    async def _progress(self, batch_id: str, rows: int) -> None:
        def progress(s: BatchState) -> None:
            s.metrics.recordsRead = max(s.metrics.recordsRead, rows)
        try:
            await batch_state.update(self.kv, batch_id, progress)
        except Exception as exc:  # a progress figure only
            log.debug("Could not record the progress of batch %s (%r).", batch_id, exc)

    def _lake_pass(self, current: BatchState, preparer: Preparer, work: Path, write: bool,
                   report: Callable[[int], None]) -> LakePass:
        outcome = LakePass()
        staging = self.lake / STAGING / current.id
        shutil.rmtree(staging, ignore_errors=True)
        chunk: list[Row] = []
        every = self.config.batches.chunk_rows
        for item in self._rows(current, preparer, work):
            outcome.read += 1
            if outcome.read % every == 0:
                report(outcome.read)
            if isinstance(item, RowError):
                outcome.failed += 1
                if len(outcome.errors) < MAX_REPORTED_ERRORS:
                    outcome.errors.append(item)
                continue
            outcome.good += 1
            if write:
                chunk.append(_row(item, outcome.good))
                if len(chunk) >= self.config.batches.chunk_rows:
                    outcome.written += self._stage(current, staging, chunk)
                    chunk = []
        if write and chunk:
            outcome.written += self._stage(current, staging, chunk)
        return outcome

    def _stage(self, current: BatchState, staging: Path, rows: list[Row]) -> int:
        result = self.committer.commit({(current.sandbox, current.dataset, staging): rows})
        if result.failed:
            raise OSError(f"could not stage {len(rows)} rows of batch {current.id} in {staging}")
        return result.rows

    def _publish_lake_file(self, batch_id: str, hour_dir: Path) -> None:
        """Join the staged chunks into one file and rename it into the partition."""
        staged = sorted((self.lake / STAGING / batch_id).glob("part-*.parquet"))
        if not staged:
            return
        self.writer.commit(hour_dir, lake_file_name(batch_id), lambda temp: _join(staged, temp))

    async def _publish_profile(self, current: BatchState, preparer: Preparer, work: Path,
                               heartbeat: Callable[[], Awaitable[None]]) -> int:
        rows = self._rows(current, preparer, work)
        window = self.config.batches.publish_window
        skip, sent = current.published, 0
        done = False

        def next_window() -> list[Event | Record]:
            nonlocal done
            out: list[Event | Record] = []
            for item in rows:
                if not isinstance(item, RowError):
                    out.append(item)
                    if len(out) >= window:
                        return out
            done = True
            return out

        since_checkpoint = 0
        while not done:
            batch = await asyncio.to_thread(next_window)
            if skip:
                dropped = min(skip, len(batch))
                batch, skip, sent = batch[dropped:], skip - dropped, sent + dropped
            if not batch:
                continue
            await self._wait_for_room(heartbeat)
            await asyncio.gather(*(self._publish(m) for m in batch))
            sent += len(batch)
            since_checkpoint += len(batch)
            if since_checkpoint >= 20 * window:
                since_checkpoint = 0
                count = sent

                def checkpoint(s: BatchState) -> None:
                    s.published = count
                await batch_state.update(self.kv, current.id, checkpoint)
                await heartbeat()
        return sent

    async def _publish(self, message: Event | Record) -> None:
        if isinstance(message, Record) and message.record_class == "account":
            key = "account:" + message.account_key
        else:
            key = message.identities[0].key if message.identities else message.message_id
        subject = subjects.ingest(message.sandbox, messages.kind_of(message),
                                  subjects.partition(key, self.config.nats.partitions))
        await self.js.publish(subject, messages.encode(message), stream=self.config.nats.stream,
                              headers={"Nats-Msg-Id": message.message_id})

    async def _wait_for_room(self, heartbeat: Callable[[], Awaitable[None]]) -> None:
        """Backpressure: wait while the profile consumers hold `profile_backlog` messages."""
        limit = self.config.batches.profile_backlog
        waited = 0
        while await self._profile_backlog() >= limit:
            await asyncio.sleep(0.02)
            waited += 1
            if waited % 250 == 0:
                await heartbeat()

    async def _profile_backlog(self) -> int:
        total = 0
        for shard in range(self.config.profile.shards):
            try:
                info = await self.js.consumer_info(self.config.nats.stream, f"profile-{shard}")
            except NotFoundError:
                continue
            total += info.num_pending + info.num_ack_pending
        return total

    async def _fail(self, batch_id: str, errors: list[RowError], outcome: LakePass) -> None:
        def failed(s: BatchState) -> None:
            s.status = "failed"
            s.completed = batch_state.now_ms()
            s.errors = errors[:MAX_REPORTED_ERRORS]
            s.metrics.recordsRead = outcome.read
            s.metrics.failedRecordCount = outcome.failed
            s.metrics.recordsWritten = 0
        await batch_state.update(self.kv, batch_id, failed)
        await files.purge(self.js, batch_id)
        log.warning("Batch %s failed: %d of %d rows could not be loaded; first: %s", batch_id, outcome.failed,
                    outcome.read, errors[0].description if errors else "-")

    def _clean(self, batch_id: str, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(self.lake / STAGING / batch_id, ignore_errors=True)


def _join(staged: list[Path], target: Path) -> None:
    """The staged chunks as one Parquet file, one chunk in memory at a time: each becomes row
    groups of the file, its columns cast to the union of all chunks' columns (a later chunk
    may have added fields or widened a type, as the lake's schema allows)."""
    import pyarrow.parquet as pq

    union = pl.concat([pl.scan_parquet(p, hive_partitioning=False) for p in staged],
                      how="diagonal_relaxed").collect_schema()
    empty = pl.DataFrame(schema=union)
    writer: pq.ParquetWriter | None = None
    try:
        for path in staged:
            chunk = pl.concat([empty, pl.read_parquet(path, hive_partitioning=False)], how="diagonal_relaxed")
            # Rows of a batch have no stream sequence: 0 in the lake (while staged, their
            # ordinal lets the commit step's dedupe prune by range). With 0, the streaming
            # lake worker's dedupe never reads this file (its ranges start at 1).
            chunk = chunk.with_columns(pl.lit(0, dtype=pl.UInt64).alias("_inlet_stream_seq"))
            table = chunk.select(list(union.names())).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema), row_group_size=64 * 1024)
    finally:
        if writer is not None:
            writer.close()


def _row(message: Event | Record, ordinal: int) -> Row:
    return Row(xdm=one_line(bytes(message.xdm)), data=None, org=message.org, sandbox=message.sandbox,
               dataset=message.dataset, source=message.source, kind=messages.kind_of(message),
               message_id=message.message_id, received_ms=message.received_ms, stream_seq=ordinal)
