"""Profile worker figures, each beside a baseline measured in the same run:

1. throughput: one profile worker process draining a pre-filled stream (events/s), beside a
   null consumer (fetch + ack, no LMDB) on the same stream: the ceiling of consuming at all;
2. freshness: at a fixed offered rate through the gateway, the time from the gateway's 2xx
   to the event being visible in the profile API (p50/p99), sampled on every 50th event
   (its timeline polled every 5 ms; the poller's lookups/s are reported). An
   event not seen within `FRESH_TIMEOUT` is a miss: reported beside the percentiles, and any
   miss fails the run (the command exits 1), since a p99 over the events that did arrive
   says nothing about the ones that did not;
3. lookups: profile API latency (p50/p99) beside `/healthz` on the same server, both driven by
   h2load (native, so the client is not what is measured; its CPU is reported), 4 HTTP/2
   connections x 4 streams, lookups spread over 200 people;
4. peak resident memory (VmHWM) of the worker at half and at all of the drained events, and of
   the gateway, worker and nats-server after the freshness and lookup loads.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import time
import uuid
from typing import Any

import httpx
import msgspec
import nats

from bench import h2load
from bench.bodies import message
from bench.measure import Window, anon_rss_mb, peak_rss_mb, percentile
from bench.processes import Stack
from inlet import messages, subjects
from inlet.xdm import Identity

PEOPLE = 2_000
FRESH_TIMEOUT = 10.0  # seconds: an event not visible by then is a miss
# Every 50th event is watched, its person's timeline polled every 5 ms: about 2 events watched
# at a time at 1,000 events/s, a few hundred lookups/s. (Every 10th event at 2 ms made the poller
# itself the heaviest load on the gateway: thousands of lookups/s beside 1,000 events/s.)
SAMPLE_EVERY = 50
POLL_INTERVAL = 0.005
RATE_ASKED = [1000]  # the --rate of the last run, for the report


async def _fill(url: str, count: int) -> int:
    """Publish `count` ExperienceEvents as the gateway would; returns the bytes of their XDM as
    compact JSON (the lake's "same event as JSON" comparison)."""
    nc = await nats.connect(url)
    xdm_bytes = 0
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
                               xdm=msgspec.Raw(msgspec.json.encode(xdm)))
        xdm_bytes += len(event.xdm)
        futures.append(await js.publish_async(subjects.ingest("prod", "event", subjects.partition(ids[0].key, 16)),
                                              messages.encode(event), headers={"Nats-Msg-Id": event.message_id}))
    await asyncio.gather(*futures)
    await nc.close()
    return xdm_bytes


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


def throughput(events: int) -> tuple[float, float, tuple[float, float], tuple[float, float]]:
    """(worker events/s, null consumer events/s, worker (peak RSS, anonymous RSS) in MiB at half
    the events drained, the same at all of them)."""
    with Stack() as stack:
        asyncio.run(_fill(stack.nats.url, events))
        null_rate = asyncio.run(_drain_null(stack.nats.url, events))
        worker = stack.start("worker", "profile")
        deadline = time.monotonic() + 600
        start: float | None = None
        half = (math.nan, math.nan)
        while time.monotonic() < deadline:
            try:
                pending = asyncio.run(_lag(stack.nats.url, "profile-0"))
            except Exception:  # noqa: BLE001  (the worker has not created its consumer yet)
                time.sleep(0.01)
                continue
            start = start or time.perf_counter()
            if math.isnan(half[0]) and pending <= events // 2:
                half = (peak_rss_mb(worker.pid), anon_rss_mb(worker.pid))
            if pending == 0:
                rate = events / (time.perf_counter() - start)
                return rate, null_rate, half, (peak_rss_mb(worker.pid), anon_rss_mb(worker.pid))
            time.sleep(0.02)
        raise RuntimeError("the profile worker did not drain within 600 s")


