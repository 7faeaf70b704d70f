"""The HTTP/2 load driver: one closed-loop load against one server, bounded in time.

`connections` HTTP/2 cleartext connections, each with `concurrency / connections` requests in
flight, for `warmup + seconds`; only the `seconds` after the warm-up are measured. Two drivers
give the same shape of load:

- `h2load` (`bench.h2load`): native, so not the bottleneck; repeats one body, so against the
  gateway every event after the first is a JetStream duplicate. One event per request only.
- `python` (`bench.h2client`): unique events in every request, so every accepted event is
  stored; but it spends CPU on the same 2 cores as the server, and its CPU is reported.
"""

from __future__ import annotations

import math
import os
from urllib.parse import urlsplit

from bench import bodies, h2client, h2load
from bench.measure import Meter, Probe, Result, Window, cpu

DRIVERS = ("h2load", "python")


def run(driver: str, base: str, batch: int, connections: int, concurrency: int, seconds: float,
        warmup: float, probes: dict[str, Probe]) -> Result:
    """One measured load; `probes` are sampled over the measured window (see `Meter`)."""
    streams = max(1, math.ceil(concurrency / connections))
    path = bodies.path(batch)
    window = Window(warmup, seconds)
    if driver == "h2load":
        if batch != 1:
            raise ValueError("h2load repeats one body; use the python driver for batches")
        lost, rates = h2load.run(base + path, bodies.fixed(1), 1, connections, streams, window, probes)
        return Result.of(window, lost, rates)
    url = urlsplit(base)
    assert url.hostname is not None and url.port is not None
    meter = Meter({"client": cpu(os.getpid()), **probes}, window)
    failed_connections = h2client.run(url.hostname, url.port, path, bodies.Bodies(batch),
                                      bodies.accepted(batch), connections, streams, window)
    return Result.of(window, failed_connections, meter.rates())

