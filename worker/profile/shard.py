"""A profile shard's membership in the tier: its lease, its slots, and how it answers.

With one shard nothing changes but the lease (one writer per shard holds for one shard too).
With N shards (docs/scaling.md) the shard keeps data only for the owners in its slots
(`placement.py`), answers part requests for them, and assembles any lookup it receives from
the shards that hold the profile's pieces (`assemble.py`).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from inlet.config import Config
from worker.consume import Handler
from worker.profile import lease as leases
from worker.profile.assemble import ShardedLookups, part_subject
from worker.profile.lookup import Lookups
from worker.profile.placement import Placement

log = logging.getLogger("inlet.worker.profile.shard")


class ShardRole:
    def __init__(self, lease: leases.Lease, placement: Placement | None, sharded: ShardedLookups | None,
                 local: Lookups) -> None:
        self.lease = lease
        self.placement = placement
        self.sharded = sharded
        self.local = local
        self.part_sub: Subscription | None = None
        self.renewer: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None

    async def answer(self, data: bytes) -> bytes:
        if self.sharded is None:
            return self.local.answer(data)
        return await self.sharded.answer(data)

    def guard(self, handler: Handler, stop: asyncio.Event) -> LeasedHandler:
        return LeasedHandler(handler, self.lease, stop)

    async def close(self) -> None:
        for task in (self.renewer, self.watcher):
            if task is not None:
                task.cancel()
        if self.part_sub is not None:
            await self.part_sub.unsubscribe()
        await self.lease.release()
        if self.sharded is not None:
            self.sharded.close()


async def join(config: Config, nc: Client, js: JetStreamContext, shard: int, local: Lookups,
               stop: asyncio.Event) -> ShardRole:
    """Take the shard's lease (or exit with status 3 naming its holder), then set up the
    shard's part of the tier."""
    shards = config.profile.shards
    if not 0 <= shard < shards:
        log.error("Shard %d does not exist: profile.shards is %d.", shard, shards)
        sys.exit(leases.REFUSED_EXIT)
    kv = await leases.open_bucket(js, config.profile.shard_lease, config.nats.replicas)
    lease = leases.Lease(kv, shard, shards, config.profile.shard_lease)
    try:
        await lease.acquire()
    except leases.LeaseRefused as exc:
        log.error("%s.", exc)
        sys.exit(leases.REFUSED_EXIT)
    placement = sharded = None
    if shards > 1:
        placement = Placement(shard, shards, config.nats.partitions)
        sharded = ShardedLookups(nc, local, placement, config, config.data_path / "profile" / f"scratch-{shard}")
    role = ShardRole(lease, placement, sharded, local)
    role.renewer = asyncio.create_task(lease.renew_forever())
    role.watcher = asyncio.create_task(_stop_when_lost(lease, stop))
    if sharded is not None:
        role.part_sub = await nc.subscribe(part_subject(shard), cb=sharded.serve_part)
    return role


async def _stop_when_lost(lease: leases.Lease, stop: asyncio.Event) -> None:
    await lease.lost.wait()
    stop.set()


class LeasedHandler:
    """Applies and acks only under a valid lease: paused while it lapses (NATS away), and
    nothing more once another process holds it (the batch is left to be redelivered)."""

    def __init__(self, inner: Handler, lease: leases.Lease, stop: asyncio.Event) -> None:
        self.inner = inner
        self.lease = lease
        self.stop = stop

    async def apply(self, msgs: list[Msg]) -> list[Msg]:
        if not await self.lease.until_valid():
            self.stop.set()
            return []
        done = await self.inner.apply(msgs)
        if not self.lease.valid():
            log.warning("The shard lease lapsed during a batch; leaving it unacknowledged (it is redelivered).")
            return []
        return done

    async def tick(self) -> list[Msg]:
        return await self.inner.tick()

    async def close(self) -> list[Msg]:
        return await self.inner.close()
