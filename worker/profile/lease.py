"""One writer per profile shard: a lease in a replicated NATS KV bucket.

Two processes started with the same `--shard` (a second machine by mistake, a supervisor and
an operator at once) would each consume part of the shard's stream into their own store, and
both stores would be wrong. So a shard takes the key `shard-<i>` of the bucket
`inlet_profile_shards` before it consumes: `create` succeeds only if nobody holds it; renewals are
`update`s checked against the revision we last wrote, so a renewal after someone else took the
key fails instead of stealing it back. The bucket's TTL (`profile.shard_lease`) removes the key
of a holder that stopped renewing (kill -9, power loss), so a restarted shard waits at most one
lease period.

A holder counts its lease as valid for half the TTL after it *sent* its last successful
renewal. The server cannot expire the key sooner than a full TTL after that, so a holder that
stalls (GC pause, SIGSTOP, network partition) stops writing before anyone else can start.
Only one machine's monotonic clock is ever compared with itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from inlet import buckets

log = logging.getLogger("inlet.worker.profile.lease")

BUCKET = "inlet_profile_shards"
REFUSED_EXIT = 3


class Holder(msgspec.Struct, kw_only=True):
    holder: str
    shard: int
    shards: int
    since_ms: int


class LeaseRefused(Exception):
    """Another live process holds the shard."""


async def open_bucket(js: JetStreamContext, ttl: float, replicas: int) -> KeyValue:
    return await buckets.open_bucket(js, BUCKET, history=1, replicas=replicas, ttl=ttl)


def key(shard: int) -> str:
    return f"shard-{shard}"


class Lease:
    def __init__(self, kv: KeyValue, shard: int, shards: int, ttl: float) -> None:
        self.kv = kv
        self.shard = shard
        self.shards = shards
        self.ttl = ttl
        self.me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.revision = 0
        self.valid_until = 0.0
        self.lost = asyncio.Event()

    def _value(self) -> bytes:
        return msgspec.json.encode(Holder(holder=self.me, shard=self.shard, shards=self.shards,
                                          since_ms=int(time.time() * 1000)))

    async def acquire(self) -> None:
        """Take the lease, waiting up to a bit more than one TTL for a dead holder's key to
        expire; raises `LeaseRefused` naming the holder if it is still renewed."""
        deadline = time.monotonic() + self.ttl * 1.5
        while True:
            sent = time.monotonic()
            try:
                self.revision = await self.kv.create(key(self.shard), self._value())
                self.valid_until = sent + self.ttl / 2
                log.info("Shard %d lease taken by %s.", self.shard, self.me)
                return
            except KeyWrongLastSequenceError:
                holder = await self._holder()
                if await self._take_over_dead(holder):
                    return
            except Exception as exc:  # the bucket has no leader yet (just created, a node restarting)
                log.warning("Shard %d lease: %r; retrying.", self.shard, exc)
                deadline = max(deadline, time.monotonic() + self.ttl)
                await asyncio.sleep(0.5)
                continue
            if time.monotonic() > deadline:
                raise LeaseRefused(f"profile shard {self.shard} is held by {holder} (renewed within the last "
                                   f"{self.ttl:.0f} s); refusing to consume it too")
            log.info("Shard %d is held by %s; waiting for its lease to expire.", self.shard, holder)
            await asyncio.sleep(min(1.0, self.ttl / 4))

    async def _take_over_dead(self, holder: str) -> bool:
        """A holder on this machine whose process is gone (kill -9, then a restart) is not
        waited for: its key is replaced, checked against the revision we read."""
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
            return False
        try:
            entry = await self.kv.get(key(self.shard))
            sent = time.monotonic()
            self.revision = await self.kv.update(key(self.shard), self._value(), last=entry.revision)
        except Exception:
            return False
        self.valid_until = sent + self.ttl / 2
        log.info("Shard %d lease taken over from %s (its process is gone).", self.shard, holder)
        return True

    async def until_valid(self) -> bool:
        """Wait while the lease is lapsed (NATS unreachable); False once it is lost."""
        while not self.valid():
            if self.lost.is_set():
                return False
            await asyncio.sleep(0.1)
        return True

    async def _holder(self) -> str:
        try:
            entry = await self.kv.get(key(self.shard))
        except Exception:
            return "a process that just released it"
        if entry.value is None:
            return "nobody (deleted)"
        try:
            return msgspec.json.decode(entry.value, type=Holder).holder
        except msgspec.DecodeError:
            return repr(entry.value[:80])

    def valid(self) -> bool:
        return not self.lost.is_set() and time.monotonic() < self.valid_until

    async def renew_forever(self) -> None:
        """Renew every TTL/6; a refused renewal (someone else's revision) or a lease past its
        validity marks it lost, after which the shard stops."""
        while not self.lost.is_set():
            await asyncio.sleep(self.ttl / 6)
            sent = time.monotonic()
            try:
                self.revision = await self.kv.update(key(self.shard), self._value(), last=self.revision)
                self.valid_until = sent + self.ttl / 2
            except KeyWrongLastSequenceError:
                if await self._recreate(sent):
                    continue
                log.error("Shard %d lease was taken by %s; this process stops consuming.", self.shard,
                          await self._holder())
                self.lost.set()
            except Exception as exc:
                # NATS unreachable: past validity the shard pauses (until_valid), and resumes
                # when a renewal succeeds again; it never writes on a lapsed lease.
                log.warning("Shard %d lease renewal failed (%s); retrying.", self.shard, exc)

    async def _recreate(self, sent: float) -> bool:
        """Our key expired while NATS was away and nobody took it: take it again."""
        try:
            self.revision = await self.kv.create(key(self.shard), self._value())
        except Exception:
            return False
        self.valid_until = sent + self.ttl / 2
        log.warning("Shard %d lease had expired (NATS was unreachable); taken again.", self.shard)
        return True

    async def release(self) -> None:
        """On a clean stop: delete our key (only if still ours) so a successor need not wait."""
        if self.lost.is_set():
            return
        try:
            await self.kv.delete(key(self.shard), last=self.revision)
        except Exception as exc:
            log.warning("Could not release the shard %d lease (%s); it expires by itself.", self.shard, exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
