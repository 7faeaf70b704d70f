"""Dead letters: a message a worker can never apply is parked with its reason, never retried forever.

Only poison goes here: a message that cannot be decoded or that its own content makes fail.
A failure of the worker's store (full map or disk) is retried instead (`worker.profile.handler`).

The original bytes go to `inlet.<sandbox>.dead.<consumer>` (stream `DEADLETTER`) with headers
naming the reason, the original subject, stream sequence and message id, the consumer and the
time; then the source message is terminated so it is not redelivered. One poison message never
blocks the partition behind it. Parking is a loss until someone acts, so it is logged at
ERROR and counted (`inlet_dead_letters`), and `inlet dead-letters replay` redrives the message
into `INGEST` after a fix (`inlet.dead_letters`). A replay is addressed to the consumer that
parked it (`Inlet-Replay-For`): the other consumers already have the message and skip it.
"""

from __future__ import annotations

import logging
import time

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from inlet import subjects
from inlet.outcomes import Reason
from inlet.telemetry import DEAD_LETTERS

log = logging.getLogger("inlet.dead_letter")

REASON = "Inlet-Reason"
DETAIL = "Inlet-Detail"
SUBJECT = "Inlet-Subject"
STREAM_SEQ = "Inlet-Stream-Seq"
MESSAGE_ID = "Inlet-Msg-Id"
CONSUMER = "Inlet-Consumer"
TIME = "Inlet-Time"
# On a replayed message in INGEST: the one consumer that should apply it.
REPLAY_FOR = "Inlet-Replay-For"


async def dead_letter(
    js: JetStreamContext, msg: Msg, consumer: str, reason: Reason, detail: str
) -> None:
    """Park `msg` and terminate it. Raises if the dead-letter stream did not take it (the
    message is then left unacknowledged, and comes back)."""
    parts = msg.subject.split(".")
    sandbox = parts[1] if len(parts) > 2 else "unknown"
    sent = msg.headers or {}
    headers = {
        REASON: reason.value,
        DETAIL: detail[:1024].replace("\r", " ").replace("\n", " "),
        SUBJECT: msg.subject,
        STREAM_SEQ: str(msg.metadata.sequence.stream),
        # A replay carries the original id beside its own `Nats-Msg-Id`.
        MESSAGE_ID: sent.get(MESSAGE_ID) or sent.get("Nats-Msg-Id", ""),
        CONSUMER: consumer,
        TIME: str(int(time.time() * 1000)),
    }
    await js.publish(subjects.dead_letter(sandbox, consumer), msg.data, headers=headers)
    await msg.term()
    DEAD_LETTERS.labels(consumer, reason.value).inc()
    log.error("Dead-lettered message %s of %s from %s: %s (%s). It is not applied; fix the cause, then "
              "`inlet dead-letters replay`.", headers[STREAM_SEQ], msg.subject, consumer, reason.value, headers[DETAIL])


def replay_for_another(msg: Msg, consumer: str) -> bool:
    """A replayed message addressed to another consumer: this one has it already."""
    target = (msg.headers or {}).get(REPLAY_FOR)
    return bool(target) and target != consumer
