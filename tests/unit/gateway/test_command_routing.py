"""Deletes and unlinks are ordered with the events of the same identity only if they travel on
the same subject partition: a profile shard consumes a range of partitions, and JetStream keeps
order per consumer, not across shards. With one shard the stream order alone keeps them
ordered (tests/integration/test_streaming_pipeline.py checks that outcome); this pins the
routing that keeps them ordered when `profile.shards` > 1."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.publish import Publisher
from inlet import subjects
from inlet.config import load
from inlet.messages import DeleteProfile, Event, Record, UnlinkIdentity
from inlet.xdm import Identity

CONFIG = load({})
PUBLISHER = Publisher(None, None, CONFIG)  # type: ignore[arg-type]  # routing needs no connection


def event(*ids: Identity) -> Event:
    return Event(org="O", sandbox="prod", dataset="demo-events", source="t", message_id="m", received_ms=1,
                 timestamp_ms=1, identities=list(ids), xdm=msgspec.Raw(b"{}"))


def partition(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


@pytest.mark.parametrize("value", [f"person-{i}@shop.example" for i in range(8)])
@pytest.mark.parametrize("command", [DeleteProfile, UnlinkIdentity])
def test_a_command_goes_to_the_partition_of_the_events_it_follows(value: str, command: Any) -> None:
    email = Identity("Email", value, primary=True, authenticated=True)
    device = Identity("ECID", "7" * 38)
    sent = command(org="O", sandbox="prod", message_id="c", received_ms=2, identity=email)
    record = Record(org="O", sandbox="prod", dataset="demo-profiles", source="t", message_id="r", received_ms=1,
                    operation="create", identities=[email], xdm=msgspec.Raw(b"{}"))
    routed = {partition(PUBLISHER.subject(m)) for m in (event(email, device), record, sent)}
    assert routed == {str(subjects.partition(email.key, CONFIG.nats.partitions))}
    assert PUBLISHER.subject(sent) == f"inlet.prod.command.{routed.pop()}"
