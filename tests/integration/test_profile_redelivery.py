"""A profile worker that crashed after its LMDB commit but before its acks reached JetStream
gets the same batch again; applying it must change nothing (ARCHITECTURE.md: the worker
remembers applied message ids in the same transaction as the update).

The crash is made deterministic: the worker runs in-process against a real nats-server and a
real LMDB store, with its acks dropped (`worker.consume._ack`), exactly what a kill between
the commit and the acks leaves behind. The process-level crash tests (kill -9 of the worker,
of nats-server) hit that window only sometimes; this test hits it every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import nats
import pytest
from nats.aio.client import Client

import worker.consume
import worker.profile
from inlet import bus, lookups, subjects
from inlet.config import Config, load
from inlet.messages import Event, encode
from inlet.nats_server import NatsServer
from inlet.xdm import Identity
from tests.integration.counted import VIEWS, VIEWS_TOML

T = TypeVar("T")
EMAIL = Identity("Email", "again@shop.example", primary=True, authenticated=True)
COUNT = 120


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    server = NatsServer(tmp_path / "nats")
    try:
        yield server.start()
    finally:
        server.stop()


async def eventually(condition: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await condition()
        if result is not None and result is not False:
            return result
        await asyncio.sleep(0.05)  # polling interval, not synchronisation
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[None]:
    """A profile worker for the duration of the block, stopped the way SIGTERM stops it."""
    task = asyncio.create_task(worker.profile.main(config))
    try:
        yield
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's own handler sets its stop event
        await asyncio.wait_for(task, 30)


def view(i: int, now_ms: int) -> Event:
    xdm = {"_id": f"again-{i}", "eventType": "web.webpagedetails.pageViews", "timestamp": "now"}
    return Event(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-events", source="demo",
                 message_id=f"prod/demo-events/again-{i}", received_ms=now_ms, timestamp_ms=now_ms - i,
                 event_type="web.webpagedetails.pageViews", identities=[EMAIL],
                 xdm=msgspec.Raw(msgspec.json.encode(xdm)))


async def ask(nc: Client, lookup: lookups.Lookup) -> lookups.Answer | None:
    """The worker's answer; None while it is not listening yet."""
    try:
        reply = await nc.request(subjects.PROFILE_QUERY, lookups.encode(lookup), timeout=5)
    except nats.errors.NoRespondersError:
        return None
    return lookups.decode_answer(reply.data)


async def counted(nc: Client) -> Any:
    answer = await ask(nc, lookups.ProfileLookup(org="DEMO@AdobeOrg", sandbox="prod", identity=EMAIL))
    if not isinstance(answer, lookups.ProfileView):
        return None
    return msgspec.json.decode(answer.entity).get("computedAttributes", {}).get(VIEWS, {}).get("value")


async def timeline(nc: Client) -> int:
    answer = await ask(nc, lookups.EventsLookup(org="DEMO@AdobeOrg", sandbox="prod", identity=EMAIL, limit=1000))
    return len(answer.events) if isinstance(answer, lookups.EventsView) else 0


async def test_a_batch_redelivered_after_its_commit_changes_nothing(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inlet.toml").write_text('[profile]\nack_wait = 1.0\n' + VIEWS_TOML)
    config = load({"INLET_NATS_URL": nats_url, "INLET_DATA_DIR": str(tmp_path / "data"),
                   "INLET_CONFIG": str(tmp_path / "inlet.toml")})
    now_ms = int(time.time() * 1000)
    nc = await nats.connect(nats_url)
    js = bus.jetstream(nc, config)
    try:
        await bus.ensure_streams(js, config)
        partition = subjects.partition(EMAIL.key, config.nats.partitions)
        acks = [await js.publish_async(subjects.ingest("prod", "event", partition), encode(view(i, now_ms)),
                                       headers={"Nats-Msg-Id": f"again-{i}"}) for i in range(COUNT)]
        await asyncio.gather(*acks)

        async def lost(msgs: list[Any]) -> None:  # committed, never acknowledged: a crash after the commit
            return None

        with monkeypatch.context() as patch:
            patch.setattr(worker.consume, "_ack", lost)
            async with running(config):
                assert await eventually(lambda: _equals(counted(nc), COUNT), 20, "the first delivery counted") == COUNT

        async def redelivered() -> bool:
            info = await js.consumer_info(config.nats.stream, "profile-0")
            # Every delivery, first or repeated, takes a consumer sequence number.
            delivered_twice = (info.delivered.consumer_seq or 0) >= 2 * COUNT
            return delivered_twice and not info.num_pending and not info.num_ack_pending

        async with running(config):  # JetStream redelivers every message after ack_wait
            await eventually(redelivered, 30, "every message redelivered and acknowledged")
            assert await counted(nc) == COUNT  # not 2 × COUNT
            assert await timeline(nc) == COUNT
    finally:
        await nc.close()


async def _equals(value: Awaitable[Any], expected: Any) -> Any:
    found = await value
    return found if found == expected else None
