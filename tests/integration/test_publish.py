"""The gateway's own JetStream publish path (`gateway.publish`, issue 16) against a real
nats-server: every message's ack reaches that message's outcome, a retry is stored once,
JetStream's refusals come back at once, and a missing ack times out as `unavailable`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client

from gateway.publish import Accepted, Publisher
from gateway.spool import SpooledMessage
from inlet import bus, subjects
from inlet.config import Config, load
from inlet.messages import BusMessage, Event
from inlet.nats_server import NatsServer
from inlet.outcomes import Reason, Rejected
from inlet.xdm import Identity


def config_for(url: str, tmp_path: Path) -> Config:
    return load({"INLET_NATS_URL": url, "INLET_DATA_DIR": str(tmp_path / "data"), "INLET_CONFIG": "/dev/null"})


def event(n: int) -> Event:
    return Event(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-events", source="test",
                 message_id=f"DEMO@AdobeOrg/prod/demo-events/e{n}", received_ms=1, timestamp_ms=1_795_000_000_000 + n,
                 identities=[Identity("Email", f"p{n % 37}@example.com", True)],
                 xdm=msgspec.Raw(b'{"_id":"e%d"}' % n))


@pytest.fixture
async def connected(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[tuple[Client, Config]]:
    config = config_for(nats_server.url, tmp_path)
    nc = await bus.connect(config, name="test-publish")
    js = bus.jetstream(nc, config)
    await bus.ensure_streams(js, config)
    yield nc, config
    await nc.close()


async def test_each_ack_reaches_its_own_message_and_a_retry_is_stored_once(
        connected: tuple[Client, Config]) -> None:
    nc, config = connected
    js = nc.jetstream()
    publisher = Publisher(nc, js, config)
    batch: list[BusMessage] = [event(n) for n in range(300)]  # spread over all 16 partitions
    outcomes = await publisher.publish(list(batch))
    assert all(isinstance(o, Accepted) and not o.spooled for o in outcomes)
    seqs = [o.seq for o in outcomes if isinstance(o, Accepted)]
    assert sorted(seqs) == list(range(1, 301))
    for message, seq in zip(batch[::29], seqs[::29]):  # the ack's sequence holds that very message
        stored = await js.get_msg(config.nats.stream, seq)
        assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == message.message_id
    assert publisher.pending == 0

    again = await publisher.publish(list(reversed(batch)))  # a client's retry, in another order
    assert [o.seq for o in again if isinstance(o, Accepted)] == list(reversed(seqs))
    assert (await js.stream_info(config.nats.stream)).state.messages == 300


async def test_a_refusal_comes_back_at_once_for_that_message_only(connected: tuple[Client, Config]) -> None:
    """A subject no stream takes (no responders) and a wrong expected stream (JetStream's
    error ack) are each `unavailable` long before the publish timeout; the message between
    them is stored."""
    nc, config = connected
    publisher = Publisher(nc, nc.jetstream(), config)
    good = SpooledMessage(subjects.ingest("prod", "event", 3), "good-1", b"{}", 0)
    nobody = SpooledMessage("nobody.listens.here", "lost-1", b"{}", 0)
    started = time.monotonic()
    outcomes = await publisher._send([nobody, good])
    publisher.stream = "NOT-INGEST"
    (wrong_stream,) = await publisher._send([SpooledMessage(good.subject, "good-2", b"{}", 0)])
    assert time.monotonic() - started < config.nats.publish_timeout / 2
    assert isinstance(outcomes[0], Rejected) and outcomes[0].reason is Reason.unavailable
    assert isinstance(outcomes[1], Accepted) and outcomes[1].seq == 1
    assert isinstance(wrong_stream, Rejected) and wrong_stream.reason is Reason.unavailable
    assert publisher.pending == 0


async def test_a_missing_ack_is_unavailable_after_the_timeout(nats_server: NatsServer, tmp_path: Path) -> None:
    """Someone listens on the subject but never answers (no JetStream behind it): the request
    answers `unavailable` after `publish_timeout`, and forgets the message's reply token."""
    config = config_for(nats_server.url, tmp_path)
    nc = await bus.connect(config, name="test-publish")
    silent = await nats.connect(nats_server.url)
    try:
        await silent.subscribe("silent.subject")
        await silent.flush()
        publisher = Publisher(nc, nc.jetstream(), config)
        publisher.timeout = 0.5
        started = time.monotonic()
        (outcome,) = await publisher._send([SpooledMessage("silent.subject", "m-1", b"{}", 0)])
        waited = time.monotonic() - started
        assert isinstance(outcome, Rejected) and outcome.reason is Reason.unavailable
        assert 0.45 <= waited < 3
        assert publisher.pending == 0
    finally:
        await silent.close()
        await nc.close()


async def test_a_message_id_cannot_inject_protocol_lines(connected: tuple[Client, Config]) -> None:
    """The publish path writes NATS protocol itself (`gateway.publish._hpub`): a client's `_id`
    with line breaks stays one header value (sanitised as nats-py does), stored once, and the
    connection carries on."""
    nc, config = connected
    publisher = Publisher(nc, nc.jetstream(), config)
    evil = SpooledMessage(subjects.ingest("prod", "event", 1), "e1\r\nPUB inlet.prod.event.2 2\r\nhi\r\n", b"{}", 0)
    (outcome,) = await publisher._send([evil])
    assert isinstance(outcome, Accepted)
    stored = await nc.jetstream().get_msg(config.nats.stream, outcome.seq)
    assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == "e1  PUB inlet.prod.event.2 2  hi"
    (after,) = await publisher._send([SpooledMessage(subjects.ingest("prod", "event", 2), "e2", b"{}", 0)])
    assert isinstance(after, Accepted) and after.seq == outcome.seq + 1
    assert (await nc.jetstream().stream_info(config.nats.stream)).state.messages == 2
