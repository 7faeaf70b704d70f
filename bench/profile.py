"""Profile worker figures, each beside a baseline measured in the same run:

1. throughput: one profile worker process draining a pre-filled stream (events/s), beside a
   null consumer (fetch + ack, no LMDB) on the same stream: the ceiling of consuming at all;
2. freshness: at a fixed offered rate through the gateway, the time from the gateway's 2xx
   to the event being visible in the profile API (p50/p99), sampled on every 10th event;
3. lookups: profile API latency at concurrency 16 (p50/p99), beside `/healthz` at the same
   concurrency (the HTTP floor).
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from typing import Any

import httpx
import msgspec
import nats

from bench.bodies import message
from bench.processes import Stack, wait_drained
from inlet import messages, subjects
from inlet.xdm import Identity

PEOPLE = 2_000


async def _fill(url: str, count: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=20_000)
    from nats.js.api import StreamConfig

    await js.add_stream(StreamConfig(name="INGEST", subjects=subjects.INGEST_SUBJECTS, duplicate_window=600))
    rng = random.Random(1)
    futures = []
    for i in range(count):
        person = rng.randrange(PEOPLE)
        ids = [Identity("Email", f"p{person}@bench.example", True), Identity("ECID", f"{person:038d}")]
        xdm = message(f"b{i}")["body"]["xdmEntity"]
        # Realistic variety, so compression is not flattered by identical rows.
        xdm["identityMap"]["Email"][0]["id"] = ids[0].id
        xdm["commerce"]["order"]["priceTotal"] = round(rng.uniform(5, 500), 2)
        xdm["web"]["webPageDetails"]["URL"] = f"https://shop.example/p/{rng.randrange(10_000)}?ref={uuid.uuid4().hex[:8]}"
        xdm["timestamp"] = f"2026-11-23T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{i % 1000:03d}Z"
        event = messages.Event(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-events", source="bench",
                               message_id=f"prod/demo-events/b{i}", received_ms=int(time.time() * 1000),
                               timestamp_ms=1_795_000_000_000 + i, event_type="commerce.purchases", identities=ids,
                               xdm=msgspec.Raw(json.dumps(xdm).encode()))
        futures.append(await js.publish_async(subjects.ingest("prod", "event", subjects.partition(ids[0].key, 16)),
                                              messages.encode(event), headers={"Nats-Msg-Id": event.message_id}))
    await asyncio.gather(*futures)
    await nc.close()


async def _drain_null(url: str, count: int) -> float:
    """The baseline: fetch + ack everything, doing nothing else."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe("", durable="null", stream="INGEST")
    start, seen = time.perf_counter(), 0
    while seen < count:
        msgs = await sub.fetch(500, timeout=5)
        for msg in msgs:
            await msg.ack()
        seen += len(msgs)
    elapsed = time.perf_counter() - start
    await nc.close()
    return count / elapsed


