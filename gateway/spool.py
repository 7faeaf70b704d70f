"""The spool: where the gateway keeps accepted messages while JetStream cannot take them.

When the bus is unreachable (or does not acknowledge in time), the gateway appends the
request's messages to a local, append-only spool, fsyncs, and only then answers 2xx. While the
spool holds anything, new messages are spooled too, so nothing overtakes what is waiting: when
JetStream is back, the spool replays oldest first, with the original `Nats-Msg-Id`, and each
segment file is deleted only after JetStream acknowledged every message in it. A replay cut
short (crash, second outage) is repeated, and JetStream's dedupe window absorbs the repeats.

Limits are explicit: `max_bytes` on disk and `max_age` of the oldest message. The full-buffer
policy is `refuse`: past either limit, new requests get 503 with `Retry-After` (the client
retries; nothing already accepted is ever dropped to make room).

Format: segment files `<seq>.spool`, each a run of frames: 4-byte big-endian length + a
msgpack `SpooledMessage`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from inlet.durable import fsync_path

log = logging.getLogger("inlet.gateway.spool")

_LENGTH = struct.Struct(">I")
SEGMENT_BYTES = 8 * 1024 * 1024


class SpooledMessage(msgspec.Struct, array_like=True, gc=False):
    subject: str
    message_id: str
    payload: bytes
    spooled_ms: int


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(SpooledMessage).decode

# Publishes a run of messages in order; returns how many of them JetStream acknowledged.
PublishRun = Callable[[list[SpooledMessage]], Awaitable[int]]


_claimed: list[int] = []  # lock file descriptors, held for the life of the process


def claim_directory(first: Path, most: int = 256) -> Path:
    """The spool directory of one of several gateway processes sharing a port (`[http]
    reuse_port`): slots `first`, `first-2`, `first-3`, ..., each owned through an exclusive
    `flock` on its `.lock` for the life of the process. A crashed process's lock goes with it,
    so its restart (or any gateway that starts next) takes the slot and replays what it holds;
    slots holding spooled messages are taken first. Unowned slots that still hold messages are
    a WARNING: they wait for a gateway to take them (more processes, or a restart)."""
    slots = [first] + [first.with_name(f"{first.name}-{n}") for n in range(2, most + 1)]
    existing = [s for s in slots if s.is_dir()]
    ordered = sorted(existing, key=lambda s: not any(s.glob("*.spool"))) + [s for s in slots if not s.is_dir()]
    for slot in ordered:
        slot.mkdir(parents=True, exist_ok=True)
        fd = os.open(slot / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _claimed.append(fd)
        waiting = [s.name for s in existing if s != slot and any(s.glob("*.spool")) and not _locked(s)]
        if waiting:
            log.warning("Spool directories %s hold messages no gateway owns; a gateway that starts takes "
                        "them over and replays them.", waiting)
        return slot
    raise RuntimeError(f"all {most} spool slots under {first.parent} are taken")


def _locked(slot: Path) -> bool:
    try:
        fd = os.open(slot / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may just have taken
    return False


class Spool:
    def __init__(self, directory: Path, max_bytes: int, max_age_s: float) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_s * 1000)
        directory.mkdir(parents=True, exist_ok=True)
        self._segments = sorted(directory.glob("*.spool"), key=lambda p: int(p.stem))
        for stale in directory.glob("*.tmp"):
            stale.unlink()
        self.bytes = sum(p.stat().st_size for p in self._segments)
        self.messages = 0
        self._oldest_ms: int | None = None
        self._next = int(self._segments[-1].stem) + 1 if self._segments else 0
        self._current: Path | None = None
        self._lock = asyncio.Lock()
        if self._segments:
            log.warning("Found %d spooled bytes from an earlier run; they will be replayed.", self.bytes)

    @property
    def active(self) -> bool:
        """True while anything waits: new messages must queue behind it."""
        return bool(self._segments)

    def refusal(self, size: int) -> str:
        """Why `size` more bytes cannot be spooled now ('' when they can)."""
        if self.bytes + size > self.max_bytes:
            return f"the spool is full ({self.bytes} of {self.max_bytes} bytes)"
        if self._oldest_ms is not None and time.time() * 1000 - self._oldest_ms > self.max_age_ms:
            return "the spool holds messages older than its age limit"
        return ""

    async def append(self, messages: list[SpooledMessage]) -> None:
        """Durably append (write + fsync) before the caller answers 2xx."""
        frames = b"".join(_LENGTH.pack(len(b)) + b for b in map(_encode, messages))
        async with self._lock:
            await asyncio.to_thread(self._write, frames)
            self.bytes += len(frames)
            self.messages += len(messages)
            if self._oldest_ms is None:
                self._oldest_ms = min(m.spooled_ms for m in messages)

    def _write(self, frames: bytes) -> None:
        if self._current is None or self._current.stat().st_size > SEGMENT_BYTES:
            self._current = self.directory / f"{self._next}.spool"
            self._next += 1
            self._segments.append(self._current)
            new = True
        else:
            new = False
        with open(self._current, "ab") as out:
            out.write(frames)
            out.flush()
            os.fsync(out.fileno())
        if new:
            fsync_path(self.directory)

    async def replay(self, publish: PublishRun) -> bool:
        """Replay every segment in order; True when the spool is empty afterwards."""
        while True:
            async with self._lock:
                if not self._segments:
                    self._oldest_ms = None
                    self.messages = 0
                    return True
                segment = self._segments[0]
                if segment == self._current:
                    self._current = None  # new appends go to a fresh segment
            messages = await asyncio.to_thread(_read, segment)
            acked = await publish(messages) if messages else 0
            if acked < len(messages):
                return False  # the bus went away again; try later, from this segment
            async with self._lock:
                size = segment.stat().st_size
                segment.unlink()
                self._segments.pop(0)
                self.bytes -= size
                self.messages = max(0, self.messages - len(messages))
            log.info("Replayed %d spooled messages from %s.", len(messages), segment.name)


def _read(segment: Path) -> list[SpooledMessage]:
    data = segment.read_bytes()
    out: list[SpooledMessage] = []
    pos = 0
    while pos + _LENGTH.size <= len(data):
        (length,) = _LENGTH.unpack_from(data, pos)
        frame = data[pos + _LENGTH.size : pos + _LENGTH.size + length]
        if len(frame) < length:
            log.warning("Spool segment %s ends in a torn frame; it was never acknowledged.", segment.name)
            break
        out.append(_decode(frame))
        pos += _LENGTH.size + length
    return out