async def _freshness(base: str, token: str, rate: int, seconds: float) -> tuple[list[float], int, int, float, float]:
    """(delays of the sampled events seen, sampled events never seen within FRESH_TIMEOUT,
    requests not answered 2xx, the poller's lookups per second, events/s actually answered:
    the Python client may fall behind the rate it was asked to offer)."""
    delays: list[float] = []
    missed = failed = polls = 0
    answered = 0.0  # when the last POST was answered
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def watch(event_id: str, email: str, acked: float) -> None:
            nonlocal missed, polls
            params = {"schema.name": "_xdm.context.experienceevent", "relatedSchema.name": "_xdm.context.profile",
                      "relatedEntityId": email, "relatedEntityIdNS": "Email", "limit": "5"}
            while time.perf_counter() - acked < FRESH_TIMEOUT:
                response = await client.get("/data/core/ups/access/entities", params=params, headers=headers)
                polls += 1
                if response.status_code == 200 and any(c["entityId"] == event_id for c in response.json()["children"]):
                    delays.append(time.perf_counter() - acked)
                    return
                await asyncio.sleep(POLL_INTERVAL)
            missed += 1

        async def send(i: int) -> None:
            nonlocal failed, answered
            event_id = uuid.uuid4().hex
            body = message(event_id)
            email = body["body"]["xdmEntity"]["identityMap"]["Email"][0]["id"]
            response = await client.post("/collection/demo", json=body)
            answered = max(answered, time.perf_counter())
            if response.status_code != 200:
                failed += 1
            elif i % SAMPLE_EVERY == 0:
                await watch(event_id, email, time.perf_counter())

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            tasks.append(asyncio.create_task(send(i)))
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return sorted(delays), missed, failed, polls / elapsed, (len(tasks) - failed) / max(answered - start, 1e-9)


def _h2load_get(base: str, paths: list[str], token: str, seconds: float) -> tuple[list[float], float, int]:
    """(sorted latencies in s, h2load's CPU in % of one core, failed requests): GETs of `paths`
    in turn for `seconds` after a 1 s warm-up, 4 connections x 4 streams (concurrency 16)."""
    window = Window(1.0, seconds)
    lost, rates = h2load.run([base + p for p in paths], None, 1, 4, 4, window, {},
                             headers=(f"authorization: Bearer {token}",))
    return sorted(window.latencies), 100 * rates.get("client", math.nan), window.failed + lost


def run(events: int, rate: int, seconds: float, repeat: int) -> dict[str, Any]:
    out: dict[str, list[Any]] = {
        "worker": [], "null": [], "worker_rss_half": [], "worker_rss_all": [], "worker_anon_half": [],
        "worker_anon_all": [],
        "fresh_p50": [], "fresh_p99": [], "fresh_seen": [], "fresh_missed": [], "fresh_failed": [], "fresh_polls": [], "fresh_offered": [],
        "lookup_p50": [], "lookup_p99": [], "lookup_rps": [], "lookup_client_cpu": [], "lookup_failed": [],
        "healthz_p50": [], "healthz_p99": [], "healthz_rps": [], "healthz_client_cpu": [], "healthz_failed": [],
        "rss_gateway": [], "rss_worker": [], "rss_nats": []}
    RATE_ASKED[0] = rate
    for _ in range(repeat):
        worker_rate, null_rate, half, full = throughput(events)
        out["worker"].append(worker_rate)
        out["null"].append(null_rate)
        out["worker_rss_half"].append(half[0])
        out["worker_rss_all"].append(full[0])
        out["worker_anon_half"].append(half[1])
        out["worker_anon_all"].append(full[1])
        with Stack() as stack:
            worker = stack.start("worker", "profile")
            gateway = stack.start("gateway")
            base = f"http://127.0.0.1:{stack.port}"
            delays, missed, failed, polls, offered = asyncio.run(_freshness(base, stack.token, rate, seconds))
            out["fresh_polls"].append(polls)
            out["fresh_offered"].append(offered)
            out["fresh_p50"].append(percentile(delays, 50) * 1000)
            out["fresh_p99"].append(percentile(delays, 99) * 1000)
            out["fresh_seen"].append(len(delays))
            out["fresh_missed"].append(missed)
            out["fresh_failed"].append(failed)
            sent = []
            with httpx.Client(base_url=base, timeout=30) as client:
                for i in range(200):
                    event_id = uuid.uuid4().hex
                    client.post("/collection/demo", json=message(event_id))
                    sent.append(f"{event_id[:6]}@bench.example")
            while asyncio.run(_lag(stack.nats.url, "profile-0")):
                time.sleep(0.05)  # every event applied before reads are measured
            lookups = [f"/data/core/ups/access/entities?schema.name=_xdm.context.profile&entityId={email}"
                       "&entityIdNS=Email" for email in sent]
            for name, paths in (("lookup", lookups), ("healthz", ["/healthz"])):
                latencies, client_cpu, lost = _h2load_get(base, paths, stack.token, seconds)
                out[f"{name}_p50"].append(percentile(latencies, 50) * 1000)
                out[f"{name}_p99"].append(percentile(latencies, 99) * 1000)
                out[f"{name}_rps"].append(len(latencies) / seconds)
                out[f"{name}_client_cpu"].append(client_cpu)
                out[f"{name}_failed"].append(lost)
            assert stack.nats.process is not None
            out["rss_gateway"].append(peak_rss_mb(gateway.pid))
            out["rss_worker"].append(peak_rss_mb(worker.pid))
            out["rss_nats"].append(peak_rss_mb(stack.nats.process.pid))
    return out


