"""HTTP/2 load with h2load (nghttp2's native load generator, Debian package `nghttp2-client`).

Native and multiplexed, it is not the bottleneck against a Python server, which makes it the
fairest driver for one message per request. Its limit: every request carries the same body
(`-d`), so the gateway publishes the same `Nats-Msg-Id` each time and JetStream stores the
first one and answers the rest from its dedupe index. The run still exercises every step of
the gateway (HTTP/2, decode, validate, publish, wait for the ack), minus the store's write.

Latencies come from its per-request log, which holds only the measured duration (h2load
leaves the warm-up out), so every row counts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.measure import Meter, Probe, Window, cpu


def available() -> bool:
    return shutil.which("h2load") is not None


def version() -> str:
    out = subprocess.run(["h2load", "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().removeprefix("h2load ")


def run(url: str | list[str], body: bytes | None, events_per_request: int, connections: int, streams: int,
        window: Window, probes: dict[str, Probe], headers: tuple[str, ...] = ("content-type: application/json",),
        ) -> tuple[int, dict[str, float]]:
    """Drive the load for the window (h2load's own warm-up and duration); fill `window`.

    `url`: one URL, or several on the same origin (h2load takes them in turn, `-i`); `body`:
    POSTed with every request, or None for GETs.

    Returns (failed requests that left no log row, the probes' rates, with h2load's CPU as
    "client").
    """
    warmup = window.start - time.perf_counter()  # what is left of the warm-up
    with tempfile.TemporaryDirectory(prefix="inlet-h2load-") as tmp:
        data, log, uris = Path(tmp) / "body.json", Path(tmp) / "requests.tsv", Path(tmp) / "uris.txt"
        argv = ["h2load", f"--duration={_ms(window.seconds)}", f"--warm-up-time={_ms(max(warmup, 0.1))}",
                "--threads=1", f"--clients={connections}", f"--max-concurrent-streams={streams}",
                *(f"--header={h}" for h in headers), f"--log-file={log}"]
        if body is not None:
            data.write_bytes(body)
            argv.append(f"--data={data}")
        if isinstance(url, str):
            argv.append(url)
        else:
            uris.write_text("\n".join(url) + "\n")
            argv.append(f"--input-file={uris}")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        meter = Meter({"client": cpu(proc.pid), **probes}, window)
        try:
            out, _ = proc.communicate(timeout=window.seconds + warmup + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"h2load failed:\n{out}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    counts = re.search(r"(\d+) errored, (\d+) timeout", out)
    lost = int(counts.group(1)) + int(counts.group(2)) if counts else 0
    # The log's rows are all inside h2load's measured duration: place them in our window.
    # Status 0 marks a request still in flight when the duration ended: abandoned, not failed.
    for _, status, micros in rows:
        if status != "0":
            window.add(window.start, int(micros) / 1e6, int(status), events_per_request)
    return lost, meter.rates()


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"  # h2load takes integers with a unit
