"""`inlet dead-letters ls | replay`: what the workers parked, and redriving it after a fix.

A worker parks a message it can never apply (`worker.dead_letter`) in stream `DEADLETTER`,
with its reason, original subject, stream sequence and message id. `ls` lists them; `replay`
publishes each one back to its original subject in `INGEST` and then removes it from
`DEADLETTER`. Redriving never doubles anything:

- the payload is the original bus message, with its original message id, so a worker that
  applied it already (its `applied` set) skips it;
- the replay is addressed to the consumer that parked it (`Inlet-Replay-For`); the others
  (the lake, when the profile worker parked it) have the message and ack the replay unread;
- its `Nats-Msg-Id` is `replay/<dead-letter sequence>/<original id>`, so replaying the same
  dead letter twice (a retried command) is stored once, while the original id stays in the
  duplicate window's way no longer.

A message that still cannot be applied is parked again, under a new sequence.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from inlet import bus, subjects
from inlet.config import Config
from worker import dead_letter as dl


class DeadLetter(msgspec.Struct, kw_only=True):
    seq: int
    time: str
    consumer: str
    reason: str
    subject: str
    stream_seq: int
    message_id: str
    detail: str
    bytes: int


async def _list(js: JetStreamContext, args: argparse.Namespace) -> list[tuple[DeadLetter, bytes]]:
    """The dead letters that match the filters, oldest first, with their payloads."""
    out: list[tuple[DeadLetter, bytes]] = []
    try:
        info = await js.stream_info(subjects.DEAD_LETTER_STREAM)
    except NotFoundError:
        return out
    wanted = set(getattr(args, "seqs", None) or [])
    seq = info.state.first_seq
    filter_subject = subjects.dead_letter(args.sandbox, "*") if args.sandbox else None
    while seq and seq <= info.state.last_seq:
        try:
            raw = await js.get_msg(subjects.DEAD_LETTER_STREAM, seq=seq, subject=filter_subject or ">", next=True)
        except NotFoundError:
            break
        assert raw.seq is not None
        seq = raw.seq + 1
        headers = raw.headers or {}
        stored_ms = int(headers.get(dl.TIME, "0") or 0)
        letter = DeadLetter(
            seq=raw.seq,
            time=_iso(stored_ms) if stored_ms else "",
            consumer=headers.get(dl.CONSUMER) or (raw.subject or "").rsplit(".", 1)[-1],
            reason=headers.get(dl.REASON, ""),
            subject=headers.get(dl.SUBJECT, ""),
            stream_seq=int(headers.get(dl.STREAM_SEQ, "0") or 0),
            message_id=headers.get(dl.MESSAGE_ID, ""),
            detail=headers.get(dl.DETAIL, ""),
            bytes=len(raw.data or b""),
        )
        if wanted and letter.seq not in wanted:
            continue
        if (args.reason and letter.reason != args.reason) or (args.consumer and letter.consumer != args.consumer):
            continue
        out.append((letter, raw.data or b""))
        if args.limit and len(out) >= args.limit:
            break
    return out


async def _replay(js: JetStreamContext, config: Config, letter: DeadLetter, data: bytes, keep: bool) -> int:
    """Publish one dead letter back into INGEST; its new stream sequence."""
    if not letter.subject:
        raise ValueError(f"dead letter {letter.seq} names no original subject")
    headers = {
        "Nats-Msg-Id": f"replay/{letter.seq}/{letter.message_id}",
        dl.REPLAY_FOR: letter.consumer,
        dl.MESSAGE_ID: letter.message_id,
    }
    ack = await js.publish(letter.subject, data, stream=config.nats.stream, headers=headers)
    if not keep:
        await js.delete_msg(subjects.DEAD_LETTER_STREAM, letter.seq)
    return int(ack.seq)


async def _run(args: argparse.Namespace, config: Config) -> int:
    nc = await bus.connect(config, name="inlet-dead-letters")
    try:
        js = bus.jetstream(nc, config)
        letters = await _list(js, args)
        if args.action == "ls":
            if args.json:
                print(json.dumps([msgspec.to_builtins(letter) for letter, _ in letters], indent=2))
            else:
                print(_table(letters))
            return 0
        if not letters:
            print("No dead letters match.", file=sys.stderr)
            return 0
        failed = 0
        for letter, data in letters:
            try:
                seq = await _replay(js, config, letter, data, args.keep)
            except Exception as exc:
                failed += 1
                print(f"dead letter {letter.seq}: not replayed ({exc})", file=sys.stderr)
                continue
            print(f"dead letter {letter.seq} → {letter.subject} (stream sequence {seq}) for {letter.consumer}")
        return 1 if failed else 0
    finally:
        await bus.close(nc)


def _table(letters: list[tuple[DeadLetter, bytes]]) -> str:
    if not letters:
        return "No dead letters."
    rows = [("SEQ", "TIME", "CONSUMER", "REASON", "SUBJECT", "MESSAGE ID", "DETAIL")]
    rows += [(str(l.seq), l.time, l.consumer, l.reason, l.subject, l.message_id[:60], l.detail[:80])
             for l, _ in letters]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]) for r in rows)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="inlet dead-letters", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = top.add_subparsers(dest="action", required=True)
    for name, help_text in (("ls", "list dead letters (reason, subject, time)"),
                            ("replay", "redrive dead letters into the stream, then remove them")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--sandbox", default="", help="only this sandbox")
        p.add_argument("--reason", default="", help="only this reason (undecodable, apply_failed)")
        p.add_argument("--consumer", default="", help="only what this consumer parked (profile-0, lake)")
        p.add_argument("--limit", type=int, default=0, help="at most this many (0: all)")
        if name == "ls":
            p.add_argument("--json", action="store_true", help="print JSON")
        else:
            p.add_argument("seqs", type=int, nargs="*", metavar="SEQ", help="dead-letter sequences (from ls)")
            p.add_argument("--all", action="store_true", help="every dead letter that matches the filters")
            p.add_argument("--keep", action="store_true", help="keep them in DEADLETTER after the replay")
    return top


def main(argv: list[str], config: Config) -> int:
    args = parser().parse_args(argv)
    if args.action == "replay" and not args.seqs and not args.all:
        print("inlet dead-letters replay: name dead-letter sequences (see `ls`), or --all", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, config))
