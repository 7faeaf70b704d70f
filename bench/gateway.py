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
JetStream actually wrote, as opposed to what the gateway answered 2xx for. "server CPU µs/event"
is the server's CPU over the events it answered: unlike events/s, it does not depend on how
much of a shared machine the server was given.

`--gateways N` (default: one per core, as `inlet up`) adds a server "gateway xN": N gateway
processes on one port (SO_REUSEPORT) on their own nats-server. `--profile` runs py-spy on the
gateway and the baseline through each load of the first repeat and prints where their time
went (`bench.pyspy`). After every repeat the run records each process's peak resident memory
beside the events answered so far, so growth with the event count shows.

After the loads, the run times the user-agent parse every Edge request pays (`gateway.user_agent`,
uap-core's regexes on the compiled backend) in this process, on a mix of real agents: cached
(traffic repeats its agents) and uncached (every agent new, as from a bot farm). Alone:
`python -c "from bench import gateway; print(gateway.agent_report(gateway.user_agent_cost()))"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats

from bench import h2load, load, pyspy
from bench.measure import Result, cpu, peak_rss_mb
from bench.processes import Stack
from gateway import user_agent

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


def _stored(url: str) -> float:
    return asyncio.run(_last_seq(url))


# Real agents in roughly the proportions a consumer site sees: phones first, then desktops, the
# mobile SDKs' own agents (adobe/aepsdk-core-android DeviceInfoService, aepsdk-core-ios
# ApplicationSystemInfoService) and a crawler.
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 "
    "Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; U; Android 13; en-US; Pixel 7 Build/TQ3A.230805.001)",
    "Mozilla/5.0 (iPhone; CPU OS 17_0 like Mac OS X; en_US)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


@dataclass(frozen=True)
class AgentCost:
    cached_us: float
    uncached_us: float
    agents: int


def user_agent_cost(calls: int = 20_000, repeat: int = 3) -> AgentCost:
    """Microseconds per `user_agent.parse` (median of `repeat` timings of `calls` calls each)."""
    mix = [AGENTS[i % len(AGENTS)] for i in range(calls)]
    unique = [f"{agent} r{i}" for i, agent in enumerate(mix)]  # same regex work, never in the cache

    def per_call(parse: Callable[[str], object], agents: list[str]) -> float:
        start = time.perf_counter()
        for agent in agents:
            parse(agent)
        return (time.perf_counter() - start) / len(agents) * 1e6

    for agent in AGENTS:
        user_agent.parse(agent)  # warm the cache, as traffic does
    cached = statistics.median(per_call(user_agent.parse, mix) for _ in range(repeat))
    uncached = statistics.median(per_call(user_agent.parse_uncached, unique) for _ in range(repeat))
    return AgentCost(cached, uncached, len(AGENTS))


def agent_report(cost: AgentCost) -> str:
    return (f"user-agent parse per Edge request (uap-core, ua-parser-rs; {cost.agents} real agents): "
            f"cached {cost.cached_us:.1f} µs, uncached {cost.uncached_us:.1f} µs")


@dataclass
class Run:
    loads: list[Load]
    results: dict[tuple[Load, str], list[Result]]
    errors: list[str]
    agents: AgentCost | None = None
    servers: tuple[str, ...] = SERVERS  # plus "gateway sync=<v>" per --nats-sync value
    # Peak resident memory (VmHWM, MiB) of each process after each repeat, beside the events
    # answered 2xx by then: flat while the events grow means nothing grows per event.
    memory: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)  # py-spy summaries (--profile)


def run(seconds: float, concurrency: int, connections: int, batches: list[int], repeat: int, warmup: float,
        driver: str, workers: bool, keep: bool = False, syncs: tuple[str, ...] = (), profile: bool = False,
        pool: int = 0) -> Run:
    """`syncs`: also a gateway on its own nats-server per JetStream `sync_interval` value
    ("always": fsync every write), driven in the same alternation as the others. `profile`:
    py-spy samples the gateway (and the baseline) through each load of the first repeat. `pool`:
    also `pool` gateway processes sharing one port (SO_REUSEPORT, as `inlet up` runs one per
    core), on their own nats-server, as server "gateway xN"."""
    chosen = loads(batches, driver)
    names = SERVERS + tuple(f"gateway sync={s}" for s in syncs) + ((f"gateway x{pool}",) if pool > 1 else ())
    results: dict[tuple[Load, str], list[Result]] = {(lo, s): [] for lo in chosen for s in names}
    print(f"bench: {repeat} x {len(chosen)} loads x {len(names)} servers x {warmup + seconds:g} s "
          f"= about {repeat * len(chosen) * len(names) * (warmup + seconds):.0f} s of load", file=sys.stderr, flush=True)
    memory: list[tuple[int, dict[str, float]]] = []
    profiles: list[str] = []
    if profile and not pyspy.available():
        print("bench: py-spy is not installed (pip install py-spy); no profiles", file=sys.stderr)
        profile = False
    with Stack(keep=keep) as stack, contextlib.ExitStack() as others:
        assert stack.nats.process is not None
        side = {"nats": cpu(stack.nats.process.pid)}
        pids = {"nats": stack.nats.process.pid}
        if workers:
            pids["profile"] = stack.start("worker", "profile").pid
            pids["lake"] = stack.start("worker", "lake").pid
            side["profile"], side["lake"] = cpu(pids["profile"]), cpu(pids["lake"])
        gateway = stack.start("gateway")
        baseline_port = stack.start_baseline()
        pids.update(gateway=gateway.pid, baseline=stack.baseline.pid)
        servers = {
            "baseline": (f"http://127.0.0.1:{baseline_port}", {"server": cpu(stack.baseline.pid), **side}),
            "gateway": (f"http://127.0.0.1:{stack.port}",
                        {"server": cpu(gateway.pid), **side, "stored": lambda: asyncio.run(_last_seq(stack.nats.url))}),
        }
        extra = [others.enter_context(Stack(keep=keep, sync_interval=s)) for s in syncs]
        for sync, other in zip(syncs, extra):
            assert other.nats.process is not None
            other_side = {"nats": cpu(other.nats.process.pid)}
            if workers:
                other_side["profile"] = cpu(other.start("worker", "profile").pid)
                other_side["lake"] = cpu(other.start("worker", "lake").pid)
            other_gateway = other.start("gateway")
            servers[f"gateway sync={sync}"] = (
                f"http://127.0.0.1:{other.port}",
                {"server": cpu(other_gateway.pid), **other_side,
                 "stored": functools.partial(_stored, other.nats.url)})
        if pool > 1:
            shared = others.enter_context(Stack(keep=keep))
            extra.append(shared)
            assert shared.nats.process is not None
            gateways = shared.start_gateways(pool)
            pool_cpu = [cpu(g.pid) for g in gateways]
            servers[f"gateway x{pool}"] = (
                f"http://127.0.0.1:{shared.port}",
                {"server": lambda: sum(probe() for probe in pool_cpu), "nats": cpu(shared.nats.process.pid),
                 "stored": functools.partial(_stored, shared.nats.url)})
            pids.update({f"gateway {i + 1}/{pool}": g.pid for i, g in enumerate(gateways)})
        for i in range(repeat):
            for lo in chosen:
                for name in names if i % 2 == 0 else tuple(reversed(names)):
                    base, probes = servers[name]
                    sampling = None
                    if profile and i == 0 and name in SERVERS:
                        folded = stack.tmp / f"pyspy-{name}-{lo.batch}-{lo.driver}.txt"
                        sampling = pyspy.record(pids[name], warmup + seconds, folded)
                    result = load.run(lo.driver, base, lo.batch, connections, concurrency, seconds, warmup, probes)
                    results[(lo, name)].append(result)
                    if sampling is not None:
                        _, err = sampling.communicate(timeout=60)
                        profiles.append(_profile_text(folded, f"{name}, {lo.name}", err))
                    print(f"  run {i + 1}/{repeat} {lo.name} {name}: {result.events_per_s:,.0f} events/s, "
                          f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, failed {result.failed}",
                          file=sys.stderr, flush=True)
            sent = round(sum(r.events_per_s * seconds for lo in chosen for r in results[(lo, "gateway")]))
            memory.append((sent, {name: peak_rss_mb(pid) for name, pid in pids.items()}))
        errors = stack.errors() + [e for other in extra for e in other.errors()]
    return Run(chosen, results, errors, user_agent_cost(), names, memory, profiles)


def _profile_text(folded: Path, title: str, err: bytes) -> str:
    if not folded.exists():
        return f"py-spy recorded nothing for {title}: {err.decode(errors='replace').strip()[-300:]}"
    return pyspy.report(folded, title)


def _cpu_per_event(result: Result) -> float:
    """Server CPU µs per event answered: what a core pays per event, whatever share of the
    core the server got from a shared machine."""
    return result.cpu.get("server", float("nan")) * 1e4 / result.events_per_s if result.events_per_s else float("nan")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(outcome: Run) -> str:
    side = sorted({k for rs in outcome.results.values() for r in rs for k in r.cpu} - {"client", "server"},
                  key=lambda k: ("nats", "profile", "lake").index(k) if k in ("nats", "profile", "lake") else 9)
    cpu_names = ["client", "server", *side]
    lines = [
        f"| load | server | req/s | events/s | stored/s | p50 ms | p99 ms | failed | CPU % {'/'.join(cpu_names)} "
        "| server CPU µs/event |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    ratios = []
    for lo in outcome.loads:
        for name in outcome.servers:
            runs = outcome.results[(lo, name)]
            stored = [r.stored_per_s for r in runs if r.stored_per_s is not None]
            stored_text = f"{_median(stored):,.0f}" if stored else ""
            cpu = "/".join(f"{_median([r.cpu.get(c, 0.0) for r in runs]):.0f}" for c in cpu_names)
            lines.append(
                f"| {lo.name} | {name} | {_median([r.requests_per_s for r in runs]):,.0f} | "
                f"{_median([r.events_per_s for r in runs]):,.0f} | {stored_text} | "
                f"{_median([r.p50_ms for r in runs]):.1f} | {_median([r.p99_ms for r in runs]):.1f} | "
                f"{sum(r.failed for r in runs)} | {cpu} | {_median([_cpu_per_event(r) for r in runs]):.1f} |"
            )
        gw = [r.events_per_s for r in outcome.results[(lo, "gateway")]]
        bl = [r.events_per_s for r in outcome.results[(lo, "baseline")]]
        ratio = _median(gw) / _median(bl) if _median(bl) else float("nan")
        raw = ", ".join(f"{g:,.0f}/{b:,.0f}" for g, b in zip(gw, bl))
        ratios.append(f"- {lo.name}: **{ratio:.2f}** (runs, gateway/baseline events/s: {raw})")
        gw_cpu = [_cpu_per_event(r) for r in outcome.results[(lo, "gateway")]]
        bl_cpu = [_cpu_per_event(r) for r in outcome.results[(lo, "baseline")]]
        raw = ", ".join(f"{b:.1f}/{g:.1f}" for g, b in zip(gw_cpu, bl_cpu))
        ratios.append(f"  - server CPU per event, baseline/gateway: **{_median(bl_cpu) / _median(gw_cpu):.2f}** "
                      f"(runs, µs: {raw}): the share of the core's work per event that is decoding, "
                      "which a busy shared machine does not skew the way it skews events/s")
        for name in outcome.servers[len(SERVERS):]:
            variant = [r.events_per_s for r in outcome.results[(lo, name)]]
            against = _median(variant) / _median(gw) if _median(gw) else float("nan")
            raw = ", ".join(f"{v:,.0f}/{g:,.0f}" for v, g in zip(variant, gw))
            what = "one gateway process" if name.startswith("gateway x") else "gateway (NATS default sync)"
            ratios.append(f"  - {name} / {what}: **{against:.2f}** (runs: {raw})")
    lines += ["", "ratio gateway/baseline, events/s (medians):", *ratios, ""]
    if outcome.agents is not None:
        lines += [agent_report(outcome.agents), ""]
    if outcome.memory:
        names = list(outcome.memory[0][1])
        lines.append("peak resident memory (VmHWM, MiB) after each repeat, by process "
                     f"({', '.join(names)}), beside the events the gateway had answered 2xx:")
        lines += [f"- after {sent:,} events: " + ", ".join(f"{n} {mb:.0f}" for n, mb in peaks.items())
                  for sent, peaks in outcome.memory]
        lines.append("")
    lines += [*outcome.profiles, ""] if outcome.profiles else []
    if outcome.errors:
        lines.append(f"processes logged {len(outcome.errors)} ERROR lines:")
        lines += [f"- {error}" for error in outcome.errors[:5]]
    else:
        lines.append("no process logged an ERROR line")
    return "\n".join(lines)
