"""The lake worker, in-process, against a real nats-server: every published event and record
lands in Parquet exactly once, acknowledged only after its file is in place; the files read
as a hive dataset; SIGTERM writes the buffer; a redelivery after a crash between the rename
and the ack is not written twice.

Bus messages are published straight to JetStream (no gateway), the way the gateway does:
subject `inlet.<sandbox>.<kind>.<partition>`, header `Nats-Msg-Id`. No test sleeps to
synchronise: `eventually` polls a condition until a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import msgspec
import nats
import polars as pl
import pyarrow.dataset as ds
import pytest
from nats.aio.client import Client

import worker.consume
import worker.lake
from inlet import bus, subjects
from inlet.config import Config, load
from inlet.messages import BusMessage, DeleteProfile, Event, Record, encode
from inlet.nats_server import NatsServer
from inlet.xdm import Identity

T = TypeVar("T")
NOW_MS = int(time.time() * 1000)


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    server = NatsServer(tmp_path / "nats")
    try:
        yield server.start()
    finally:
        server.stop()


def configure(nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, roll_interval: str = "1") -> Config:
    monkeypatch.chdir(tmp_path)  # no inlet.toml from the working directory
    return load({"INLET_NATS_URL": nats_url, "INLET_DATA_DIR": str(tmp_path / "data"),
                 "INLET_LAKE_ROLL_INTERVAL": roll_interval})


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"logged errors: {errors}"


async def eventually(condition: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await condition()
        if result is not None and result is not False:
            return result
        await asyncio.sleep(0.05)  # polling interval, not synchronisation
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def event(i: int, dataset: str = "demo-events", **xdm: Any) -> Event:
    body = {"_id": f"ev-{i}", "eventType": "commerce.productViews", "timestamp": "2026-11-01T10:00:00Z",
            "commerce": {"productViews": {"value": 1}}, "productListItems": [{"SKU": f"sku-{i % 7}"}], **xdm}
    return Event(org="DEMO@AdobeOrg", sandbox="prod", dataset=dataset, source="demo", message_id=f"prod/{dataset}/ev-{i}",
                 received_ms=NOW_MS + i, timestamp_ms=NOW_MS, event_type="commerce.productViews",
                 xdm=msgspec.Raw(msgspec.json.encode(body)))


def record(i: int) -> Record:
    body = {"person": {"name": {"firstName": f"P{i}"}}, "identityMap": {"Email": [{"id": f"p{i}@shop.example"}]}}
    return Record(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-profiles", source="demo",
                  message_id=f"prod/demo-profiles/rec-{i}", received_ms=NOW_MS + i,
                  xdm=msgspec.Raw(msgspec.json.encode(body)))


async def publish(nc: Client, config: Config, messages: list[BusMessage], raw: list[bytes] = []) -> None:
    js = bus.jetstream(nc, config)
    await bus.ensure_streams(js, config)
    acks = []
    for n, message in enumerate(messages):
        kind = "event" if isinstance(message, Event) else "record" if isinstance(message, Record) else "command"
        acks.append(await js.publish_async(subjects.ingest("prod", kind, n % 4), encode(message),
                                           headers={"Nats-Msg-Id": message.message_id}))
    for n, data in enumerate(raw):
        acks.append(await js.publish_async(subjects.ingest("prod", "event", 0), data, headers={"Nats-Msg-Id": f"raw-{n}"}))
    await asyncio.gather(*acks)


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[None]:
    """A lake worker for the duration of the block; stopped cleanly (and awaited) after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.lake.main(config, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def lake_rows(config: Config) -> pl.DataFrame:
    files = sorted((config.data_path / "lake" / "prod").glob("*/*/*/part-*.parquet"))
    if not files:
        return pl.DataFrame({"_inlet_message_id": []}, schema={"_inlet_message_id": pl.String})
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


async def settled(nc: Client, config: Config) -> bool:
    """Every message fetched and acknowledged by the lake consumer."""
    info = await nc.jetstream().consumer_info(config.nats.stream, worker.lake.CONSUMER)
    return not info.num_pending and not info.num_ack_pending


async def test_every_message_lands_once_and_reads_as_a_hive_dataset(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = configure(nats_url, tmp_path, monkeypatch)
    events = [event(i) for i in range(300)] + [event(i, dataset="lake-only", page={"n": i}) for i in range(50)]
    records = [record(i) for i in range(20)]
    delete = DeleteProfile(org="DEMO@AdobeOrg", sandbox="prod", message_id="del-1", received_ms=NOW_MS,
                           identity=Identity(ns="Email", id="p1@shop.example"))
    nc = await nats.connect(nats_url)
    try:
        await publish(nc, config, [*events, *records, delete, *events[:25]], raw=[b"not a bus message"])
        expected = sorted(m.message_id for m in [*events, *records])

        async def complete() -> pl.DataFrame | None:
            rows = lake_rows(config)
            return rows if sorted(rows["_inlet_message_id"]) == expected and await settled(nc, config) else None

        async with running(config):
            rows = await eventually(complete, 30, "every message in the lake, acknowledged")
            dead = await nc.jetstream().stream_info(subjects.DEAD_LETTER_STREAM)
            assert dead.state.messages == 1
    finally:
        await nc.close()

    assert rows["_inlet_message_id"].n_unique() == rows.height == 370  # retries stored once, deletes not at all
    lake = config.data_path / "lake"
    assert not list((lake / ".writing").iterdir())
    root = lake / "prod" / "demo-events"
    hive = pl.scan_parquet(root, hive_partitioning=True).collect()
    assert hive.height == 300 and {"inlet_date", "inlet_hour"} <= set(hive.columns)
    # demo-events has the default event schema: its columns take the declared types (a typed
    # lake, docs/schemas.md), so the integer page views are a Float64 column (XDM `number`).
    commerce = {f.name: f.dtype for f in hive.schema["commerce"].fields}
    assert commerce["productViews"] == pl.Struct({"id": pl.String, "value": pl.Float64})
    assert {f.name: f.dtype for f in hive.schema["productListItems"].inner.fields}["SKU"] == pl.String
    arrow = ds.dataset(root, format="parquet", partitioning="hive")
    assert arrow.count_rows() == 300 and {"inlet_date", "inlet_hour"} <= set(arrow.schema.names)
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning=true)").fetchall() == [(300,)]
    profiles = pl.scan_parquet(lake / "prod" / "demo-profiles", hive_partitioning=True).collect()
    assert profiles["_inlet_kind"].unique().to_list() == ["record"] and profiles.height == 20


async def test_sigterm_writes_what_is_buffered_then_stops(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = configure(nats_url, tmp_path, monkeypatch, roll_interval="3600")  # only shutdown writes
    nc = await nats.connect(nats_url)
    try:
        await publish(nc, config, [event(i) for i in range(10)])
        task = asyncio.create_task(worker.lake.main(config))  # installs its SIGTERM handler first

        async def buffered() -> bool:
            try:
                info = await nc.jetstream().consumer_info(config.nats.stream, worker.lake.CONSUMER)
            except nats.js.errors.NotFoundError:
                return False
            return info.num_ack_pending == 10

        await eventually(buffered, 20, "ten messages fetched and buffered")
        assert lake_rows(config).height == 0
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 30)
        assert lake_rows(config).height == 10
        assert await settled(nc, config)
    finally:
        await nc.close()


async def test_a_redelivery_after_a_crash_between_rename_and_ack_is_not_written_twice(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = configure(nats_url, tmp_path, monkeypatch)
    messages = [event(i) for i in range(40)]
    nc = await nats.connect(nats_url)
    try:
        await publish(nc, config, messages)

        async def lost(msgs: list[Any]) -> None:  # the acks never reach the server: a crash after the rename
            return None

        with monkeypatch.context() as patch:
            patch.setattr(worker.consume, "_ack", lost)
            async with running(config):
                await eventually(lambda: _has(config, 40), 20, "the first worker's files")
        files = set((config.data_path / "lake").rglob("part-*.parquet"))

        async with running(config):  # JetStream redelivers after ack_wait
            await eventually(lambda: settled(nc, config), worker.lake.ack_wait(config) + 20, "the redeliveries acked")
    finally:
        await nc.close()
    assert set((config.data_path / "lake").rglob("part-*.parquet")) == files  # nothing written again
    rows = lake_rows(config)
    assert rows.height == rows["_inlet_message_id"].n_unique() == 40
    found = [re.search(r"(\d+) already written", m) for m in caplog.messages]
    assert sum(int(m.group(1)) for m in found if m) == 40  # each one recognised in the files


async def _has(config: Config, count: int) -> bool:
    return lake_rows(config).height >= count


async def test_a_redelivered_quarantined_row_is_not_quarantined_twice(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12.8: after a NATS restart, 500 of 3,000 rows were in quarantine twice; Parquet
    was deduplicated, quarantine was not. Same crash as above, with rows that are not JSON."""
    config = configure(nats_url, tmp_path, monkeypatch)
    bad = [Event(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-events", source="demo",
                 message_id=f"prod/demo-events/bad-{i}", received_ms=NOW_MS + i, timestamp_ms=NOW_MS,
                 xdm=msgspec.Raw(b'{"_id": "bad-%d", "name": "caf\xe9"}' % i)) for i in range(10)]
    nc = await nats.connect(nats_url)
    try:
        await publish(nc, config, [event(i) for i in range(30)] + bad)

        async def lost(msgs: list[Any]) -> None:  # the acks never reach the server
            return None

        def quarantined() -> list[bytes]:
            return [line for f in (config.data_path / "lake" / "_quarantine").rglob("*.jsonl")
                    for line in f.read_bytes().splitlines()]

        async def all_written() -> bool:
            return lake_rows(config).height >= 30 and len(quarantined()) >= 10

        with monkeypatch.context() as patch:
            patch.setattr(worker.consume, "_ack", lost)
            async with running(config):
                await eventually(all_written, 20, "the first worker's files and quarantine")
        async with running(config):  # JetStream redelivers all 40 after ack_wait
            await eventually(lambda: settled(nc, config), worker.lake.ack_wait(config) + 20, "the redeliveries acked")
    finally:
        await nc.close()
    assert len(quarantined()) == 10 and lake_rows(config).height == 30
    found = [re.search(r"(\d+) already written", m) for m in caplog.messages]
    assert sum(int(m.group(1)) for m in found if m) == 40  # each one recognised, Parquet or quarantine
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(e.startswith("Quarantined ") for e in errors), errors  # once, at ERROR
    caplog.clear()  # those ERRORs are the point of the test
