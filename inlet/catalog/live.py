"""Every process's live view of the Catalog: it follows the `inlet_catalog` bucket and installs
each change into the process's `Config`, so the one lookup (`config.dataset(sandbox, id)`,
`config.connection(id)`, `config.datastream(id)`) answers with what the API made, within
milliseconds of the write, without a restart and without a read of NATS on the hot path.

An install swaps whole lists (never mutates one in place), so a reader on the event loop or
in a thread always sees one consistent version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from inlet import watch
from inlet.catalog import store
from inlet.config import Config, Connection, Dataset, Datastream

log = logging.getLogger("inlet.catalog")


class Live:
    """The bucket's entries by key, and the config file's read-only connections and datastreams."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.file_datasets = list(config.datasets)
        self.file_connections = list(config.connections)
        self.file_datastreams = list(config.datastreams)
        self.entries: dict[str, store.Entry] = {}
        # Called after each install (the profile worker refreshes its Profile-enabled set).
        self.listeners: list[Callable[[Config], None]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, kv: KeyValue) -> None:
        self._task = await watch.follow(kv, self._apply)
        self._install()

    def _apply(self, entry_key: str, value: bytes | None) -> None:
        if value is None:
            self.entries.pop(entry_key, None)
        else:
            try:
                self.entries[entry_key] = store.decode(entry_key, value)
            except (msgspec.DecodeError, KeyError) as exc:
                log.warning("Ignoring unreadable catalog entry %s: %s", entry_key, exc)
                return
        if self._task is not None:  # after the initial values: install each change
            self._install()

    def put_local(self, entry_key: str, entry: store.Entry | None) -> None:
        """Apply a write this process just made, before the watch echoes it back: the next
        request to this gateway already sees it."""
        if entry is None:
            self.entries.pop(entry_key, None)
        else:
            self.entries[entry_key] = entry
        self._install()

    def stored(self) -> list[store.Entry]:
        return list(self.entries.values())

    def sandboxes(self) -> dict[str, store.StoredSandbox]:
        """`prod`, every sandbox the config file or a dataset or connection names, and those
        created through the API, by name."""
        named = {"prod"} | {d.sandbox for d in self.config.datasets} | {c.sandbox for c in self.config.connections} \
            | {s.sandbox for s in self.config.datastreams}
        found = {n: store.StoredSandbox(name=n, title=n, type="production" if n == "prod" else "development")
                 for n in named}
        found.update({e.name: e for e in self.entries.values() if isinstance(e, store.StoredSandbox)})
        return dict(sorted(found.items()))

    def _install(self) -> None:
        datasets: dict[tuple[str, str], Dataset] = {(d.sandbox, d.id): d for d in self.file_datasets}
        connections: dict[str, Connection] = {c.id: c for c in self.file_connections}
        datastreams: dict[str, Datastream] = {s.id: s for s in self.file_datastreams}
        for entry in self.entries.values():
            if isinstance(entry, store.StoredDataset):
                datasets[(entry.sandbox, entry.id)] = entry.to_dataset()  # the bucket wins (seeded)
            elif isinstance(entry, store.StoredConnection):
                connections.setdefault(entry.id, entry.to_connection())  # the file's are read-only
            elif isinstance(entry, store.StoredDatastream):
                datastreams.setdefault(entry.id, entry.to_datastream())
        self.config.datasets = list(datasets.values())
        self.config.connections = list(connections.values())
        self.config.datastreams = list(datastreams.values())
        for listener in self.listeners:
            listener(self.config)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def follow(js: JetStreamContext, config: Config) -> tuple[KeyValue, Live]:
    """Open the bucket, seed it from the config file, and start following it: from here on
    `config`'s datasets, connections and datastreams are the live Catalog."""
    kv = await store.open_bucket(js, config.nats.replicas)
    await store.seed(kv, config)
    live = Live(config)
    await live.start(kv)
    return kv, live
