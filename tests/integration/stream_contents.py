"""What JetStream actually stored: the messages of the `INGEST` stream on a subject, in
stream order, read by an ephemeral consumer that acknowledges nothing (so the workers'
consumers are untouched).

"Doubles nothing" and "replays in order" are claims about the stream as much as about the
profile: a timeline keyed by message id overwrites a double, and sorting ids hides the order,
so the tests that make those claims read the stream itself.
"""

from __future__ import annotations

import asyncio

import msgspec
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from inlet import messages
from inlet.messages import Event

_decode_id = msgspec.json.Decoder(dict).decode


async def _stored(url: str, subject: str, stream: str) -> list[messages.BusMessage]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream, subjects_filter=subject)
        expected = sum((info.state.subjects or {}).values())
        out: list[messages.BusMessage] = []
        if not expected:
            return out
        sub = await js.pull_subscribe(subject, stream=stream, config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30))
        while len(out) < expected:
            out.extend(messages.decode(m.data) for m in await sub.fetch(min(500, expected - len(out)), timeout=5))
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def stored(url: str, subject: str = "inlet.*.event.*", stream: str = "INGEST") -> list[messages.BusMessage]:
    """Every message stored on `subject` (wildcards allowed), in stream order."""
    return asyncio.run(_stored(url, subject, stream))


def stored_event_ids(url: str, prefix: str = "") -> list[str]:
    """The XDM `_id` of every stored event whose `_id` starts with `prefix`, in stream order."""
    ids = [str(_decode_id(m.xdm).get("_id")) for m in stored(url) if isinstance(m, Event)]
    return [i for i in ids if i.startswith(prefix)]


async def _settled(url: str, consumer: str, stream: str) -> bool:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(stream, consumer)
        return not info.num_pending and not info.num_ack_pending
    finally:
        await nc.close()


def settled(url: str, consumer: str = "profile-0", stream: str = "INGEST") -> bool:
    """The consumer has been delivered everything and has nothing awaiting an ack, so no
    redelivery is still to come (a count read before that could miss a double)."""
    return asyncio.run(_settled(url, consumer, stream))
