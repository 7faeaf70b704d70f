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

from inlet import browse as inlet_browse
from inlet import bus, computed_catalog, merge_policies, subjects, telemetry
from inlet.computed_attributes import Definition
from inlet.catalog import live as catalog_live
from inlet.config import Config
from worker import consume
from worker.profile import backfill
from worker.profile import shard as shard_role
from worker.profile.apply import Applier
from worker.profile.browse import Browser
from worker.profile.browse import part_subject as browse_part_subject
from worker.profile.computed import Definitions
from worker.profile.handler import ProfileHandler
from worker.profile.ordering import InOrder
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
            # One batch in flight: a fetch whose answer was lost (a NATS node or leader died)
            # leaves its messages pending, and only then does JetStream redeliver them before
            # anything newer; with more in flight, later messages would be applied first, and
            # the graph (and every shard's copy of it) depends on the order (docs/scaling.md).
            max_ack_pending=config.profile.batch,
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
    role = await shard_role.join(config, nc, js, shard, answers, stop)  # lease; N shards: docs/scaling.md

    async def on_lookup(msg: Msg) -> None:
        await msg.respond(await role.answer(msg.data))

    lookup_sub = await nc.subscribe(subjects.PROFILE_QUERY, queue="profile", cb=on_lookup)
    browser = Browser(store, placement=role.placement, nc=nc, timeout=config.profile.query_timeout)

    async def on_browse(msg: Msg) -> None:
        await msg.respond(await browser.respond(msg.data))

    # One shard answers (inlet/browse.py); with N shards it gathers the data-only parts.
    browse_sub = await nc.subscribe(inlet_browse.SUBJECT, queue=inlet_browse.QUEUE, cb=on_browse)
    browse_part_sub = (await nc.subscribe(browse_part_subject(shard), cb=browser.serve_part)
                       if role.placement is not None else None)
    _, datasets = await catalog_live.follow(js, config)  # the Catalog, live: config.datasets follows it
    applier = Applier(store, Rules(config.identity), int(config.profile.applied_ttl * 1000), event_ttls(config),
                      definitions=definitions, profile_datasets=_profile_datasets(config))

    def on_datasets(current: Config) -> None:
        """A dataset made or changed through the Catalog API: its Profile switch (for messages
        that carry none) and its event TTL."""
        applier.profile_datasets = _profile_datasets(current)
        applier.event_ttl_ms = answers.ttl_ms = event_ttls(current)

    datasets.listeners.append(on_datasets)
    on_datasets(config)
    writer = asyncio.Lock()
    applier.placement = role.placement
    handler = role.guard(InOrder(ProfileHandler(nc, js, applier, name, writer, stop,
                                                keepalive=config.profile.ack_wait / 3), store, js, config.nats.stream),
                         stop)
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
        await role.close()
        await browse_sub.unsubscribe()
        if browse_part_sub is not None:
            await browse_part_sub.unsubscribe()
        await policies.stop()
        await catalog.stop()
        await datasets.stop()
        await bus.close(nc)
        store.close()
        log.info("Profile worker %d stopped.", shard)


def _profile_datasets(config: Config) -> set[tuple[str, str]]:
    """Enabled for Profile now: decides for messages that carry no decision of their own."""
    return {(d.sandbox, d.id) for d in config.datasets if d.profile}


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
