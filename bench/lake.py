"""Lake writer throughput: one lake worker draining a pre-filled stream into Parquet (rows/s),
beside a null consumer (fetch + ack only) on the same stream in the same run; and bytes on
disk per event, beside the bytes of the same events' XDM as compact JSON (counted as they are
published)."""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from bench.processes import Stack, wait_drained
from bench.profile import _drain_null, _fill, _lag


def once(events: int) -> dict[str, float]:
    # Files of 10,000 rows, written as the buffer fills (the roll interval is not what we time).
    with Stack() as stack:
        config = stack.tmp / "inlet.toml"
        config.write_text("[lake]\nmax_rows = 10000\nroll_interval = 2\n")
        stack.env["INLET_CONFIG"] = str(config)
        xdm_bytes = asyncio.run(_fill(stack.nats.url, events))
        null_rate = asyncio.run(_drain_null(stack.nats.url, events))
        stack.start("worker", "lake")
        elapsed = wait_drained(lambda: asyncio.run(_lag(stack.nats.url, "lake")))
        files = list((stack.tmp / "data" / "lake").rglob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
    return {"rows_per_s": events / elapsed, "null_per_s": null_rate, "bytes_per_event": size / events,
            "json_bytes_per_event": xdm_bytes / events, "files": len(files)}


def run(events: int, repeat: int) -> list[dict[str, float]]:
    return [once(events) for _ in range(repeat)]


def report(runs: list[dict[str, Any]]) -> str:
    m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return "\n".join([
        "| figure | inlet | baseline (same run) | ratio |",
        "| --- | --- | --- | --- |",
        f"| lake worker, one process, pre-filled stream (rows/s) | {m['rows_per_s']:,.0f} | null consumer {m['null_per_s']:,.0f} | {m['rows_per_s'] / m['null_per_s']:.2f} |",
        f"| bytes per event on disk (zstd Parquet) | {m['bytes_per_event']:.1f} | the same events' XDM as compact JSON "
        f"{m['json_bytes_per_event']:.1f} | {m['bytes_per_event'] / m['json_bytes_per_event']:.2f} |",
        f"\nruns: {len(runs)}; raw: {runs}",
    ])