def failed(out: dict[str, list[Any]]) -> bool:
    """Any freshness miss or failed request fails the run."""
    return any(sum(out[k]) for k in ("fresh_missed", "fresh_failed", "lookup_failed", "healthz_failed"))


def report(out: dict[str, list[Any]]) -> str:
    m = {k: statistics.median(v) for k, v in out.items()}
    verdict = ("FAILED: " + ", ".join(f"{k} {sum(out[k])}" for k in ("fresh_missed", "fresh_failed", "lookup_failed",
                                                                    "healthz_failed") if sum(out[k]))
               if failed(out) else "no misses, no failed requests")
    return "\n".join([
        "| figure | inlet | baseline (same run) | ratio |",
        "| --- | --- | --- | --- |",
        f"| profile worker, pre-filled stream (events/s) | {m['worker']:,.0f} | null consumer {m['null']:,.0f} | {m['worker'] / m['null']:.2f} |",
        f"| freshness, gateway 2xx → visible in API, p50 (ms) | {m['fresh_p50']:.1f} | "
        f"events answered 2xx/s during it (asked: {RATE_ASKED[0]:,}/s) {m['fresh_offered']:,.0f} | |",
        f"| freshness p99 (ms); sampled events seen / never seen in {FRESH_TIMEOUT:g} s | {m['fresh_p99']:.1f} | "
        f"seen {sum(out['fresh_seen'])}, missed {sum(out['fresh_missed'])}; poller {m['fresh_polls']:,.0f} lookups/s | |",
        f"| profile lookup p50 (ms), h2load | {m['lookup_p50']:.1f} | /healthz {m['healthz_p50']:.1f} | {m['lookup_p50'] / m['healthz_p50']:.2f} |",
        f"| profile lookup p99 (ms), h2load | {m['lookup_p99']:.1f} | /healthz {m['healthz_p99']:.1f} | {m['lookup_p99'] / m['healthz_p99']:.2f} |",
        f"| requests/s at concurrency 16 | {m['lookup_rps']:,.0f} | /healthz {m['healthz_rps']:,.0f} | {m['lookup_rps'] / m['healthz_rps']:.2f} |",
        f"| h2load client CPU (% of one core) | {m['lookup_client_cpu']:.0f} | /healthz {m['healthz_client_cpu']:.0f} | |",
        f"| worker peak RSS (MiB) at half / all of the drained events | {m['worker_rss_half']:.0f} / {m['worker_rss_all']:.0f} | "
        f"anonymous (heap) {m['worker_anon_half']:.0f} / {m['worker_anon_all']:.0f}; the rest is LMDB's mapped store | |",
        f"| peak RSS after freshness + lookups (MiB): gateway / worker / nats-server | "
        f"{m['rss_gateway']:.0f} / {m['rss_worker']:.0f} / {m['rss_nats']:.0f} | | |",
        "",
        f"verdict: {verdict}",
        f"runs: {len(out['worker'])}; raw: " + json.dumps({k: [round(x, 1) for x in v] for k, v in out.items()}),
    ])
