"""The profile worker: consumes `INGEST` into the LMDB profile store and answers lookups.

One worker per shard; shard `i` of `profile.shards` owns a contiguous range of subject
partitions (durable consumer `profile-<i>`) and keeps its store under
`<data dir>/profile/<i>`.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from nats.aio.msg import Msg

from inlet import bus, merge_policies, subjects, telemetry
from inlet.config import Config
from worker import consume
from worker.profile.apply import Applier
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
    answers = Lookups(store, config, policies=policies)

    async def on_lookup(msg: Msg) -> None:
        await msg.respond(answers.answer(msg.data))

    lookup_sub = await nc.subscribe(subjects.PROFILE_QUERY, queue="profile", cb=on_lookup)
    applier = Applier(store, Rules(config.identity), int(config.profile.applied_ttl * 1000), event_ttls(config))
    handler = ProfileHandler(nc, js, applier, name)
    pusher = asyncio.create_task(telemetry.push_forever(js, telemetry.process_name(name)))
    log.info("Profile worker %d consuming %s.", shard, config.nats.stream)
    try:
        await consume.run(js, config.nats.stream, name, handler, config.profile.batch, stop)
    finally:
        pusher.cancel()
        await lookup_sub.unsubscribe()
        await policies.stop()
        await bus.close(nc)
        store.close()
        log.info("Profile worker %d stopped.", shard)
