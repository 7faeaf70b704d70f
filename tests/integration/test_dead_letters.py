"""A message a worker cannot apply is parked with its reason, and the worker moves on."""

from __future__ import annotations

import asyncio

import msgspec
import nats

from inlet import messages, subjects
from inlet.xdm import Identity
from tests.harness import System


async def _publish_and_read_dead_letters(url: str) -> list[tuple[bytes, dict[str, str]]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.publish(subjects.ingest("prod", "event", 0), b"\xff not a bus message", headers={"Nats-Msg-Id": "poison-1"})
    bad_record = messages.Record(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-profiles", source="t",
                                 message_id="poison-2", received_ms=1, identities=[Identity("Email", "p@shop.example")],
                                 xdm=msgspec.Raw(b"[1, 2, 3]"))
    await js.publish(subjects.ingest("prod", "record", 0), messages.encode(bad_record), headers={"Nats-Msg-Id": "poison-2"})
    sub = await js.pull_subscribe(subjects.dead_letter("prod", "profile-0"), durable="test-dlq", stream=subjects.DEAD_LETTER_STREAM)
    out: list[tuple[bytes, dict[str, str]]] = []
    deadline = asyncio.get_running_loop().time() + 10
    while len(out) < 2 and asyncio.get_running_loop().time() < deadline:
        try:
            for msg in await sub.fetch(2, timeout=1):
                out.append((msg.data, dict(msg.headers or {})))
                await msg.ack()
        except nats.errors.TimeoutError:
            pass
    await nc.close()
    return out


def test_poison_messages_go_to_the_dead_letter_stream_with_their_reason(system: System) -> None:
    dead = asyncio.run(_publish_and_read_dead_letters(system.nats.url))
    reasons = sorted(headers["Inlet-Reason"] for _, headers in dead)
    assert reasons == ["apply_failed", "undecodable"]
    assert any(data == b"\xff not a bus message" for data, _ in dead)
    assert all(h["Inlet-Subject"].startswith("inlet.prod.") and h["Inlet-Stream-Seq"] for _, h in dead)
    # The worker went on: the next good event is applied.
    assert system.post_event(email="after-poison@shop.example").status_code == 200
    system.wait_for(lambda: system.profile("Email", "after-poison@shop.example").status_code == 200, 5)
