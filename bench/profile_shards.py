"""Profile shards on a 3-node NATS cluster (R3): throughput with 1, 2 and 4 shards, and what a
lookup costs when the profile's identities live on other shards (docs/scaling.md).

    python -m bench.profile_shards          # --events 20000 --lookups 400

1. A pre-filled INGEST stream of `events` ExperienceEvents (2,000 people, each event with an
   Email and an ECID, plus 10% that join two people's graphs) is drained by 1, 2, then 4
   shard processes on fresh stores (consumers deleted in between): events/s from the first
   delivery to lag 0 on every shard.
2. Lookups straight on `inlet.query.profile` (NATS request/reply, no HTTP, so the fan-out is
   what is measured), sequential, p50/p99: one shard, then four shards for profiles whose
   identities' data lives on 1 shard and on 2+ shards.
3. Store size: bytes of LMDB per profile with one shard (the whole store), and the share of
   the graph (replicated to every shard).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lmdb
import msgspec
import nats

from bench.bodies import message
from inlet import lookups, messages, subjects
from inlet.cluster import NatsCluster
from inlet.xdm import Identity
from worker.profile.placement import Placement
from worker.profile.store import owner_id

PEOPLE = 2_000


async def fill(url: str, count: int) -> None:
    nc = await nats.connect(url.split(","))
    js = nc.jetstream(publish_async_max_pending=5_000)
    from nats.js.api import StreamConfig

    await js.add_stream(StreamConfig(name="INGEST", subjects=subjects.INGEST_SUBJECTS, duplicate_window=600,
                                     num_replicas=3))
    rng = random.Random(7)
    futures = []
    for i in range(count):
        person = rng.randrange(PEOPLE)
        ids = [Identity("Email", f"p{person}@bench.example", True), Identity("ECID", f"{person:038d}")]
        if rng.random() < 0.1:  # a shared email: two people's graphs join
            ids.append(Identity("Email", f"p{rng.randrange(PEOPLE)}@bench.example"))
        xdm = message(f"b{i}")["body"]["xdmEntity"]
        xdm["identityMap"]["Email"][0]["id"] = ids[0].id
        event = messages.Event(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-events", source="bench",
                               message_id=f"prod/demo-events/b{i}", received_ms=int(time.time() * 1000),
                               timestamp_ms=1_795_000_000_000 + i, event_type="commerce.purchases", identities=ids,
                               xdm=msgspec.Raw(msgspec.json.encode(xdm)))
        futures.append(await js.publish_async(subjects.ingest("prod", "event", subjects.partition(ids[0].key, 16)),
                                              messages.encode(event), headers={"Nats-Msg-Id": event.message_id}))
        if len(futures) >= 2_000:
            await asyncio.gather(*futures)
            futures = []
    await asyncio.gather(*futures)
    await nc.close()


async def lags(url: str, names: list[str]) -> int | None:
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        total = 0
        for name in names:
            try:
                info = await js.consumer_info("INGEST", name)
            except Exception:
                return None
            total += int((info.num_pending or 0) + (info.num_ack_pending or 0))
        return total
    finally:
        await nc.close()


async def delete_consumers(url: str) -> None:
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        for info in await js.consumers_info("INGEST"):
            await js.delete_consumer("INGEST", info.name)
    finally:
        await nc.close()


def start_shards(tmp: Path, url: str, shards: int) -> list[subprocess.Popen[bytes]]:
    data = tmp / f"data-{shards}"
    shutil.rmtree(data, ignore_errors=True)
    env = dict(os.environ, INLET_NATS_URL=url, INLET_REPLICAS="3", INLET_PROFILE_SHARDS=str(shards),
               INLET_DATA_DIR=str(data), INLET_LOG_LEVEL="WARNING")
    return [subprocess.Popen([sys.executable, "-m", "inlet", "worker", "profile", "--shard", str(i)], env=env,
                             cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(tmp / f"shard-{shards}-{i}.log", "ab"))
            for i in range(shards)]


def drain(url: str, shards: int, events: int) -> float:
    names = [f"profile-{i}" for i in range(shards)]
    start: float | None = None
    seen = False
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        lag = asyncio.run(lags(url, names))
        if lag is None:
            time.sleep(0.01)
            continue
        start = start or time.perf_counter()
        # A consumer just created on a cluster may report 0 pending for a moment: the drain
        # counts only once the backlog was seen.
        seen = seen or lag > 0
        if lag == 0 and seen:
            return events / (time.perf_counter() - start)
        time.sleep(0.05)
    raise RuntimeError("not drained in 900 s")


async def lookup_latencies(url: str, people: list[int]) -> list[float]:
    nc = await nats.connect(url.split(","))
    out = []
    try:
        for _ in range(100):  # the shards' lookup subscriptions propagate through the routes
            try:
                await nc.request(subjects.PROFILE_QUERY, b"{}", timeout=5)
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
        for person in people:
            q = lookups.ProfileLookup(org="DEMO@AdobeOrg", sandbox="prod",
                                      identity=Identity("Email", f"p{person}@bench.example"))
            t = time.perf_counter()
            reply = await nc.request(subjects.PROFILE_QUERY, lookups.encode(q), timeout=5)
            out.append((time.perf_counter() - t) * 1000)
            answer = lookups.decode_answer(reply.data)
            assert isinstance(answer, lookups.ProfileView), answer
    finally:
        await nc.close()
    return out


def spread(people: list[int], shards: int) -> tuple[list[int], list[int]]:
    """People whose Email and ECID data live on one shard, and on two."""
    placement = Placement(0, shards, 16)
    one: list[int] = []
    many: list[int] = []
    for p in people:
        a = placement.shard_of(owner_id("prod", f"Email:p{p}@bench.example"))
        b = placement.shard_of(owner_id("prod", f"ECID:{p:038d}"))
        (one if a == b else many).append(p)
    return one, many


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def store_bytes(path: Path) -> tuple[int, dict[str, int]]:
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=32)
    sizes: dict[str, int] = {}
    with env.begin() as txn:
        for name, _ in txn.cursor():
            db = env.open_db(bytes(name), txn=txn, create=False)
            st = txn.stat(db)
            sizes[bytes(name).decode()] = (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * st["psize"]
        profiles = txn.stat(env.open_db(b"profile", txn=txn, create=False))["entries"]
    env.close()
    return profiles, sizes


def run(events: int, lookups_n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"events": events}
    tmp = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    cluster = NatsCluster(tmp / "cluster", 3)
    url = cluster.start()
    try:
        asyncio.run(fill(url, events))
        rng = random.Random(3)
        sample = [rng.randrange(PEOPLE) for _ in range(lookups_n)]
        for shards in (1, 2, 4):
            asyncio.run(delete_consumers(url))
            procs = start_shards(tmp, url, shards)
            try:
                out[f"events_per_s_{shards}"] = round(drain(url, shards, events))
                if shards in (1, 4):
                    one, many = spread(sample, 4)
                    out[f"lookup_{shards}_same_shard_ms"] = asyncio.run(lookup_latencies(url, one))
                    out[f"lookup_{shards}_cross_shard_ms"] = asyncio.run(lookup_latencies(url, many))
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(60)
            if shards == 1:
                profiles, sizes = store_bytes(tmp / "data-1" / "profile" / "0")
                out["profiles"] = profiles
                out["store_bytes"] = sizes
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for key in list(out):
        if key.startswith("lookup_"):
            values = out.pop(key)
            out[key.replace("_ms", "_p50_ms")] = pct(values, 0.5) if values else None
            out[key.replace("_ms", "_p99_ms")] = pct(values, 0.99) if values else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=400)
    args = parser.parse_args()
    print(json.dumps(run(args.events, args.lookups), indent=2))


if __name__ == "__main__":
    main()
