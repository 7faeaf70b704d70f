"""Gateway ingestion: events/s and latency under HTTP/2 load, beside a bare Starlette baseline
on the same Hypercorn settings, measured in the same run. The ratio is the figure.

One run starts an embedded nats-server, a real gateway (`python -m inlet gateway`, stream
`INGEST` on disk), optionally the profile and lake workers, and `bench.baseline`; then, for each
repeat and each load, drives the baseline and the gateway with the same load (alternating which
goes first, so drift on a shared machine falls on both), and stops everything.

Loads (`--batch`, `--driver`):
- one event per request to `/collection/demo`: with the Python driver every event is unique
  and stored; with h2load (when installed) one body repeats, so the gateway's publishes after
  the first are JetStream duplicates: the whole request path minus the store's write.
- N events per request to `/collection/batch/demo`, all unique; accepted = entries of the 207
  with an `xactionId`.

For the gateway, "stored/s" is the growth of the stream's last sequence during the run: what
JetStream actually wrote, as opposed to what the gateway answered 2xx for.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from dataclasses import dataclass

import nats

from bench import h2load, load
from bench.measure import Result, cpu
from bench.processes import Stack

SERVERS = ("baseline", "gateway")


@dataclass(frozen=True)
class Load:
    batch: int
    driver: str

    @property
    def name(self) -> str:
        what = "1 event/request" if self.batch == 1 else f"{self.batch} unique events/request"
        if self.batch == 1:
            what += ", repeated body" if self.driver == "h2load" else ", unique"
        return f"{what} ({self.driver})"


def loads(batches: list[int], driver: str) -> list[Load]:
    """`driver` "all": the Python driver for every size, plus h2load for 1 event/request when
    installed; "h2load" falls back to the Python driver where h2load cannot (absent, batches)."""
    chosen = []
    for batch in batches:
        native = batch == 1 and driver in ("all", "h2load") and h2load.available()
        if native:
            chosen.append(Load(1, "h2load"))
        elif batch == 1 and driver == "h2load":
            print("bench: h2load is not installed (Debian: nghttp2-client); using the Python driver",
                  file=sys.stderr)
        if not (native and driver == "h2load"):
            chosen.append(Load(batch, "python"))
    return chosen


async def _last_seq(url: str, stream: str = "INGEST") -> float:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.last_seq)
    finally:
        await nc.close()


@dataclass
class Run:
    loads: list[Load]
    results: dict[tuple[Load, str], list[Result]]
    errors: list[str]


def run(seconds: float, concurrency: int, connections: int, batches: list[int], repeat: int, warmup: float,
        driver: str, workers: bool, keep: bool = False) -> Run:
    chosen = loads(batches, driver)
    results: dict[tuple[Load, str], list[Result]] = {(lo, s): [] for lo in chosen for s in SERVERS}
    print(f"bench: {repeat} x {len(chosen)} loads x 2 servers x {warmup + seconds:g} s "
          f"= about {repeat * len(chosen) * 2 * (warmup + seconds):.0f} s of load", file=sys.stderr, flush=True)
    with Stack(keep=keep) as stack:
        assert stack.nats.process is not None
        side = {"nats": cpu(stack.nats.process.pid)}
        if workers:
            side["profile"] = cpu(stack.start("worker", "profile").pid)
            side["lake"] = cpu(stack.start("worker", "lake").pid)
        gateway = stack.start("gateway")
        baseline_port = stack.start_baseline()
        servers = {
            "baseline": (f"http://127.0.0.1:{baseline_port}", {"server": cpu(stack.baseline.pid), **side}),
            "gateway": (f"http://127.0.0.1:{stack.port}",
                        {"server": cpu(gateway.pid), **side, "stored": lambda: asyncio.run(_last_seq(stack.nats.url))}),
        }
        for i in range(repeat):
            for lo in chosen:
                for name in SERVERS if i % 2 == 0 else tuple(reversed(SERVERS)):
                    base, probes = servers[name]
                    result = load.run(lo.driver, base, lo.batch, connections, concurrency, seconds, warmup, probes)
                    results[(lo, name)].append(result)
                    print(f"  run {i + 1}/{repeat} {lo.name} {name}: {result.events_per_s:,.0f} events/s, "
                          f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, failed {result.failed}",
                          file=sys.stderr, flush=True)
        errors = stack.errors()
    return Run(chosen, results, errors)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(outcome: Run) -> str:
    side = sorted({k for rs in outcome.results.values() for r in rs for k in r.cpu} - {"client", "server"},
                  key=lambda k: ("nats", "profile", "lake").index(k) if k in ("nats", "profile", "lake") else 9)
    cpu_names = ["client", "server", *side]
    lines = [
        f"| load | server | req/s | events/s | stored/s | p50 ms | p99 ms | failed | CPU % {'/'.join(cpu_names)} |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    ratios = []
    for lo in outcome.loads:
        for name in SERVERS:
            runs = outcome.results[(lo, name)]
            stored = [r.stored_per_s for r in runs if r.stored_per_s is not None]
            stored_text = f"{_median(stored):,.0f}" if stored else ""
            cpu = "/".join(f"{_median([r.cpu.get(c, 0.0) for r in runs]):.0f}" for c in cpu_names)
            lines.append(
                f"| {lo.name} | {name} | {_median([r.requests_per_s for r in runs]):,.0f} | "
                f"{_median([r.events_per_s for r in runs]):,.0f} | {stored_text} | "
                f"{_median([r.p50_ms for r in runs]):.1f} | {_median([r.p99_ms for r in runs]):.1f} | "
                f"{sum(r.failed for r in runs)} | {cpu} |"
            )
        gw = [r.events_per_s for r in outcome.results[(lo, "gateway")]]
        bl = [r.events_per_s for r in outcome.results[(lo, "baseline")]]
        ratio = _median(gw) / _median(bl) if _median(bl) else float("nan")
        raw = ", ".join(f"{g:,.0f}/{b:,.0f}" for g, b in zip(gw, bl))
        ratios.append(f"- {lo.name}: **{ratio:.2f}** (runs, gateway/baseline events/s: {raw})")
    lines += ["", "ratio gateway/baseline, events/s (medians):", *ratios, ""]
    if outcome.errors:
        lines.append(f"processes logged {len(outcome.errors)} ERROR lines:")
        lines += [f"- {error}" for error in outcome.errors[:5]]
    else:
        lines.append("no process logged an ERROR line")
    return "\n".join(lines)
