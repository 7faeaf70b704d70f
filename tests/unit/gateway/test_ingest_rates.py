"""The workspace chart's counts: 10-second buckets per sandbox, dataset and connection, one hour kept."""

from __future__ import annotations

from gateway.ingest_rates import STEP_SECONDS, WINDOW_SECONDS, Rates


def test_counts_per_bucket_and_the_last_hour_only() -> None:
    now = [1_795_400_000.0]
    rates = Rates(clock=lambda: now[0])
    rates.count("prod", "demo-events", "demo")
    rates.count("prod", "demo-events", "demo")
    rates.count("prod", "demo-events", "web")
    now[0] += STEP_SECONDS
    rates.count("dev", "demo-events", "demo")
    start = int(1_795_400_000 // STEP_SECONDS * STEP_SECONDS)
    assert sorted(rates.rows()) == [(start, "prod", "demo-events", "demo", 2), (start, "prod", "demo-events", "web", 1),
                                    (start + STEP_SECONDS, "dev", "demo-events", "demo", 1)]
    now[0] += WINDOW_SECONDS - STEP_SECONDS  # the first bucket is now an hour old
    assert rates.rows() == [(start + STEP_SECONDS, "dev", "demo-events", "demo", 1)]
