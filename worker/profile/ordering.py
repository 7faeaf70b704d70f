"""Applying the stream in its order, exactly, even when a fetch's answer is lost.

The identity graph is a fold over the stream, and every shard folds it (docs/scaling.md), so
every shard must apply messages in stream order. JetStream delivers in order, but a pull whose
answer was lost (the NATS node or the stream leader died while it was in flight) leaves those
messages pending until `ack_wait`, and the next pull gets the messages *after* them: applied
first, they would make this shard's graph differ from the others' (a device moved back, a
`lastSeen` earlier than it was).

So the shard remembers the last stream sequence it applied (`stream_position` database,
written after the batch committed and before it is acked: a crash in between leaves it behind,
which only means a redelivery that `applied` skips), and applies only the run of a batch that
continues from it. Past a gap it reads the missing messages straight from the stream by
sequence and applies them first (their pending copies, redelivered later, are skipped by
`applied`); only if the stream cannot be read does it wait for JetStream's redelivery. A gap
whose messages left the stream (`max_age`) is logged at ERROR and passed: they can never come.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from worker.consume import Handler
from worker.profile.store import Store

log = logging.getLogger("inlet.worker.profile.ordering")

_SEQ = struct.Struct(">Q")
KEY = b"last"
GAP_PAUSE = 0.2
# A gap longer than this is left to JetStream's redelivery rather than read message by message.
MAX_GAP_READ = 10_000
# The consumer name in the ack subject of messages read straight from the stream: no consumer
# has it, so their acks go nowhere (the consumer's own copies are acked when redelivered).
GAP_READER = "inlet-gap-reader"


class InOrder:
    def __init__(self, inner: Handler, store: Store, js: JetStreamContext, stream: str) -> None:
        self.inner = inner
        self.store = store
        self.js = js
        self.stream = stream
        self.db = store.env.open_db(b"stream_position")
        with store.env.begin() as txn:
            raw = txn.get(KEY, db=self.db)
        self.position: int | None = _SEQ.unpack(raw)[0] if raw is not None else None

    async def apply(self, msgs: list[Msg]) -> list[Msg]:
        run = await self._in_order(msgs)
        if not run:
            await asyncio.sleep(GAP_PAUSE)  # the missing messages come back after ack_wait
            return []
        done = await self.inner.apply(run)
        finished = {id(m) for m in done}
        position = self.position
        for msg in run:
            # A parked (dead-lettered) message was terminated by the handler: it is finished
            # too, and never comes back, so the position moves past it.
            if id(msg) not in finished and not msg.is_acked:
                break
            position = max(position or 0, msg.metadata.sequence.stream)
        if position is not None and position != self.position:
            await asyncio.to_thread(self._write, position)
            self.position = position
        return done

    async def _in_order(self, msgs: list[Msg]) -> list[Msg]:
        expected = None if self.position is None else self.position + 1
        run: list[Msg] = []
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            if expected is None or seq < expected:
                run.append(msg)  # the first ever, or a redelivery (`applied` skips it)
                expected = max(expected or 0, seq + 1)
            elif seq == expected:
                run.append(msg)
                expected += 1
            elif await self._expired_before(seq):
                log.error("Stream messages %d..%d left the stream before this shard applied them (max_age); "
                          "continuing at %d.", expected, seq - 1, seq)
                run.append(msg)
                expected = seq + 1
            else:
                missing = await self._read_from_stream(expected, seq)
                if missing is None:
                    log.warning("Stream sequence %d arrived before %d (a lost fetch); waiting for the redelivery.",
                                seq, expected)
                    break
                run.extend(missing)
                run.append(msg)
                expected = seq + 1
        return run

    async def _read_from_stream(self, first: int, end: int) -> list[Msg] | None:
        """Messages `first`..`end - 1`, read straight from the stream, or None if it cannot say.

        A fetch whose answer arrived after the client stopped waiting leaves its messages
        pending until `ack_wait`; waiting that out after every such gap stalls the shard under
        load. The stream still has them, so the shard reads them by sequence and applies them
        now. Their pending copies come back later as redeliveries, which `applied` skips and the
        consumer acks. The copies read here answer acks to a subject nobody serves."""
        if end - first > MAX_GAP_READ:
            return None
        out: list[Msg] = []
        for seq in range(first, end):
            try:
                raw = await self.js.get_msg(self.stream, seq)
            except NotFoundError:
                log.error("Stream message %d is gone (deleted before this shard applied it); continuing.", seq)
                continue
            except Exception as exc:
                log.warning("Could not read stream message %d (%s).", seq, exc)
                return None
            reply = f"$JS.ACK.{self.stream}.{GAP_READER}.1.{seq}.0.{time.time_ns()}.0"
            out.append(Msg(self.js._nc, subject=raw.subject or "", reply=reply, data=raw.data or b"",
                           headers=raw.headers))
        return out

    async def _expired_before(self, seq: int) -> bool:
        try:
            info = await self.js.stream_info(self.stream)
        except Exception:
            return False
        return int(info.state.first_seq) >= seq

    def _write(self, position: int) -> None:
        with self.store.env.begin(write=True) as txn:
            txn.put(KEY, _SEQ.pack(position), db=self.db)

    async def tick(self) -> list[Msg]:
        return await self.inner.tick()

    async def close(self) -> list[Msg]:
        return await self.inner.close()
