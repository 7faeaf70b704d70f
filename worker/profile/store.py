"""The profile store: one LMDB environment, named databases, msgpack values via msgspec.

Data is owned by identities, not by profiles. Each event and record is stored under its owner
identity (the message's authenticated person identity if any, else its primary identity), and
the identity graph says which identities are one profile. A merge then only rewrites graph
membership, and an unlink ("this email is not this person") re-splits the graph: every
identity takes its own data with it, exactly, because nothing was ever copied.

| database   | key                                           | value         |
| ---------- | --------------------------------------------- | ------------- |
| `identity` | `<sandbox>\\0<ns>:<id>` (bounded, below)      | graph id      |
| `graph`    | graph id                                      | `Graph`       |
| `profile`  | graph id                                      | `ProfileMeta` |
| `fragment` | owner id + dataset                            | `Fragment`    |
| `event`    | owner id + timestamp (8 bytes) + message id (bounded) | `StoredEvent` |
| `applied`  | message id (bounded)                          | expiry (ms)   |
| `computed` | owner id + fingerprint (8) + bucket start (8) | `Partial` (`aggregates.py`) |
| `backfill` | fingerprint                                   | `Job` (`backfill.py`) |
| `schema`   | sandbox, class, path, type, dataset           | first seen (ms) |
| `account`  | account id + dataset                          | `Fragment`    |
| `account_meta`   | account id                              | `AccountMeta` (`accounts.py`) |
| `account_person` | account id + owner id + dataset         | `AccountLink` (`accounts.py`) |
| `person_account` | owner id + dataset + NUL + account id   | empty         |

An owner id is a 16-byte hash of sandbox and identity; a graph id is the owner id of the
graph's founder (its earliest identity), which is also the profile id. Replaying the stream
from the start therefore rebuilds the same profile ids.

Key parts that come from clients (identity values, message ids) are `bounded`: LMDB keys are at
most 511 bytes, so a part longer than 256 bytes is replaced by a digest of it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import msgspec

ID_BYTES = 16


class Member(msgspec.Struct, array_like=True, gc=False):
    key: str  # "<ns>:<id>"
    first_seen_ms: int
    last_seen_ms: int


class Link(msgspec.Struct, array_like=True, gc=False):
    """One edge of the graph's history: which message joined which two identities, when."""

    a: str
    b: str
    message_id: str
    ts: int


class Graph(msgspec.Struct, gc=False):
    sandbox: str
    members: list[Member]
    links: list[Link] = []

    def founder(self) -> Member:
        return min(self.members, key=lambda m: (m.first_seen_ms, m.key))

    def member(self, key: str) -> Member | None:
        return next((m for m in self.members if m.key == key), None)

    def linked(self, a: str, b: str) -> bool:
        return any({link.a, link.b} == {a, b} for link in self.links)


class FieldValue(msgspec.Struct, array_like=True, gc=False):
    value: Any
    ts: int


class Fragment(msgspec.Struct, gc=False):
    updated_ms: int
    fields: dict[str, FieldValue]


class ProfileMeta(msgspec.Struct, gc=False):
    sandbox: str
    last_modified_ms: int


class StoredEvent(msgspec.Struct, gc=False):
    dataset: str
    received_ms: int
    message_id: str
    xdm: bytes  # the event's original JSON bytes, kept as a msgpack bin
    sandbox: str = ""
    data: bytes = b""  # the Edge event's free-form `data` as JSON bytes; b"" when none


encode = msgspec.msgpack.Encoder().encode
decode_graph = msgspec.msgpack.Decoder(Graph).decode
decode_fragment = msgspec.msgpack.Decoder(Fragment).decode
decode_meta = msgspec.msgpack.Decoder(ProfileMeta).decode
decode_event = msgspec.msgpack.Decoder(StoredEvent).decode

_TS = struct.Struct(">Q")
# Event timestamps are stored offset so that times before 1970 still sort correctly.
_TS_OFFSET = 1 << 62


# LMDB refuses keys over 511 bytes (MDB_BAD_VALSIZE). The gateway accepts identity values and
# event `_id`s of up to 1,024 characters (4 KiB of UTF-8), so a key part that could be longer
# than this is stored as a digest past it: short keys stay readable, long ones stay unique.
MAX_KEY_PART = 256
_DIGESTED = b"\xff"  # never the first byte of UTF-8, so a digest never equals a short key


