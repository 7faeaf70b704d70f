"""`GET /metrics`: Prometheus text for this gateway, the consumers' lag, and the workers.

Workers push their registries to the `inlet_metrics` bucket (see `inlet.telemetry`); their
families are merged here with a `process` label, so one scrape sees the whole pipeline.
Consumer lag (messages not yet delivered plus delivered but not acknowledged) comes from
JetStream itself, so it is right even when a worker is down. Serve this to your monitoring
network only; nginx does not proxy it.
"""

from __future__ import annotations

from collections.abc import Iterator

from nats.js.errors import NoKeysError
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response

from inlet import retention
from inlet.config import Config
from inlet.telemetry import REGISTRY, SPOOL_BYTES, metrics_bucket

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def metrics(request: Request) -> Response:
    state = request.app.state
    config: Config = state.config
    spool = state.publisher.spool
    SPOOL_BYTES.set(spool.bytes if spool is not None else 0)
    families: list[Metric] = []
    try:
        families.append(await _lag(state.js, config.nats.stream))
        families.extend(await _retention(state.js, config.nats.stream))
        families.extend(await _workers(state.js))
    except Exception:  # the bus is away: serve what this process knows
        pass
    extra = CollectorRegistry()
    extra.register(_Snapshot(families))
    return Response(generate_latest(REGISTRY) + generate_latest(extra), media_type=CONTENT_TYPE)


async def _lag(js, stream: str) -> Metric:  # type: ignore[no-untyped-def]
    lag = GaugeMetricFamily("inlet_consumer_lag", "Messages a consumer has not acknowledged yet.", labels=["consumer"])
    for info in await js.consumers_info(stream):
        lag.add_metric([info.name], (info.num_pending or 0) + (info.num_ack_pending or 0))
    return lag


async def _retention(js, stream: str) -> list[Metric]:  # type: ignore[no-untyped-def]
    """Stream usage against its limits, and each consumer's oldest unacknowledged message:
    what to alert on before retention refuses new data or deletes unprocessed data."""
    kept = await retention.inspect(js, stream)
    used = GaugeMetricFamily("inlet_stream_bytes", "Bytes stored in the ingest stream.", value=kept.bytes)
    limit = GaugeMetricFamily("inlet_stream_max_bytes", "The ingest stream's byte limit (0: none).",
                              value=kept.max_bytes)
    max_age = GaugeMetricFamily("inlet_stream_max_age_seconds", "The ingest stream's age limit (0: none).",
                                value=kept.max_age_s)
    first = GaugeMetricFamily("inlet_stream_first_seq", "The oldest sequence still in the ingest stream.",
                              value=kept.first_seq)
    floor = GaugeMetricFamily("inlet_consumer_ack_floor", "Stream sequence a consumer acknowledged up to.",
                              labels=["consumer"])
    age = GaugeMetricFamily("inlet_consumer_oldest_unacked_age_seconds",
                            "Age of a consumer's oldest unacknowledged message (0: none).", labels=["consumer"])
    for c in kept.consumers:
        floor.add_metric([c.name], c.ack_floor)
        age.add_metric([c.name], c.oldest_unacked_age_s)
    warnings = GaugeMetricFamily("inlet_retention_warnings",
                                 "Retention warnings now (stream nearly full, unacked data nearing max_age); "
                                 "`inlet status` says which.", value=len(kept.warnings))
    return [used, limit, max_age, first, floor, age, warnings]


async def _workers(js) -> list[Metric]:  # type: ignore[no-untyped-def]
    bucket = await metrics_bucket(js)
    try:
        keys = await bucket.keys()
    except NoKeysError:
        return []
    merged: dict[str, Metric] = {}
    for key in sorted(keys):
        entry = await bucket.get(key)
        if not entry.value:
            continue
        for family in text_string_to_metric_families(entry.value.decode()):
            target = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                target.samples.append(sample._replace(labels={**sample.labels, "process": key}))
    return list(merged.values())
