"""Random interleavings of events, links, upserts, deletes and unlinks, applied to the real
store (LMDB files) and to a small in-memory model of the same rules; the merged profiles must
agree after every step.

The model is written from the rules, not from the code: identities seen together are linked;
an unlink drops an identity's links; a profile is a connected component; data belongs to the
message's first identity; per attribute the newest write wins; a delete hides a profile and
clears its data until a later message touches its graph.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from inlet import lookups
from inlet.config import Identity as IdentityConfig
from inlet.config import load
from inlet.messages import DeleteProfile, Event, Record, UnlinkIdentity
from inlet.xdm import Identity
from worker.profile.apply import Applier
from worker.profile.identity_graph import Rules
from worker.profile.lookup import Lookups
from worker.profile.store import Store

KEYS = [Identity("Email", f"p{i}@x.example") for i in range(4)] + [Identity("Loyalty", f"L{i}") for i in range(3)]
DATASETS = ["crm", "web"]
FIELDS = ["a.x", "a.y", "b"]

CONFIG = load({})
CONFIG.identity = IdentityConfig(device_namespaces=[], namespace_limits={}, blocked_values=[], graph_limit=50)

identity_lists = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)
documents = st.dictionaries(st.sampled_from(FIELDS), st.integers(0, 9), max_size=3)


def unflatten(leaves: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in leaves.items():
        *parents, last = path.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


class Model:
    def __init__(self) -> None:
        self.links: set[frozenset[str]] = set()
        self.seen: set[str] = set()
        self.hidden: set[str] = set()
        self.fragments: dict[tuple[str, str], dict[str, tuple[Any, int, str]]] = {}
        self.events: dict[str, list[tuple[int, str]]] = {}

    def component(self, key: str) -> set[str]:
        group, todo = {key}, [key]
        while todo:
            k = todo.pop()
            for link in self.links:
                if k in link:
                    (other,) = link - {k} or {k}
                    if other not in group:
                        group.add(other)
                        todo.append(other)
        return group

    def message(self, ids: list[Identity]) -> str:
        keys = [i.key for i in ids]
        self.seen.update(keys)
        for k in keys[1:]:
            if k != keys[0]:
                self.links.add(frozenset((keys[0], k)))
        self.hidden -= self.component(keys[0])
        return keys[0]


class ProfileMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.store = Store(self.dir, 32 * 1024 * 1024)
        self.applier = Applier(self.store, Rules(CONFIG.identity), 10**12)
        self.lookups = Lookups(self.store, CONFIG)
        self.model = Model()
        self.seq = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    @rule(ids=identity_lists)
    def event(self, ids: list[Identity]) -> None:
        seq = self._next()
        self.applier.apply_batch([Event(org="O", sandbox="prod", dataset="web", source="t", message_id=f"e{seq}",
                                        received_ms=seq, timestamp_ms=seq, identities=ids, xdm=msgspec.Raw(b"{}"))])
        owner = self.model.message(ids)
        self.model.events.setdefault(owner, []).append((seq, f"e{seq}"))

    @rule(ids=identity_lists, dataset=st.sampled_from(DATASETS), doc=documents,
          op=st.sampled_from(["create", "merge", "delete"]))
    def record(self, ids: list[Identity], dataset: str, doc: dict[str, Any], op: str) -> None:
        seq = self._next()
        xdm = msgspec.json.encode(unflatten(doc))
        self.applier.apply_batch([Record(org="O", sandbox="prod", dataset=dataset, source="t", message_id=f"r{seq}",
                                         received_ms=seq, operation=op, identities=ids,  # type: ignore[arg-type]
                                         xdm=msgspec.Raw(xdm))])
        owner = self.model.message(ids)
        leaves = {path: (value, seq, dataset) for path, value in doc.items()}
        if op == "delete":
            self.model.fragments.pop((owner, dataset), None)
        elif op == "merge" and (owner, dataset) in self.model.fragments:
            self.model.fragments[(owner, dataset)].update(leaves)
        else:
            self.model.fragments[(owner, dataset)] = leaves

    @rule(who=st.sampled_from(KEYS))
    def delete(self, who: Identity) -> None:
        seq = self._next()
        self.applier.apply_batch([DeleteProfile(org="O", sandbox="prod", message_id=f"d{seq}", received_ms=seq,
                                                identity=who)])
        if who.key not in self.model.seen:
            return
        group = self.model.component(who.key)
        for key in group:
            self.model.events.pop(key, None)
            for dataset in DATASETS:
                self.model.fragments.pop((key, dataset), None)
        self.model.hidden |= group

    @rule(who=st.sampled_from(KEYS))
    def unlink(self, who: Identity) -> None:
        seq = self._next()
        self.applier.apply_batch([UnlinkIdentity(org="O", sandbox="prod", message_id=f"u{seq}", received_ms=seq,
                                                 identity=who)])
        group = self.model.component(who.key) if who.key in self.model.seen else {who.key}
        if len(group) > 1:
            self.model.links = {l for l in self.model.links if who.key not in l}
            self.model.hidden -= group  # every piece is saved (and so touched) again

    def _ask(self, lookup: lookups.Lookup) -> lookups.Answer:
        return lookups.decode_answer(self.lookups.answer(lookups.encode(lookup)))

    @invariant()
    def profiles_agree(self) -> None:
        for identity in KEYS:
            key = identity.key
            answer = self._ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=identity))
            if key not in self.model.seen or key in self.model.hidden:
                assert isinstance(answer, lookups.NotFound), (key, answer)
                continue
            assert isinstance(answer, lookups.ProfileView), (key, answer)
            group = self.model.component(key)
            assert set(answer.identities) == group
            expected: dict[str, tuple[Any, int, str]] = {}
            for (owner, _), leaves in self.model.fragments.items():
                if owner in group:
                    for path, candidate in leaves.items():
                        if path not in expected or candidate[1:] > expected[path][1:]:
                            expected[path] = candidate
            entity = msgspec.json.decode(answer.entity)
            entity.pop("identityMap")
            assert entity == unflatten({p: v[0] for p, v in expected.items()})
            events = self._ask(lookups.EventsLookup(org="O", sandbox="prod", identity=identity, limit=1000))
            assert isinstance(events, lookups.EventsView)
            want = sorted((e for owner in group for e in self.model.events.get(owner, [])), reverse=True)
            assert [e.event_id for e in events.events] == [name for _, name in want]


ProfileMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_profile_store_matches_the_model = ProfileMachine.TestCase
