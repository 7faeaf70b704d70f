"""Computed attributes in the profile store: time-bucketed partial aggregates per identity.

Like every other datum, computed state belongs to the identity that owns an event (its owner
id), never to a profile: merges and unlinks rewrite only graph membership, and a profile's
value is combined on read from the buckets of all its member identities.

Key: owner id (16) + definition fingerprint (8) + bucket start (8); value: `Partial`. An event
updates the bucket its own timestamp falls in, in the same LMDB transaction that stores the
event, so an event that arrives late lands in the right bucket, and an event already older
than the window is not counted at all. A read combines the buckets from `lookback_start(now)`
up to the bucket holding `now`: windows slide on their own, with no write, because reads cut
by time. A bounded sweep after each batch deletes buckets that fell out of their window and
the state of definitions that were deleted or changed (`stale`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

import lmdb
import msgspec

from inlet.computed_attributes import (
    Definition,
    fingerprint,
    granularity_ms,
    lookback_start,
)
from worker.profile.aggregates import MISSING, Partial, add, combine, decode, encode
from worker.profile.store import (
    ID_BYTES,
    Store,
    StoredEvent,
    delete_prefix,
    time_at,
    time_bytes,
)

FP_BYTES = 8
_decode_document = msgspec.json.Decoder(dict).decode


class Compiled:
    """One definition, prepared for matching many events."""

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.name = definition.name
        self.sandbox = definition.sandbox
        self.function = definition.function
        self.fp = fingerprint(definition)
        self.path = tuple(definition.field.split(".")) if definition.field else None
        self.event_types = frozenset(definition.filter.eventType)
        self.conditions = [(tuple(c.field.split(".")), c.op, c.value) for c in definition.filter.conditions]
        self.choices = [[(tuple(c.field.split(".")), c.op, c.value) for c in choice]
                        for choice in definition.filter.anyOf]
        self.step = granularity_ms(definition.duration)

    def counts(self, event_type: str, doc: dict[str, Any]) -> bool:
        if self.event_types and event_type not in self.event_types:
            return False
        return all(_holds(_get(doc, path), op, value) for path, op, value in self.conditions) and all(
            any(_holds(_get(doc, path), op, value) for path, op, value in choice) for choice in self.choices)

    def value(self, doc: dict[str, Any]) -> Any:
        return True if self.path is None else _get(doc, self.path)

    def start(self, now_ms: int) -> int:
        return lookback_start(self.definition.duration, now_ms)


class Snapshot:
    """The definitions counted now, indexed for the write path and the sweep."""

    def __init__(self, definitions: Iterable[Definition] = ()) -> None:
        self.all = [Compiled(d) for d in definitions]
        self.by_sandbox: dict[str, list[Compiled]] = {}
        for c in self.all:
            self.by_sandbox.setdefault(c.sandbox, []).append(c)
        self.by_fp = {c.fp: c for c in self.all}

    def starts(self, now_ms: int) -> dict[bytes, int]:
        return {c.fp: c.start(now_ms) for c in self.all}


class Definitions:
    """Holds the current `Snapshot`; replaced whole when the catalog changes, so a batch
    running in a thread reads one consistent set of definitions.

    It also remembers fingerprints that stopped being current: a definition deleted and
    created again the same was not counted in between, so its backfill must run again
    (`take_dropped`)."""

    def __init__(self, definitions: Iterable[Definition] = ()) -> None:
        self.snapshot = Snapshot(definitions)
        self._dropped: set[bytes] = set()
        self._lock = threading.Lock()

    def replace(self, definitions: Iterable[Definition]) -> None:
        snapshot = Snapshot(definitions)
        with self._lock:
            self._dropped |= set(self.snapshot.by_fp) - set(snapshot.by_fp)
            self.snapshot = snapshot

    def take_dropped(self) -> set[bytes]:
        with self._lock:
            dropped, self._dropped = self._dropped, set()
        return dropped


def event_type_of(doc: dict[str, Any]) -> str:
    value = doc.get("eventType")
    return value if isinstance(value, str) else ""


def bucket_key(owner: bytes, fp: bytes, bucket_start: int) -> bytes:
    return owner + fp + time_bytes(bucket_start)


def count_event(
    txn: lmdb.Transaction,
    store: Store,
    owner: bytes,
    definitions: list[Compiled],
    starts: dict[bytes, int],
    doc: dict[str, Any],
    ts: int,
    message_id: str,
    received_ms: int,
) -> None:
    """Add one stored event to the bucket of every definition that counts it."""
    event_type = event_type_of(doc)
    for c in definitions:
        if ts < starts[c.fp] or not c.counts(event_type, doc):
            continue
        key = bucket_key(owner, c.fp, ts - ts % c.step)
        raw = txn.get(key, db=store.computed)
        partial = decode(raw) if raw is not None else Partial()
        if add(partial, c.function, c.value(doc), ts, message_id, received_ms):
            txn.put(key, encode(partial), db=store.computed)


def recompute(
    txn: lmdb.Transaction, store: Store, owner: bytes, c: Compiled, events: list[tuple[int, StoredEvent]], start: int
) -> None:
    """Rebuild one owner's buckets of one definition from its stored events (a backfill):
    replacing, never adding, so running it twice, or after streaming counted some of the same
    events, gives the same state."""
    delete_prefix(txn, store.computed, owner + c.fp)
    partials: dict[int, Partial] = {}
    for ts, stored in events:
        if ts < start:
            continue
        doc = _decode_document(stored.xdm)
        if not c.counts(event_type_of(doc), doc):
            continue
        bucket = ts - ts % c.step
        partial = partials.setdefault(bucket, Partial())
        add(partial, c.function, c.value(doc), ts, stored.message_id, stored.received_ms)
    for bucket, partial in partials.items():
        if partial.count:
            txn.put(bucket_key(owner, c.fp, bucket), encode(partial), db=store.computed)


def read(
    txn: lmdb.Transaction, store: Store, owners: list[bytes], definitions: list[Compiled], now_ms: int
) -> dict[str, tuple[Any, int]]:
    """name → (value, last updated ms) for the definitions with anything in their window."""
    out: dict[str, tuple[Any, int]] = {}
    cursor = txn.cursor(store.computed)
    for c in definitions:
        start = c.start(now_ms)
        parts: list[Partial] = []
        for owner in owners:
            prefix = owner + c.fp
            positioned = cursor.set_range(prefix + time_bytes(start))
            while positioned:
                key = bytes(cursor.key())
                if not key.startswith(prefix) or time_at(key, ID_BYTES + FP_BYTES) > now_ms:
                    break
                parts.append(decode(cursor.value()))
                positioned = cursor.next()
        combined = combine(parts, c.function)
        if combined is not None:
            out[c.name] = combined
    return out


def leaves(values: dict[str, tuple[Any, int]]) -> dict[str, Any]:
    """The profile entity's `computedAttributes.<name>.{value,lastUpdatedAt}` leaves."""
    out: dict[str, Any] = {}
    for name, (value, updated_ms) in values.items():
        out[f"computedAttributes.{name}.value"] = value
        out[f"computedAttributes.{name}.lastUpdatedAt"] = _iso(updated_ms)
    return out


def stale(snapshot: Snapshot, now_ms: int) -> Callable[[bytes, bytes], bool]:
    """For `store.sweep`: a bucket is stale once it is older than its window, or when its
    definition was deleted or changed (its fingerprint is no longer current)."""
    starts = snapshot.starts(now_ms)

    def check(key: bytes, value: bytes) -> bool:
        start = starts.get(key[ID_BYTES:ID_BYTES + FP_BYTES])
        return start is None or time_at(key, ID_BYTES + FP_BYTES) < start

    return check


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return MISSING
        doc = doc[part]
    return doc


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _holds(actual: Any, op: str, expected: Any) -> bool:
    if op == "exists":
        present = actual is not MISSING and actual is not None
        return present == (True if expected is None else bool(expected))
    if actual is MISSING:
        return False
    if op == "eq":
        return _same(actual, expected)
    if op == "ne":
        return not _same(actual, expected)
    if op == "in":
        return any(_same(actual, e) for e in expected)
    comparable = (isinstance(actual, str) and isinstance(expected, str)) or (
        isinstance(actual, (int, float)) and not isinstance(actual, bool)
        and isinstance(expected, (int, float)) and not isinstance(expected, bool)
    )
    if not comparable:
        return False
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
