"""A profile store on real LMDB with a clock the test moves: send messages, read answers."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from inlet import lookups
from inlet.computed_attributes import Definition
from inlet.config import Config, load
from inlet.messages import (
    BusMessage,
    DeleteProfile,
    Event,
    Operation,
    Record,
    UnlinkIdentity,
)
from inlet.xdm import Identity
from worker.profile.apply import Applier
from worker.profile.backfill import Backfill
from worker.profile.computed import Definitions
from worker.profile.identity_graph import Rules
from worker.profile.lookup import Lookups
from worker.profile.store import Store

DAY_MS = 86_400_000
NOW_MS = 1_795_400_000_000  # 2026-11-22T...Z


def definition(raw: dict[str, Any]) -> Definition:
    return msgspec.convert(raw, Definition)


class World:
    def __init__(self, store: Store, definitions: list[Definition] | None = None, config: Config | None = None) -> None:
        self.store = store
        self.config = config or load({})
        self.now_ms = NOW_MS
        self.definitions = Definitions(definitions or [])
        self.applier = Applier(store, Rules(self.config.identity), 10 * DAY_MS, clock=self.clock,
                               definitions=self.definitions)
        self.lookups = Lookups(store, self.config, clock=self.clock, definitions=self.definitions)
        self.backfill = Backfill(store, self.definitions, clock=self.clock, chunk_events=3)
        self.seq = itertools.count(1)

    def clock(self) -> float:
        return self.now_ms / 1000

    def apply(self, *messages: BusMessage) -> None:
        assert self.applier.apply_batch(list(messages)) == []

    def event(self, *ids: Identity, ts: int, event_type: str = "commerce.purchases", dataset: str = "demo-events",
              **xdm: Any) -> Event:
        n = next(self.seq)
        document = {"_id": f"e{n}", "eventType": event_type, **xdm}
        return Event(org="O", sandbox="prod", dataset=dataset, source="t", message_id=f"prod/{dataset}/e{n}",
                     received_ms=self.now_ms + n, timestamp_ms=ts, event_type=event_type, identities=list(ids),
                     xdm=msgspec.Raw(msgspec.json.encode(document)))

    def send(self, *ids: Identity, ts: int, **kw: Any) -> None:
        self.apply(self.event(*ids, ts=ts, **kw))

    def record(self, *ids: Identity, dataset: str = "demo-profiles", operation: Operation = "create",
               record_class: str = "profile", account_key: str = "", **xdm: Any) -> Record:
        n = next(self.seq)
        return Record(org="O", sandbox="prod", dataset=dataset, source="t", message_id=f"r{n}",
                      received_ms=self.now_ms + n, operation=operation, identities=list(ids),
                      xdm=msgspec.Raw(msgspec.json.encode(xdm)), record_class=record_class, account_key=account_key)

    def delete(self, identity: Identity) -> None:
        self.apply(DeleteProfile(org="O", sandbox="prod", message_id=f"d{next(self.seq)}", received_ms=self.now_ms,
                                 identity=identity))

    def unlink(self, identity: Identity) -> None:
        self.apply(UnlinkIdentity(org="O", sandbox="prod", message_id=f"u{next(self.seq)}", received_ms=self.now_ms,
                                  identity=identity))

    def ask(self, lookup: lookups.Lookup) -> lookups.Answer:
        return lookups.decode_answer(self.lookups.answer(lookups.encode(lookup)))

    def profile(self, identity: Identity, **kw: Any) -> dict[str, Any]:
        view = self.ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=identity, **kw))
        assert isinstance(view, lookups.ProfileView), view
        return dict(msgspec.json.decode(view.entity))

    def computed(self, identity: Identity) -> dict[str, Any]:
        """name → value of the profile's computed attributes."""
        attributes = self.profile(identity).get("computedAttributes", {})
        return {name: attribute["value"] for name, attribute in attributes.items()}
