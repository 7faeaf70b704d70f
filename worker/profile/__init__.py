"""The profile worker: consumes `INGEST` into the LMDB profile store and answers lookups.

One worker per shard; shard `i` of `profile.shards` owns a contiguous range of subject
partitions (durable consumer `profile-<i>`) and keeps its store under
`<data dir>/profile/<i>`. Beside the consumer it follows the merge policy and computed
attribute buckets, and backfills new computed attributes between batches.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from inlet import bus, computed_catalog, merge_policies, subjects, telemetry
from inlet.computed_attributes import Definition
from inlet.config import Config
from worker import consume
from worker.profile import backfill
from worker.profile.apply import Applier
from worker.profile.computed import Definitions
from worker.profile.handler import ProfileHandler
from worker.profile.identity_graph import Rules
from worker.profile.lookup import Lookups, event_ttls
from worker.profile.store import Store

log = logging.getLogger("inlet.worker.profile")


async def main(config: Config, shard: int = 0) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    store = Store(config.data_path / "profile" / str(shard), config.profile.map_size_bytes)
    nc = await bus.connect(config, name=f"inlet-profile-{shard}")
    js = bus.jetstream(nc, config)
    await bus.ensure_streams(js, config)
    name = f"profile-{shard}"
    await consume.ensure_consumer(
        js,
        config.nats.stream,
        consume.durable(
            name,
            ack_wait=config.profile.ack_wait,
            max_ack_pending=config.profile.batch * 4,
            filter_subjects=subjects.shard_filters(shard, config.profile.shards, config.nats.partitions),
        ),
    )
    bucket = await merge_policies.open_bucket(js, config.nats.replicas)
    await merge_policies.seed(bucket, config)
    policies = merge_policies.PolicyCache(config)
    await policies.start(bucket)
    definitions_kv, progress_kv = await computed_catalog.open_buckets(js, config.nats.replicas)
    await computed_catalog.seed(definitions_kv, config)
    catalog = computed_catalog.Catalog()
    definitions = Definitions()
    wake = asyncio.Event()

    def on_definitions(current: list[Definition]) -> None:
        definitions.replace(current)
        wake.set()

    catalog.listeners.append(on_definitions)
    await catalog.start(definitions_kv)
    answers = Lookups(store, config, policies=policies, definitions=definitions)

    async def on_lookup(msg: Msg) -> None:
        await msg.respond(answers.answer(msg.data))

    lookup_sub = await nc.subscribe(subjects.PROFILE_QUERY, queue="profile", cb=on_lookup)
    profile_datasets = {(d.sandbox, d.id) for d in config.datasets if d.profile}
    applier = Applier(store, Rules(config.identity), int(config.profile.applied_ttl * 1000), event_ttls(config),
                      definitions=definitions, profile_datasets=profile_datasets)
    writer = asyncio.Lock()
    handler = ProfileHandler(nc, js, applier, name, writer)
    pusher = asyncio.create_task(telemetry.push_forever(js, telemetry.process_name(name)))
    backfiller = asyncio.create_task(backfill.follow(
        backfill.Backfill(store, definitions), writer, _reporter(progress_kv, shard), wake))
    log.info("Profile worker %d consuming %s.", shard, config.nats.stream)
    try:
        await consume.run(js, config.nats.stream, name, handler, config.profile.batch, stop)
    finally:
        backfiller.cancel()
        pusher.cancel()
        await lookup_sub.unsubscribe()
        await policies.stop()
        await catalog.stop()
        await bus.close(nc)
        store.close()
        log.info("Profile worker %d stopped.", shard)


def _reporter(kv: KeyValue, shard: int, interval: float = 0.5) -> backfill.Reporter:
    """Publish this shard's backfill progress to the progress bucket: each change of status
    at once, running counts at most every `interval` seconds."""
    published: dict[str, tuple[str, str, bool, int, int]] = {}
    published_at: dict[str, float] = {}

    async def report(reports: list[backfill.Report]) -> None:
        now = time.monotonic()
        for r in reports:
            key = computed_catalog.progress_key(r.sandbox, r.name, shard)
            state = (r.fingerprint, r.run, r.done, r.processed, r.total)
            last = published.get(key)
            if last == state or (last is not None and last[:3] == state[:3] and now - published_at[key] < interval):
                continue
            progress = computed_catalog.Progress(fingerprint=r.fingerprint, status="done" if r.done else "running",
                                                 processed=r.processed, total=r.total)
            try:
                await kv.put(key, computed_catalog.encode_progress(progress))
            except Exception as exc:
                log.warning("Could not report backfill progress of %s: %s", key, exc)
                continue
            published[key], published_at[key] = state, now

    return report
