"""The profile store: one LMDB environment, named databases, msgpack values via msgspec.

Layout (ARCHITECTURE.md, "Data layout"); a profile id is the hex of its 16-byte graph id:

| database   | key                                         | value        |
| ---------- | ------------------------------------------- | ------------ |
| `identity` | `<sandbox>\\0<ns>:<id>`                     | graph id     |
| `graph`    | graph id                                    | `Graph`      |
| `profile`  | graph id                                    | `ProfileMeta`|
| `fragment` | graph id + dataset                          | `Fragment`   |
| `event`    | graph id + timestamp (8 bytes) + message id | `StoredEvent`|
| `applied`  | message id                                  | expiry (ms)  |

Every key that holds a profile's data starts with its graph id, so moving a profile on a merge
and deleting it are prefix scans. All writes of one consumed batch share one transaction.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import lmdb
import msgspec


class Member(msgspec.Struct, array_like=True, gc=False):
    key: str  # "<ns>:<id>"
    first_seen_ms: int
    message_id: str  # the message that linked it


class Graph(msgspec.Struct, gc=False):
    sandbox: str
    created_ms: int
    members: list[Member]


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


encode = msgspec.msgpack.Encoder().encode
decode_graph = msgspec.msgpack.Decoder(Graph).decode
decode_fragment = msgspec.msgpack.Decoder(Fragment).decode
decode_meta = msgspec.msgpack.Decoder(ProfileMeta).decode
decode_event = msgspec.msgpack.Decoder(StoredEvent).decode


_TS = struct.Struct(">Q")
# Event timestamps are stored offset so that times before 1970 still sort correctly.
_TS_OFFSET = 1 << 62


def identity_key(sandbox: str, key: str) -> bytes:
    return f"{sandbox}\0{key}".encode()


def event_key(gid: bytes, timestamp_ms: int, message_id: str) -> bytes:
    return gid + _TS.pack(timestamp_ms + _TS_OFFSET) + message_id.encode()


def event_timestamp(key: bytes) -> int:
    return int(_TS.unpack_from(key, 16)[0]) - _TS_OFFSET


def event_bound(gid: bytes, timestamp_ms: int) -> bytes:
    return gid + _TS.pack(max(0, timestamp_ms + _TS_OFFSET))


def fragment_key(gid: bytes, dataset: str) -> bytes:
    return gid + dataset.encode()


class Store:
    """The LMDB environment and its named databases."""

    def __init__(self, path: Path, map_size: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=16, max_readers=256)
        self.identity = self.env.open_db(b"identity")
        self.graph = self.env.open_db(b"graph")
        self.profile = self.env.open_db(b"profile")
        self.fragment = self.env.open_db(b"fragment")
        self.event = self.env.open_db(b"event")
        self.applied = self.env.open_db(b"applied")

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
