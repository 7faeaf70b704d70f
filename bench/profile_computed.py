"""What computed attributes cost the profile worker: throughput with five definitions, as a
ratio to throughput with none, both measured in the same run.

    python -m bench.profile_computed            # --events 50000 --repeat 3 [--no-stream]

1. **Applier, in process.** The worker's apply step exactly as the profile worker runs it
   (decode each bus message, one LMDB write transaction with fsync per batch of 500), fed
   pre-built batches against a fresh temporary store. No NATS: this isolates what computed
   attributes add to a batch (reading the field, filtering, a bucket read-modify-write per
   matching definition, the bounded sweep).
2. **Worker process, real stream.** A nats-server with a pre-filled `INGEST` stream, drained
   by `python -m inlet worker profile` with the five definitions in its config file or none;
   timed from the consumer's first delivery until its lag is 0. A fresh server and store per
   run.

Runs alternate between the two configurations (none, five, five, none, ...) so drift on a
shared machine does not favour either; medians are reported, with every run.
"""

from __future__ import annotations

import argparse
import asyncio
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

import msgspec
import nats

from inlet import messages, subjects
from inlet.computed_attributes import Definition
from inlet.config import load
from inlet.nats_server import NatsServer
from inlet.xdm import Identity
from worker.profile.apply import Applier
from worker.profile.computed import Definitions
from worker.profile.identity_graph import Rules
from worker.profile.store import Store

