"""`inlet shards reshard --to N`: change the number of profile shards without losing anything.

Run it with the profile shards stopped (gateways may keep accepting: the stream holds what
arrives meanwhile). Slots are fixed (`nats.partitions`), so when the new count is a multiple of
the old one and divides the slots, each new shard's slots lie inside exactly one old shard's
slots; that old store already holds the whole graph, the accounts and the data of those slots.
So new shard `j` starts from a compacted LMDB copy of old shard `j * old // new`, and the old
durable consumers are deleted: each new shard's consumer starts at the stream's beginning and
the `applied` message ids skip, without effect, everything its store already applied
(`profile.applied_ttl` must cover `nats.max_age`, as it does by default). Data of slots a
shard no longer owns stays in its copy, unread. The old stores are kept under
`<data dir>/profile/before-reshard-<time>/` until you delete them. docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time

import lmdb

from inlet import bus
from inlet.config import Config


def plan(old: int, new: int, partitions: int) -> list[int]:
    """For each new shard, the old shard whose store it starts from; refuses counts whose
    slot ranges would straddle two old shards."""
    if new % old or partitions % new:
        raise ValueError(f"cannot reshard {old} → {new} over {partitions} slots: the new count must be a multiple "
                         f"of the old one and divide nats.partitions")
    return [j * old // new for j in range(new)]


def copy_stores(config: Config, old: int, new: int) -> str:
    root = config.data_path / "profile"
    sources = plan(old, new, config.nats.partitions)
    staging = root / "reshard-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for j, k in enumerate(sources):
        env = lmdb.open(str(root / str(k)), readonly=True, lock=False, max_dbs=32)
        try:
            (staging / str(j)).mkdir()
            env.copy(str(staging / str(j)), compact=True)
        finally:
            env.close()
    kept = root / f"before-reshard-{int(time.time())}"
    kept.mkdir()
    for k in range(old):
        if (root / str(k)).exists():
            (root / str(k)).rename(kept / str(k))
    for j in range(new):
        (staging / str(j)).rename(root / str(j))
    staging.rmdir()
    return str(kept)


async def delete_consumers(config: Config, old: int) -> None:
    nc = await bus.connect(config, name="inlet-reshard")
    try:
        js = nc.jetstream()
        for k in range(old):
            try:
                await js.delete_consumer(config.nats.stream, f"profile-{k}")
            except Exception as exc:
                print(f"consumer profile-{k}: {exc}", file=sys.stderr)
    finally:
        await bus.close(nc)


def main(argv: list[str], config: Config) -> int:
    parser = argparse.ArgumentParser(prog="inlet shards", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    reshard = sub.add_parser("reshard", help="change the number of profile shards (shards stopped)")
    reshard.add_argument("--from", dest="old", type=int, default=config.profile.shards,
                         help="the current number of shards (default: profile.shards)")
    reshard.add_argument("--to", dest="new", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        plan(args.old, args.new, config.nats.partitions)
    except ValueError as exc:
        print(f"inlet shards: {exc}", file=sys.stderr)
        return 2
    kept = copy_stores(config, args.old, args.new)
    asyncio.run(delete_consumers(config, args.old))
    print(f"Resharded {args.old} → {args.new}; old stores kept in {kept}. Start {args.new} shards with "
          f"INLET_PROFILE_SHARDS={args.new}.")
    return 0
