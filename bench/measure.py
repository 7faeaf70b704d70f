"""What one load run measured: completions inside a time window, and the CPU each process used.

Every driver reports into a `Window`: a response counts when it ends inside the measured
interval (after the warm-up, before the deadline), the rule h2load applies too. Over the same
interval a `Meter` samples counters: the CPU of the client, the server and nats-server (from
`/proc/<pid>/stat`), so a run shows which process was saturated, and the stream's last
sequence, so a gateway run shows what JetStream actually stored.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Window:
    """The measured interval on `time.perf_counter()`; completions outside it are ignored."""

    def __init__(self, warmup: float, seconds: float) -> None:
        self.start = time.perf_counter() + warmup
        self.end = self.start + seconds
        self.seconds = seconds
        self.latencies: list[float] = []
        self.failed = 0
        self.events = 0

    def add(self, ended: float, latency: float, status: int, events: int) -> None:
        if not self.start <= ended <= self.end:
            return
        if 200 <= status < 300:
            self.latencies.append(latency)
            self.events += events
        else:
            self.failed += 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (`VmHWM`), in MiB; NaN when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def anon_rss_mb(pid: int) -> float:
    """The process's resident anonymous memory now (`RssAnon`: heap, not mapped files such as
    LMDB's store, whose resident pages are the page cache's), in MiB; NaN when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


Probe = Callable[[], float]  # a cumulative counter: CPU seconds of a process, a stream's last sequence


def cpu(pid: int) -> Probe:
    return lambda: cpu_seconds(pid)


class Meter:
    """The rate of each probe over [start, end] of a window, sampled from timer threads at the
    window's edges (the driver may be blocking the main thread)."""

    def __init__(self, probes: dict[str, Probe], window: Window) -> None:
        self.probes = probes
        self.samples: list[tuple[float, dict[str, float]]] = []
        now = time.perf_counter()
        self.timers = [threading.Timer(max(0.0, when - now), self._sample) for when in (window.start, window.end)]
        for timer in self.timers:
            timer.daemon = True
            timer.start()

    def _sample(self) -> None:
        self.samples.append((time.perf_counter(), {name: probe() for name, probe in self.probes.items()}))

    def rates(self) -> dict[str, float]:
        """Per second, by probe name; empty if the window was not covered."""
        for timer in self.timers:
            timer.join()
        if len(self.samples) != 2:
            return {}
        (t0, first), (t1, last) = self.samples
        return {name: (last[name] - first[name]) / (t1 - t0) for name in self.probes}


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (`p` in 0..100)."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


@dataclass(frozen=True)
class Result:
    requests_per_s: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    failed: int
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, by process
    stored_per_s: float | None = None  # messages JetStream stored (gateway runs only)

    @classmethod
    def of(cls, window: Window, failed_connections: int, rates: dict[str, float]) -> Result:
        """`rates` from a `Meter`: "stored" is the stream's growth, any other name a CPU probe."""
        latencies = sorted(window.latencies)
        return cls(
            requests_per_s=len(latencies) / window.seconds,
            events_per_s=window.events / window.seconds,
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            failed=window.failed + failed_connections,
            cpu={name: 100 * rate for name, rate in rates.items() if name != "stored"},
            stored_per_s=rates.get("stored"),
        )
