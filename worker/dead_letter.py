"""Dead letters: a message a worker cannot apply is parked with its reason, never retried forever.

The original bytes go to `inlet.<sandbox>.dead.<consumer>` (stream `DEADLETTER`) with headers
naming the reason, the original subject and stream sequence; then the source message is
terminated so it is not redelivered. One poison message never blocks the partition behind it.
"""

from __future__ import annotations

import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from inlet import subjects
from inlet.outcomes import Reason

log = logging.getLogger("inlet.dead_letter")


async def dead_letter(
    js: JetStreamContext, msg: Msg, consumer: str, reason: Reason, detail: str
) -> None:
    parts = msg.subject.split(".")
    sandbox = parts[1] if len(parts) > 2 else "unknown"
    headers = {
        "Inlet-Reason": reason.value,
        "Inlet-Detail": detail[:1024].replace("\r", " ").replace("\n", " "),
        "Inlet-Subject": msg.subject,
        "Inlet-Stream-Seq": str(msg.metadata.sequence.stream),
    }
    log.warning("Dead-lettered message %s from %s: %s (%s).",
                headers["Inlet-Stream-Seq"], consumer, reason.value, headers["Inlet-Detail"])
    await js.publish(subjects.dead_letter(sandbox, consumer), msg.data, headers=headers)
    await msg.term()
