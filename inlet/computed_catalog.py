"""Where computed attribute definitions live, and how backfill progress is reported.

Definitions are kept in the NATS key-value bucket `inlet_computed_attributes` (key
`<sandbox>.<name>`), shared by every process, exactly like merge policies: the config file
seeds it (an existing definition is left alone, so API edits survive restarts), the API edits
it, and every profile worker follows it (`Catalog`) and starts counting a new definition with
the next batch.

Each profile shard backfills a new definition from the events it already stores and reports
its progress in `inlet_computed_backfill` (key `<sandbox>.<name>.<shard>`); the API sums the
shards' reports for the definition's current fingerprint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from inlet import buckets, watch
from inlet.computed_attributes import Definition, counted, decode, encode, problem
from inlet.config import Config

log = logging.getLogger("inlet.computed")

BUCKET = "inlet_computed_attributes"
PROGRESS_BUCKET = "inlet_computed_backfill"


class Progress(msgspec.Struct, kw_only=True):
    """One shard's backfill of one definition (identified by its fingerprint, hex)."""

    fingerprint: str
    status: Literal["running", "done"]
    processed: int  # stored events scanned so far
    total: int  # stored events when the backfill started (grows if events arrive meanwhile)


encode_progress = msgspec.json.Encoder().encode
decode_progress = msgspec.json.Decoder(Progress).decode


def key(sandbox: str, name: str) -> str:
    return f"{sandbox}.{name}"


def progress_key(sandbox: str, name: str, shard: int) -> str:
    return f"{sandbox}.{name}.{shard}"


async def _bucket(js: JetStreamContext, name: str, replicas: int) -> KeyValue:
    return await buckets.open_bucket(js, name, replicas=replicas)


async def open_buckets(js: JetStreamContext, replicas: int = 1) -> tuple[KeyValue, KeyValue]:
    """(definitions, backfill progress)."""
    return await _bucket(js, BUCKET, replicas), await _bucket(js, PROGRESS_BUCKET, replicas)


async def seed(kv: KeyValue, config: Config) -> None:
    """Add the config file's definitions that the bucket does not have yet."""
    for definition in config.computed_attributes:
        stored = msgspec.structs.replace(definition, imsOrgId=config.org)
        try:
            await kv.create(key(definition.sandbox, definition.name), encode(stored))
        except KeyWrongLastSequenceError:
            pass  # exists: the bucket (maybe edited through the API) wins


class Catalog:
    """The current definitions by (sandbox, name), kept up to date by a bucket watch;
    listeners hear the whole list after every change."""

    def __init__(self, definitions: list[Definition] | None = None) -> None:
        self.definitions: dict[tuple[str, str], Definition] = {
            (d.sandbox, d.name): d for d in definitions or []
        }
        self.listeners: list[Callable[[list[Definition]], None]] = []
        self._task: asyncio.Task[None] | None = None

    def current(self) -> list[Definition]:
        return sorted(self.definitions.values(), key=lambda d: (d.sandbox, d.name))

    async def start(self, kv: KeyValue) -> None:
        self.definitions.clear()  # the bucket is the truth once it answers
        self._task = await watch.follow(kv, self._apply)
        self._changed()

    def _apply(self, entry_key: str, value: bytes | None) -> None:
        sandbox, _, name = entry_key.rpartition(".")
        if value is None:
            self.definitions.pop((sandbox, name), None)
        else:
            try:
                definition = decode(value)
            except msgspec.DecodeError as exc:
                log.warning("Ignoring unreadable computed attribute %s: %s", entry_key, exc)
                return
            wrong = problem(definition)
            if wrong:
                log.warning("Ignoring computed attribute %s: %s", entry_key, wrong)
                return
            if counted(definition):
                self.definitions[(sandbox, name)] = definition
            else:  # a draft, or disabled: kept in the bucket, not counted
                self.definitions.pop((sandbox, name), None)
        if self._task is not None:  # after the initial values: tell listeners of each change
            self._changed()

    def _changed(self) -> None:
        current = self.current()
        for listener in self.listeners:
            listener(current)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