def bounded(part: bytes) -> bytes:
    """`part` itself if it is at most `MAX_KEY_PART` bytes, else 0xFF + its 32-byte digest."""
    if len(part) <= MAX_KEY_PART:
        return part
    return _DIGESTED + hashlib.blake2b(part, digest_size=32, person=b"inlet-key").digest()


def owner_id(sandbox: str, identity_key: str) -> bytes:
    return hashlib.blake2b(f"{sandbox}\0{identity_key}".encode(), digest_size=ID_BYTES).digest()


def identity_key(sandbox: str, key: str) -> bytes:
    return f"{sandbox}\0".encode() + bounded(key.encode())


def applied_key(message_id: str) -> bytes:
    return bounded(message_id.encode())


def event_key(owner: bytes, timestamp_ms: int, message_id: str) -> bytes:
    return owner + _TS.pack(timestamp_ms + _TS_OFFSET) + bounded(message_id.encode())


def event_timestamp(key: bytes) -> int:
    return int(_TS.unpack_from(key, ID_BYTES)[0]) - _TS_OFFSET


def event_bound(owner: bytes, timestamp_ms: int) -> bytes:
    return owner + time_bytes(timestamp_ms)


def time_bytes(ms: int) -> bytes:
    """8 bytes that sort as the time does (offset, so that times before 1970 sort too)."""
    return _TS.pack(min(max(0, ms + _TS_OFFSET), (1 << 64) - 1))


def time_at(key: bytes, offset: int) -> int:
    """The time `time_bytes` wrote at `offset` of `key`."""
    return int(_TS.unpack_from(key, offset)[0]) - _TS_OFFSET


def fragment_key(owner: bytes, dataset: str) -> bytes:
    return owner + dataset.encode()


class Store:
    """The LMDB environment and its named databases."""

    def __init__(self, path: Path, map_size: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=32, max_readers=256)
        self.identity = self.env.open_db(b"identity")
        self.graph = self.env.open_db(b"graph")
        self.profile = self.env.open_db(b"profile")
        self.fragment = self.env.open_db(b"fragment")
        self.event = self.env.open_db(b"event")
        self.applied = self.env.open_db(b"applied")
        self.computed = self.env.open_db(b"computed")
        self.backfill = self.env.open_db(b"backfill")
        self.schema = self.env.open_db(b"schema")
        self.account = self.env.open_db(b"account")
        self.account_meta = self.env.open_db(b"account_meta")
        self.account_person = self.env.open_db(b"account_person")
        self.person_account = self.env.open_db(b"person_account")

    def close(self) -> None:
        self.env.close()


def prefix_items(txn: lmdb.Transaction, db: Any, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs whose key starts with `prefix`."""
    out: list[tuple[bytes, bytes]] = []
    cursor = txn.cursor(db)
    if not cursor.set_range(prefix):
        return out
    for key, value in cursor:
        if not bytes(key).startswith(prefix):
            break
        out.append((bytes(key), bytes(value)))
    return out


def sweep(
    txn: lmdb.Transaction, db: Any, after: bytes, limit: int, expired: Callable[[bytes, bytes], bool]
) -> bytes:
    """Delete the entries `expired(key, value)` picks, visiting at most `limit` from `after`;
    returns where the next sweep resumes (b"" to start over). Bounded, so each batch pays a
    small, fixed price instead of one long pause."""
    cursor = txn.cursor(db)
    positioned = cursor.set_range(after) if after else cursor.first()
    for _ in range(limit):
        key = bytes(cursor.key()) if positioned else b""
        if not key:
            return b""
        if expired(key, bytes(cursor.value())):
            cursor.delete()  # moves to the next entry (or off the end)
            positioned = True
        else:
            positioned = cursor.next()
    return bytes(cursor.key()) if positioned else b""


def delete_prefix(txn: lmdb.Transaction, db: Any, prefix: bytes) -> int:
    count = 0
    for key, _ in prefix_items(txn, db, prefix):
        txn.delete(key, db=db)
        count += 1
    return count