async def _lag(url: str, consumer: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info("INGEST", consumer)
        return int((info.num_pending or 0) + (info.num_ack_pending or 0))
    finally:
        await nc.close()


def throughput(events: int) -> tuple[float, float]:
    with Stack() as stack:
        asyncio.run(_fill(stack.nats.url, events))
        null_rate = asyncio.run(_drain_null(stack.nats.url, events))
        stack.start("worker", "profile")
        return events / wait_drained(lambda: asyncio.run(_lag(stack.nats.url, "profile-0"))), null_rate


async def _freshness(base: str, token: str, rate: int, seconds: float) -> list[float]:
    delays: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def watch(event_id: str, email: str, acked: float) -> None:
            params = {"schema.name": "_xdm.context.experienceevent", "relatedSchema.name": "_xdm.context.profile",
                      "relatedEntityId": email, "relatedEntityIdNS": "Email", "limit": "5"}
            while time.perf_counter() - acked < 10:
                response = await client.get("/data/core/ups/access/entities", params=params, headers=headers)
                if response.status_code == 200 and any(c["entityId"] == event_id for c in response.json()["children"]):
                    delays.append(time.perf_counter() - acked)
                    return
                await asyncio.sleep(0.002)

        async def send(i: int) -> None:
            event_id = uuid.uuid4().hex
            body = message(event_id)
            email = body["body"]["xdmEntity"]["identityMap"]["Email"][0]["id"]
            response = await client.post("/collection/demo", json=body)
            if response.status_code == 200 and i % 10 == 0:
                await watch(event_id, email, time.perf_counter())

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            tasks.append(asyncio.create_task(send(i)))
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
    return delays


async def _lookups(base: str, token: str, emails: list[str], requests: int, path: str | None = None) -> list[float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(2)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def worker(n: int) -> None:
            for _ in range(n):
                start = time.perf_counter()
                if path:
                    await client.get(path)
                else:
                    params = {"schema.name": "_xdm.context.profile", "entityId": rng.choice(emails), "entityIdNS": "Email"}
                    response = await client.get("/data/core/ups/access/entities", params=params, headers=headers)
                    assert response.status_code == 200, response.text
                latencies.append(time.perf_counter() - start)
        await asyncio.gather(*(worker(requests // 16) for _ in range(16)))
    return sorted(latencies)


def run(events: int, rate: int, seconds: float, repeat: int) -> dict[str, Any]:
    out: dict[str, list[Any]] = {"worker": [], "null": [], "fresh_p50": [], "fresh_p99": [],
                                 "lookup_p50": [], "lookup_p99": [], "healthz_p50": [], "healthz_p99": []}
    for _ in range(repeat):
        worker_rate, null_rate = throughput(events)
        out["worker"].append(worker_rate)
        out["null"].append(null_rate)
        with Stack() as stack:
            stack.start("worker", "profile")
            stack.start("gateway")
            base = f"http://127.0.0.1:{stack.port}"
            delays = sorted(asyncio.run(_freshness(base, stack.token, rate, seconds)))
            out["fresh_p50"].append(delays[len(delays) // 2] * 1000)
            out["fresh_p99"].append(delays[int(len(delays) * 0.99)] * 1000)
            sent = []
            with httpx.Client(base_url=base, timeout=30) as client:
                for i in range(200):
                    event_id = uuid.uuid4().hex
                    client.post("/collection/demo", json=message(event_id))
                    sent.append(f"{event_id[:6]}@bench.example")
            while asyncio.run(_lag(stack.nats.url, "profile-0")):
                time.sleep(0.05)  # every event applied before reads are measured
            emails = sent
            lookups = asyncio.run(_lookups(base, stack.token, emails, 3200))
            floor = asyncio.run(_lookups(base, stack.token, emails, 3200, path="/healthz"))
            out["lookup_p50"].append(lookups[len(lookups) // 2] * 1000)
            out["lookup_p99"].append(lookups[int(len(lookups) * 0.99)] * 1000)
            out["healthz_p50"].append(floor[len(floor) // 2] * 1000)
            out["healthz_p99"].append(floor[int(len(floor) * 0.99)] * 1000)
    return out


def report(out: dict[str, list[Any]]) -> str:
    m = {k: statistics.median(v) for k, v in out.items()}
    return "\n".join([
        "| figure | inlet | baseline (same run) | ratio |",
        "| --- | --- | --- | --- |",
        f"| profile worker, pre-filled stream (events/s) | {m['worker']:,.0f} | null consumer {m['null']:,.0f} | {m['worker'] / m['null']:.2f} |",
        f"| freshness, gateway 2xx → visible in API, p50 (ms) | {m['fresh_p50']:.1f} | | |",
        f"| freshness p99 (ms) | {m['fresh_p99']:.1f} | | |",
        f"| profile lookup at concurrency 16, p50 (ms) | {m['lookup_p50']:.1f} | /healthz {m['healthz_p50']:.1f} | {m['lookup_p50'] / m['healthz_p50']:.2f} |",
        f"| profile lookup p99 (ms) | {m['lookup_p99']:.1f} | /healthz {m['healthz_p99']:.1f} | {m['lookup_p99'] / m['healthz_p99']:.2f} |",
        f"\nruns: {len(out['worker'])}; raw: " + json.dumps({k: [round(x, 1) for x in v] for k, v in out.items()}),
    ])