PEOPLE = 2_000
BATCH = 500
DAY_MS = 86_400_000
FIVE: list[dict[str, Any]] = [
    {"name": "purchases30d", "function": "SUM", "field": "commerce.order.priceTotal",
     "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 30, "unit": "DAYS"}},
    {"name": "orders7d", "function": "COUNT", "filter": {"eventType": ["commerce.purchases"]},
     "duration": {"count": 7, "unit": "DAYS"}},
    {"name": "biggestOrder12w", "function": "MAX", "field": "commerce.order.priceTotal",
     "filter": {"eventType": ["commerce.purchases"],
                "conditions": [{"field": "commerce.order.currencyCode", "op": "eq", "value": "EUR"}]},
     "duration": {"count": 12, "unit": "WEEKS"}},
    {"name": "lastPage24h", "function": "MOST_RECENT", "field": "web.webPageDetails.name",
     "filter": {"eventType": ["web.webpagedetails.pageViews"]}, "duration": {"count": 24, "unit": "HOURS"}},
    {"name": "firstOrder6m", "function": "FIRST", "field": "commerce.order.priceTotal",
     "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 6, "unit": "MONTHS"}},
]


def definitions() -> list[Definition]:
    return [msgspec.convert(d, Definition) for d in FIVE]


def events(count: int, now_ms: int, seed: int = 1) -> list[bytes]:
    """Encoded bus events for PEOPLE people: purchases and page views over the last 40 days,
    out of order, ~700 bytes of XDM each (the shape of bench/profile.py's events)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        person = rng.randrange(PEOPLE)
        ids = [Identity("Email", f"p{person}@bench.example", True, True), Identity("ECID", f"{person:038d}")]
        purchase = rng.random() < 0.4
        ts = now_ms - rng.randrange(40 * DAY_MS)
        xdm = {
            "_id": f"b{i}", "timestamp": _iso(ts), "eventType": "commerce.purchases" if purchase else "web.webpagedetails.pageViews",
            "identityMap": {"Email": [{"id": ids[0].id, "primary": True, "authenticatedState": "authenticated"}],
                            "ECID": [{"id": ids[1].id}]},
            "commerce": {"order": {"priceTotal": round(rng.uniform(5, 500), 2),
                                   "currencyCode": rng.choice(["EUR", "USD"])}} if purchase else {},
            "web": {"webPageDetails": {"URL": f"https://shop.example/p/{rng.randrange(10_000)}?ref={rng.getrandbits(32):x}",
                                       "name": rng.choice(["home", "product", "cart", "checkout"])}},
            "environment": {"browserDetails": {"userAgent": "Mozilla/5.0 (X11; Linux x86_64) bench", "viewportWidth": 1280}},
        }
        event = messages.Event(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-events", source="bench",
                               message_id=f"prod/demo-events/b{i}", received_ms=now_ms, timestamp_ms=ts,
                               event_type=str(xdm["eventType"]), identities=ids, xdm=msgspec.Raw(msgspec.json.encode(xdm)))
        out.append(messages.encode(event))
    return out


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def applier_rate(encoded: list[bytes], defs: list[Definition], now_ms: int) -> float:
    """Events/s through decode + `Applier.apply_batch`, batches of BATCH, fresh store."""
    tmp = Path(tempfile.mkdtemp(prefix="inlet-bench-ca-"))
    store = Store(tmp / "lmdb", 4 * 1024**3)
    try:
        applier = Applier(store, Rules(load({}).identity), 7 * DAY_MS, clock=lambda: now_ms / 1000,
                          definitions=Definitions(defs))
        start = time.perf_counter()
        for offset in range(0, len(encoded), BATCH):
            batch: list[messages.BusMessage | None] = [messages.decode(m) for m in encoded[offset:offset + BATCH]]
            assert applier.apply_batch(batch) == []
        return len(encoded) / (time.perf_counter() - start)
    finally:
        store.close()
        shutil.rmtree(tmp)


def _toml(defs: list[dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return msgspec.json.encode(v).decode()

    return "".join("[[computed_attributes]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in d.items()) for d in defs)


async def _fill(url: str, encoded: list[bytes]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=20_000)
    from nats.js.api import StreamConfig

    await js.add_stream(StreamConfig(name="INGEST", subjects=subjects.INGEST_SUBJECTS, duplicate_window=600))
    futures = []
    for data in encoded:
        event = messages.decode(data)
        assert isinstance(event, messages.Event)
        subject = subjects.ingest("prod", "event", subjects.partition(event.identities[0].key, 16))
        futures.append(await js.publish_async(subject, data, headers={"Nats-Msg-Id": event.message_id}))
    await asyncio.gather(*futures)
    await nc.close()


async def _drain_seconds(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> float:
    """From the consumer's first delivery until nothing is pending or unacknowledged."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        deadline = time.monotonic() + timeout
        start: float | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the profile worker exited with {proc.returncode}")
            try:
                info = await js.consumer_info("INGEST", "profile-0")
            except Exception:  # not created yet
                await asyncio.sleep(0.01)
                continue
            if start is None and info.delivered.stream_seq:
                start = time.perf_counter()
            if start is not None and not (info.num_pending or 0) and not (info.num_ack_pending or 0):
                return time.perf_counter() - start
            await asyncio.sleep(0.01)
        raise RuntimeError("the worker did not drain in time")
    finally:
        await nc.close()


def stream_rate(encoded: list[bytes], defs: list[dict[str, Any]]) -> float:
    """Events/s of one profile worker process draining a pre-filled stream."""
    tmp = Path(tempfile.mkdtemp(prefix="inlet-bench-ca-"))
    server = NatsServer(tmp / "nats")
    try:
        url = server.start()
        asyncio.run(_fill(url, encoded))
        config = tmp / "inlet.toml"
        config.write_text('org = "DEMO@AdobeOrg"\nlog_level = "INFO"\n' + _toml(defs))
        env = {**os.environ, "INLET_CONFIG": str(config), "INLET_NATS_URL": url, "INLET_DATA_DIR": str(tmp / "data")}
        log = tmp / "worker.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "inlet", "worker", "profile"], env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            seconds = asyncio.run(_drain_seconds(url, proc))
        finally:
            proc.terminate()
            proc.wait(30)
        errors = [line for line in log.read_text(errors="replace").splitlines() if '"ERROR"' in line or " ERROR " in line]
        if errors:
            raise RuntimeError("the worker logged errors:\n" + "\n".join(errors[:5]))
        return len(encoded) / seconds
    finally:
        server.stop()
        shutil.rmtree(tmp)


def _runs(repeat: int, measure: Any) -> tuple[list[float], list[float]]:
    none: list[float] = []
    five: list[float] = []
    for i in range(repeat):
        order = [(none, False), (five, True)] if i % 2 == 0 else [(five, True), (none, False)]
        for sink, with_five in order:
            sink.append(measure(with_five))
    return none, five


def _line(what: str, none: list[float], five: list[float]) -> str:
    ratio = statistics.median(five) / statistics.median(none)
    runs = " / ".join(f"{n:,.0f} vs {f:,.0f}" for n, f in zip(none, five))
    return (f"{what}: none {statistics.median(none):,.0f} events/s, five {statistics.median(five):,.0f} events/s, "
            f"ratio {ratio:.2f}  (runs none vs five: {runs})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_computed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; medians are reported (3)")
    parser.add_argument("--no-stream", action="store_true", help="skip the worker-process runs")
    args = parser.parse_args(argv)
    from bench import machine

    print(f"machine: {machine.describe()}", flush=True)
    now_ms = int(time.time() * 1000)
    encoded = events(args.events, now_ms)
    print(f"{len(encoded):,} events for {PEOPLE:,} people, {sum(map(len, encoded)) // len(encoded)} bytes each "
          f"(bus message), batches of {BATCH}", flush=True)
    five = definitions()
    none, with_five = _runs(args.repeat, lambda use: applier_rate(encoded, five if use else [], now_ms))
    print(_line("applier in process", none, with_five), flush=True)
    if not args.no_stream:
        none, with_five = _runs(args.repeat, lambda use: stream_rate(encoded, FIVE if use else []))
        print(_line("worker process, pre-filled stream", none, with_five), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
