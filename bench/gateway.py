"""Gateway ingestion throughput and latency, against a bare Starlette baseline, in one run.

Two loads, each against the real gateway (with nats-server and, optionally, the workers) and
against `bench.baseline` on the same Hypercorn settings:

1. `single`: h2load posting one streaming message per request over HTTP/2. h2load repeats one
   body, so after the first request JetStream answers from its dedupe index: this measures the
   whole request path (HTTP/2, decode, validate, publish, ack) with a duplicate ack.
2. `batch`: unique events, 100 per request, to `/collection/batch/demo`, from a Python HTTP/2
   client with pre-encoded bodies: every event is new and stored, so this is accepted events/s.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import httpx

from bench import load
from bench.processes import Stack

ORG = "DEMO@AdobeOrg"


def message(event_id: str) -> dict[str, Any]:
    return {
        "header": {"schemaRef": {"id": "https://ns.adobe.com/demo/schemas/event"}, "imsOrgId": ORG,
                   "datasetId": "demo-events", "source": {"name": "bench"}},
        "body": {"xdmEntity": {"_id": event_id, "timestamp": "2026-11-23T10:00:00Z",
                               "eventType": "commerce.purchases",
                               "identityMap": {"Email": [{"id": f"{event_id[:6]}@bench.example", "primary": True}]},
                               "commerce": {"order": {"priceTotal": 42.5, "currencyCode": "EUR"}},
                               "web": {"webPageDetails": {"URL": "https://shop.example/checkout", "name": "checkout"}}}},
    }


async def _batch_load(base: str, bodies: list[bytes], concurrency: int) -> tuple[float, int, list[float]]:
    """Send every body once, `concurrency` at a time over one HTTP/2 connection."""
    latencies: list[float] = []
    accepted = 0
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(base_url=base, http2=True, timeout=60) as client:
        async def worker() -> None:
            nonlocal accepted
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                response = await client.post("/collection/batch/demo", content=body,
                                             headers={"content-type": "application/json"})
                latencies.append(time.perf_counter() - start)
                if response.status_code == 207:
                    accepted += sum(1 for r in response.json()["responses"] if "xactionId" in r)
                elif response.status_code == 200:  # the baseline's answer
                    accepted += 100
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return elapsed, accepted, latencies


def _batch_bodies(count: int) -> list[bytes]:
    return [json.dumps({"messages": [message(uuid.uuid4().hex) for _ in range(100)]}).encode() for _ in range(count)]


def run(seconds: float, clients: int, streams: int, repeat: int, batches: int, workers: bool) -> dict[str, Any]:
    results: dict[str, list[Any]] = {"gateway_single": [], "baseline_single": [], "gateway_batch": [], "baseline_batch": []}
    single_body = json.dumps(message("bench-fixed-id")).encode()
    with Stack() as stack:
        if workers:
            stack.start("worker", "profile")
            stack.start("worker", "lake")
        stack.start("gateway")
        baseline_port = stack.start_baseline()
        gateway = f"http://127.0.0.1:{stack.port}"
        baseline = f"http://127.0.0.1:{baseline_port}"
        for _ in range(repeat):
            if load.available():
                results["baseline_single"].append(load.run(f"{baseline}/collection/demo", single_body, seconds, clients, streams))
                results["gateway_single"].append(load.run(f"{gateway}/collection/demo", single_body, seconds, clients, streams))
            for name, base in (("baseline_batch", baseline), ("gateway_batch", gateway)):
                elapsed, accepted, latencies = asyncio.run(_batch_load(base, _batch_bodies(batches), clients * streams))
                latencies.sort()
                results[name].append({"events_per_s": accepted / elapsed, "accepted": accepted,
                                      "p50_ms": latencies[len(latencies) // 2] * 1000,
                                      "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000})
    return results


def report(results: dict[str, list[Any]]) -> str:
    lines = ["| load | server | req/s (median) | events/s (median) | p50 ms | p99 ms | failed |", "| --- | --- | --- | --- | --- | --- | --- |"]
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")
    for name in ("baseline_single", "gateway_single"):
        runs = results[name]
        if runs:
            lines.append(f"| single (h2load) | {name.split('_')[0]} | {median([r.requests_per_s for r in runs]):,.0f} | "
                         f"{median([r.requests_per_s for r in runs]):,.0f} | {median([r.p50_ms for r in runs]):.1f} | "
                         f"{median([r.p99_ms for r in runs]):.1f} | {sum(r.failed for r in runs)} |")
    for name in ("baseline_batch", "gateway_batch"):
        runs = results[name]
        lines.append(f"| batch of 100 (httpx h2) | {name.split('_')[0]} | {median([r['events_per_s'] / 100 for r in runs]):,.0f} | "
                     f"{median([r['events_per_s'] for r in runs]):,.0f} | {median([r['p50_ms'] for r in runs]):.1f} | "
                     f"{median([r['p99_ms'] for r in runs]):.1f} | 0 |")
    if results["gateway_single"]:
        ratio = median([r.requests_per_s for r in results["gateway_single"]]) / median([r.requests_per_s for r in results["baseline_single"]])
        lines.append(f"\nsingle-message ratio gateway/baseline: {ratio:.2f}")
    ratio_b = median([r["events_per_s"] for r in results["gateway_batch"]]) / median([r["events_per_s"] for r in results["baseline_batch"]])
    lines.append(f"batch ratio gateway/baseline: {ratio_b:.2f}")
    return "\n".join(lines)
