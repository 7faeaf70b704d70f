"""Publishing to JetStream: pipelined, deduplicated, and answered only after the ack (or the
spool's fsync).

All messages of one request are sent before any ack is awaited, so a batch of 1,000 costs one
round trip, not 1,000. Each carries `Nats-Msg-Id`, so a client that retries after a lost
response is stored once. A message counts as accepted only when JetStream acknowledged it, or
when it is durably in the spool because JetStream could not take it (`gateway.spool`);
otherwise it is `Reason.unavailable` (503 + `Retry-After`).

The publish path is our own rather than nats-py's `publish_async` (issue 16, BENCHMARKS.md).
Under batches of 100, py-spy put 60% of the batch handler in `publish_async` (per message an
`asyncio.wait_for` on a semaphore, which yields to the loop so the flusher wrote every message
with its own socket write, a future with a done callback, a `wait_for` for the ack, a NUID and
a `json.loads` of the ack). Here each message's `HPUB` command is formatted once (`_hpub`;
nats-py's `publish` stays the path for anything unusual or while disconnected) and a request's
commands are queued as one write; its reply subject is `<inbox>.<counter>` on one wildcard
subscription, each ack is decoded by msgspec into `PubAck` and filed into the request's
outcome list, and one timer per request turns what is still missing into `unavailable`.
JetStream sees the same subjects and `Nats-Msg-Id` / `Nats-Expected-Stream` headers as before,
so dedupe and the guarantees above are unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from gateway.ingest_rates import RATES
from gateway.spool import Spool, SpooledMessage
from inlet import messages, subjects
from inlet.config import Config
from inlet.messages import BusMessage
from inlet.outcomes import Reason, Rejected
from inlet.schemas.failures import PREFIX as FAILURE_PREFIX
from inlet.schemas.failures import STREAM as FAILURE_STREAM
from inlet.schemas.failures import SchemaFailure
from inlet.telemetry import EVENTS_ACCEPTED, PUBLISH_SECONDS

log = logging.getLogger("inlet.gateway.publish")

RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Accepted:
    """JetStream has the message (`seq` is its stream sequence), or the spool has it."""

    seq: int
    spooled: bool = False


class ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class PubAck(msgspec.Struct):
    """JetStream's answer to a publish: the stored sequence (the original's for a duplicate),
    or an error (wrong stream, stream full, ...)."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: ApiError | None = None


_decode_ack = msgspec.json.Decoder(PubAck).decode


class _Waiting:
    """One `_send` call's messages awaiting their acks: outcomes fill in by index, `done`
    resolves when the last arrives or the timer gives up on the rest."""

    __slots__ = ("outcomes", "left", "done")

    def __init__(self, count: int, done: asyncio.Future[None]) -> None:
        self.outcomes: list[Accepted | Rejected | None] = [None] * count
        self.left = count
        self.done = done

    def settle(self, index: int, outcome: Accepted | Rejected) -> None:
        if self.outcomes[index] is None:
            self.outcomes[index] = outcome
            self.left -= 1
            if self.left == 0 and not self.done.done():
                self.done.set_result(None)

    def expire(self) -> None:
        """The publish timeout: stop waiting; what has no ack stays None (unavailable)."""
        if not self.done.done():
            self.done.set_result(None)


