"""How close stream INGEST is to its retention limits, and the warnings to raise before it bites.

The stream is bounded (`[nats] max_bytes`, `max_age`) with discard=new: at the byte limit
JetStream refuses new messages (the gateway spools them, then answers 503), so size never
deletes what a consumer still needs. Age does: JetStream removes a message older than
`max_age` whether or not every consumer acknowledged it. Both are watched here, for
`inlet status` and `/metrics`:

- usage: stored bytes against `max_bytes`; a warning from `WARN_RATIO` (80 %) of it;
- per consumer, its oldest unacknowledged message (the one after its ack floor): its age
  against `max_age` (a warning from half of it), and whether it is already gone (the stream's
  first sequence passed it: those messages were removed unprocessed).

From `WARN_RATIO` of `max_bytes` on, `trim` (run by every gateway) purges the history that
every consumer has acknowledged, so the limit fills only with what a consumer still needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

log = logging.getLogger("inlet.retention")

WARN_RATIO = 0.8
AGE_WARN_RATIO = 0.5


class ConsumerPosition(msgspec.Struct, kw_only=True):
    name: str
    ack_floor: int  # stream sequence of the last message acknowledged in order
    oldest_unacked_seq: int  # 0: nothing unacknowledged
    oldest_unacked_age_s: float
    lost: bool  # messages it had not acknowledged were removed from the stream


class Retention(msgspec.Struct, kw_only=True):
    stream: str
    messages: int
    bytes: int
    max_bytes: int  # 0: no limit
    max_age_s: float  # 0: no limit
    first_seq: int
    last_seq: int
    consumers: list[ConsumerPosition]
    warnings: list[str]


async def inspect(js: JetStreamContext, stream: str) -> Retention:
    info = await js.stream_info(stream)
    state, config = info.state, info.config
    max_bytes = config.max_bytes if config.max_bytes and config.max_bytes > 0 else 0
    max_age = float(config.max_age or 0)
    positions = []
    for consumer in sorted(await js.consumers_info(stream), key=lambda c: c.name):
        floor = consumer.ack_floor.stream_seq if consumer.ack_floor is not None else 0
        floor = floor or 0
        behind = (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
        oldest, age, lost = 0, 0.0, False
        if behind:
            lost = floor > 0 and floor + 1 < state.first_seq
            try:
                message = await js.get_msg(stream, seq=max(floor + 1, state.first_seq), next=True)
                oldest = message.seq or 0
                age = max(0.0, time.time() - _timestamp(message.time))
            except NotFoundError:
                pass
        positions.append(ConsumerPosition(name=consumer.name, ack_floor=floor, oldest_unacked_seq=oldest,
                                          oldest_unacked_age_s=age, lost=lost))
    return Retention(stream=stream, messages=state.messages, bytes=state.bytes, max_bytes=max_bytes,
                     max_age_s=max_age, first_seq=state.first_seq, last_seq=state.last_seq,
                     consumers=positions, warnings=warnings(stream, state.bytes, max_bytes, max_age, positions))


def warnings(stream: str, used: int, max_bytes: int, max_age: float, consumers: list[ConsumerPosition]) -> list[str]:
    out = []
    if max_bytes and used >= WARN_RATIO * max_bytes:
        full = "full: new messages are refused (spooled, then 503)" if used >= max_bytes else (
            "at the limit new messages are refused (spooled, then 503)")
        out.append(f"stream {stream} holds {used} of {max_bytes} bytes ({used / max_bytes:.0%}); {full}. "
                   "Let the consumers catch up, or raise [nats] max_bytes.")
    for c in consumers:
        if c.lost:
            out.append(f"consumer {c.name}: messages after sequence {c.ack_floor} were removed by max_age "
                       "before it acknowledged them; replay them from the lake or the senders.")
        elif max_age and c.oldest_unacked_age_s >= AGE_WARN_RATIO * max_age:
            out.append(f"consumer {c.name}: its oldest unacknowledged message (seq {c.oldest_unacked_seq}) is "
                       f"{c.oldest_unacked_age_s:.0f} s old; at max_age ({max_age:.0f} s) JetStream deletes it "
                       "unprocessed. Restart or scale the worker, or raise [nats] max_age.")
    return out


async def trim(js: JetStreamContext, stream: str) -> int:
    """Past `WARN_RATIO` of `max_bytes`, purge what every consumer has acknowledged.

    With discard=new a full stream refuses new messages until `max_age` expires old ones, even
    when every consumer is long done with them; trimming the fully acknowledged history first
    keeps the byte limit a bound on the backlog. Only below the lowest ack floor of all
    consumers (a message at or below it was acknowledged by every consumer whose filter it
    matches), and never with no consumer at all. Returns how many messages were purged.
    """
    info = await js.stream_info(stream)
    max_bytes = info.config.max_bytes or 0
    if max_bytes <= 0 or info.state.bytes < WARN_RATIO * max_bytes:
        return 0
    consumers = await js.consumers_info(stream)
    if not consumers:
        return 0
    floor = min((c.ack_floor.stream_seq or 0) if c.ack_floor is not None else 0 for c in consumers)
    if floor < info.state.first_seq:
        return 0
    await js.purge_stream(stream, seq=floor + 1)
    purged = floor + 1 - info.state.first_seq
    log.info("Stream %s held %d of %d bytes: purged %d messages (up to seq %d) that every consumer had "
             "acknowledged.", stream, info.state.bytes, max_bytes, purged, floor)
    return purged


async def trim_forever(js: JetStreamContext, stream: str, interval: float = 5.0) -> None:
    """The gateway's background task (any number of gateways may run it: purging is idempotent)."""
    while True:
        try:
            await trim(js, stream)
        except Exception as exc:  # the bus is away: try again later
            log.debug("Retention trim skipped: %r", exc)
        await asyncio.sleep(interval)


def _timestamp(value: object) -> float:
    """RawStreamMsg.time arrives as a datetime, or as RFC 3339 text in some nats-py versions."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        text = value.rstrip("Z")
        head, _, fraction = text.partition(".")
        moment = datetime.fromisoformat(head + "+00:00").timestamp()
        return moment + (float("0." + fraction[:6]) if fraction.isdigit() else 0.0)
    return time.time()