class Publisher:
    def __init__(self, nc: Client, js: JetStreamContext, config: Config, spool: Spool | None = None) -> None:
        self.nc = nc
        self.js = js
        self.spool = spool
        self.partitions = config.nats.partitions
        self.stream = config.nats.stream
        self.timeout = config.nats.publish_timeout
        self.max_pending = config.nats.max_pending_publishes
        self._inbox = ""  # "<inbox prefix>.<nuid>.", subscribed on first publish
        self._tokens = itertools.count()
        self._waiting: dict[int, tuple[_Waiting, int]] = {}  # reply token → (request, index)

    @property
    def pending(self) -> int:
        """Publishes sent and not yet acknowledged (nor timed out)."""
        return len(self._waiting)

    def subject(self, message: BusMessage | SchemaFailure) -> str:
        if isinstance(message, SchemaFailure):
            return message.subject  # the failure store (docs/schemas.md), not INGEST
        if isinstance(message, (messages.DeleteProfile, messages.UnlinkIdentity)):
            key = message.identity.key
        elif isinstance(message, messages.Record) and message.record_class == "account":
            key = "account:" + message.account_key  # accounts route by their key
        elif message.identities:
            key = message.identities[0].key
        else:
            key = message.message_id
        part = subjects.partition(key, self.partitions)
        return subjects.ingest(message.sandbox, messages.kind_of(message), part)

    async def publish(self, batch: list[BusMessage | SchemaFailure]) -> list[Accepted | Rejected]:
        """Publish all, await all acks; one outcome per message, in order."""
        prepared = [
            SpooledMessage(self.subject(m), m.message_id, messages.encode(m), int(time.time() * 1000)) for m in batch
        ]
        if self.spool is not None and (self.spool.active or not self.nc.is_connected):
            spooled = await self._spool(prepared)
            self._count(batch, spooled)
            return spooled
        if not self.nc.is_connected:
            raise Rejected(Reason.unavailable, "the event bus is unreachable", RETRY_AFTER_SECONDS)
        if self.pending + len(batch) > self.max_pending:
            raise Rejected(Reason.unavailable, "the gateway is overloaded", 1)
        with PUBLISH_SECONDS.time():
            outcomes = await self._send(prepared)
        failed = [i for i, o in enumerate(outcomes) if isinstance(o, Rejected)]
        if failed and self.spool is not None:
            spooled = await self._spool([prepared[i] for i in failed])
            for i, outcome in zip(failed, spooled):
                outcomes[i] = outcome
        self._count(batch, outcomes)
        return outcomes

    def _count(self, batch: list[BusMessage | SchemaFailure], outcomes: list[Accepted | Rejected]) -> None:
        for message, outcome in zip(batch, outcomes):
            if isinstance(outcome, Accepted):
                kind = "schema_failure" if isinstance(message, SchemaFailure) else messages.kind_of(message)
                EVENTS_ACCEPTED.labels(kind, str(outcome.spooled).lower()).inc()
                if isinstance(message, (messages.Event, messages.Record)):
                    RATES.count(message.sandbox, message.dataset, message.source)  # the workspace's chart

    async def _send(self, prepared: list[SpooledMessage]) -> list[Accepted | Rejected]:
        """Publish each with a reply subject of its own, then wait (at most `timeout`) until
        every ack is in; a message without an ack by then is `unavailable`."""
        if not self._inbox:
            inbox = self.nc.new_inbox() + "."
            await self.nc.subscribe(inbox + "*", cb=self._on_ack)
            self._inbox = inbox
        loop = asyncio.get_running_loop()
        waiting = _Waiting(len(prepared), loop.create_future())
        tokens = []
        commands: list[bytes] = []
        queued: list[tuple[int, int]] = []  # (token, index) of the commands
        direct = self.nc.is_connected and hasattr(self.nc, "_send_command")
        for index, item in enumerate(prepared):
            token = next(self._tokens)
            stream = FAILURE_STREAM if item.subject.startswith(FAILURE_PREFIX) else self.stream
            self._waiting[token] = (waiting, index)
            tokens.append(token)
            reply = f"{self._inbox}{token}"
            command = _hpub(item, reply, stream, self.nc.max_payload) if direct else None
            if command is not None:
                commands.append(command)
                queued.append((token, index))
                continue
            try:  # not connected (nats-py buffers or refuses), or an unusual subject / size
                await self.nc.publish(item.subject, item.payload, reply=reply,
                                      headers={"Nats-Msg-Id": item.message_id, "Nats-Expected-Stream": stream})
            except Exception as exc:
                self._waiting.pop(token, None)
                waiting.settle(index, _unavailable(exc))
        if commands:
            try:
                await self.nc._send_command(b"".join(commands))
                if self.nc._flush_queue is not None and self.nc._flush_queue.empty():
                    await self.nc._flush_pending()
            except Exception as exc:  # the acks will not come; answer now rather than at the timeout
                for token, index in queued:
                    if self._waiting.pop(token, None) is not None:
                        waiting.settle(index, _unavailable(exc))
        if waiting.left:
            timer = loop.call_later(self.timeout, waiting.expire)
            try:
                await waiting.done
            finally:
                timer.cancel()
                for token in tokens:
                    self._waiting.pop(token, None)
        return [o if o is not None else _unavailable(TimeoutError(f"no ack within {self.timeout} s"))
                for o in waiting.outcomes]

    async def _on_ack(self, msg: Msg) -> None:
        """File one ack into its request's outcomes (late or unknown ones are dropped: their
        request has already answered `unavailable`, and a client retry is deduplicated)."""
        try:
            entry = self._waiting.pop(int(msg.subject[len(self._inbox):]), None)
        except ValueError:
            return
        if entry is None:
            return
        waiting, index = entry
        if not msg.data:  # a status message: no stream listens on the subject (503)
            status = msg.headers.get("Status", "") if msg.headers else ""
            waiting.settle(index, _unavailable(RuntimeError(f"no JetStream stream answered (status {status})")))
            return
        try:
            ack = _decode_ack(msg.data)
        except msgspec.DecodeError as exc:
            waiting.settle(index, _unavailable(exc))
            return
        if ack.error is not None:
            waiting.settle(index, _unavailable(RuntimeError(
                f"JetStream error {ack.error.code}/{ack.error.err_code}: {ack.error.description}")))
        else:
            waiting.settle(index, Accepted(ack.seq))

    async def _spool(self, prepared: list[SpooledMessage]) -> list[Accepted | Rejected]:
        assert self.spool is not None
        refusal = self.spool.refusal(sum(len(p.payload) for p in prepared))
        if refusal:
            log.warning("Refusing %d messages: %s.", len(prepared), refusal)
            return [Rejected(Reason.unavailable, refusal, RETRY_AFTER_SECONDS) for _ in prepared]
        await self.spool.append(prepared)
        return [Accepted(0, spooled=True) for _ in prepared]

    async def replay_run(self, run: list[SpooledMessage]) -> int:
        """Publish spooled messages in order; how many from the start were acknowledged."""
        if not self.nc.is_connected:
            return 0
        outcomes = await self._send(run)
        for count, outcome in enumerate(outcomes):
            if isinstance(outcome, Rejected):
                return count
        return len(outcomes)

    async def replay_forever(self, interval: float = 0.5) -> None:
        """While the app runs: whenever the bus is back and the spool holds anything, drain it."""
        assert self.spool is not None
        while True:
            if self.spool.active and self.nc.is_connected:
                try:
                    if await self.spool.replay(self.replay_run):
                        log.info("The spool is empty; publishing directly again.")
                except Exception:
                    log.exception("Spool replay failed; retrying.")
            await asyncio.sleep(interval)


_HEADER_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


def _hpub(item: SpooledMessage, reply: str, stream: str, max_payload: int) -> bytes | None:
    """The NATS protocol command publishing `item` with its headers, or None when nats-py's own
    `publish` should handle it (a subject with whitespace, a payload over the server's limit:
    it raises the proper error). One `bytes` per message, joined per request, is what
    `nc.publish` would queue, without its per-call header loop, regex and flusher kick."""
    if len(item.payload) > max_payload or any(c in item.subject for c in " \t\r\n"):
        return None
    message_id = item.message_id.strip().translate(_HEADER_NEWLINES)  # as nats-py sanitises values
    header = b"NATS/1.0\r\nNats-Msg-Id: %b\r\nNats-Expected-Stream: %b\r\n\r\n" % (
        message_id.encode(), stream.encode())
    return b"HPUB %b %b %d %d\r\n%b%b\r\n" % (item.subject.encode(), reply.encode(), len(header),
                                                 len(header) + len(item.payload), header, item.payload)


def _unavailable(exc: BaseException) -> Rejected:
    log.warning("Publish not acknowledged by JetStream: %r", exc)
    return Rejected(
        Reason.unavailable, "the event bus did not acknowledge the message", RETRY_AFTER_SECONDS
    )
