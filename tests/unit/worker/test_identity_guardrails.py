"""Identity stitching guardrails and merge undo, against real LMDB files."""

from pathlib import Path

import msgspec
import pytest

from inlet import lookups
from inlet.config import Config, Dataset, Identity as IdentityConfig, MergePolicy, load
from inlet.messages import Event, UnlinkIdentity
from inlet.xdm import Identity
from worker.profile.apply import Applier
from worker.profile.identity_graph import Rules
from worker.profile.lookup import Lookups
from worker.profile.store import Store

EMAIL_A = Identity("Email", "a@shop.example", authenticated=True)
EMAIL_B = Identity("Email", "b@shop.example", authenticated=True)
CRM_A, CRM_B = Identity("CRMID", "A", authenticated=True), Identity("CRMID", "B", authenticated=True)
DEVICE = Identity("ECID", "1" * 38)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    yield s
    s.close()


class World:
    def __init__(self, store: Store, config: Config | None = None, now: float = 1_800_000_000.0) -> None:
        self.store = store
        self.config = config or load({})
        self.now = now
        self.applier = Applier(store, Rules(self.config.identity), 10**9,
                               {(d.sandbox, d.id): int(d.event_ttl_days * 86_400_000)
                                for d in self.config.datasets if d.event_ttl_days},
                               clock=lambda: self.now)
        self.seq = 0

    def send(self, *ids: Identity, ts: int | None = None, dataset: str = "demo-events") -> str:
        self.seq += 1
        mid = f"m{self.seq}"
        event = Event(org="O", sandbox="prod", dataset=dataset, source="t", message_id=mid,
                      received_ms=self.seq, timestamp_ms=self.seq if ts is None else ts,
                      identities=list(ids), xdm=msgspec.Raw(b'{"n": %d}' % self.seq))
        assert self.applier.apply_batch([event]) == []
        return mid

    def unlink(self, identity: Identity) -> None:
        self.seq += 1
        self.applier.apply_batch([UnlinkIdentity(org="O", sandbox="prod", message_id=f"u{self.seq}",
                                                 received_ms=self.seq, identity=identity)])

    def ask(self, lookup: lookups.Lookup) -> lookups.Answer:
        return lookups.decode_answer(Lookups(self.store, self.config, clock=lambda: self.now).answer(lookups.encode(lookup)))

    def graph(self, identity: Identity) -> set[str]:
        view = self.ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=identity))
        assert isinstance(view, lookups.ProfileView), view
        return set(view.identities)

    def profile_id(self, identity: Identity) -> str:
        view = self.ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=identity))
        assert isinstance(view, lookups.ProfileView)
        return view.profile_id

    def events(self, identity: Identity, **kw: object) -> list[str]:
        view = self.ask(lookups.EventsLookup(org="O", sandbox="prod", identity=identity, limit=1000, **kw))  # type: ignore[arg-type]
        assert isinstance(view, lookups.EventsView), view
        return [e.event_id for e in view.events]


def test_blocked_values_never_link(store: Store) -> None:
    world = World(store)
    world.send(EMAIL_A, Identity("Phone", "null"))
    world.send(EMAIL_B, Identity("Phone", "NULL"))
    assert world.graph(EMAIL_A) == {EMAIL_A.key}
    assert world.graph(EMAIL_B) == {EMAIL_B.key}


def test_a_second_crmid_does_not_merge_two_people(store: Store) -> None:
    world = World(store)
    world.send(CRM_A, EMAIL_A)
    world.send(CRM_B, EMAIL_B)
    world.send(EMAIL_A, CRM_B)  # a typo in a CRM export
    assert world.graph(CRM_A) == {CRM_A.key, EMAIL_A.key}
    assert world.graph(CRM_B) == {CRM_B.key, EMAIL_B.key}


def test_a_shared_device_follows_the_last_authenticated_person(store: Store) -> None:
    world = World(store)
    world.send(DEVICE)  # anonymous browsing
    world.send(DEVICE, CRM_A)  # A logs in
    world.send(DEVICE, CRM_A)
    assert world.graph(CRM_A) == {CRM_A.key, DEVICE.key}
    world.send(DEVICE, CRM_B)  # B logs in on the same tablet
    assert world.graph(CRM_B) == {CRM_B.key, DEVICE.key}
    assert world.graph(CRM_A) == {CRM_A.key}
    # A's logged-in events stay A's; the device's anonymous history follows the device.
    assert world.events(CRM_A) == ["m3", "m2"]
    assert world.events(CRM_B) == ["m4", "m1"]


def test_the_graph_limit_unlinks_the_least_recently_seen(store: Store) -> None:
    config = load({})
    config.identity = IdentityConfig(graph_limit=3)
    world = World(store, config)
    loyal = Identity("Email", "hub@shop.example", primary=True)
    for i in range(5):
        world.send(loyal, Identity("ECID", str(i) * 38))
    assert world.graph(loyal) == {loyal.key, "ECID:" + "3" * 38, "ECID:" + "4" * 38}
    assert world.graph(Identity("ECID", "0" * 38)) == {"ECID:" + "0" * 38}


def test_unlink_re_splits_the_profile_with_the_data_each_identity_brought(store: Store) -> None:
    world = World(store)
    world.send(EMAIL_A)
    world.send(DEVICE)
    world.send(Identity("Phone", "+15550100"))
    world.send(EMAIL_A, DEVICE)
    world.send(DEVICE, Identity("Phone", "+15550100"))
    founder = world.profile_id(EMAIL_A)
    assert world.graph(EMAIL_A) == {EMAIL_A.key, DEVICE.key, "Phone:+15550100"}
    assert world.events(EMAIL_A) == ["m5", "m4", "m3", "m2", "m1"]

    world.unlink(DEVICE)  # the device was the bridge: all three come apart
    assert world.graph(EMAIL_A) == {EMAIL_A.key}
    assert world.graph(DEVICE) == {DEVICE.key}
    assert world.graph(Identity("Phone", "+15550100")) == {"Phone:+15550100"}
    assert world.events(EMAIL_A) == ["m4", "m1"]
    # m5 carried the device and a phone: people come before devices, so the phone owns it.
    assert world.events(DEVICE) == ["m2"]
    assert world.events(Identity("Phone", "+15550100")) == ["m5", "m3"]
    assert world.profile_id(EMAIL_A) == founder  # the founder keeps the profile id

    graph = world.ask(lookups.GraphLookup(org="O", sandbox="prod", identity=EMAIL_A))
    assert isinstance(graph, lookups.GraphView) and graph.links == []


def test_graph_history_names_the_message_that_made_each_link(store: Store) -> None:
    world = World(store)
    world.send(EMAIL_A)
    mid = world.send(EMAIL_A, DEVICE)
    graph = world.ask(lookups.GraphLookup(org="O", sandbox="prod", identity=DEVICE))
    assert isinstance(graph, lookups.GraphView)
    assert [(l.a, l.b, l.messageId) for l in graph.links] == [(EMAIL_A.key, DEVICE.key, mid)]
    assert {m.identity for m in graph.members} == {EMAIL_A.key, DEVICE.key}


def test_profile_ids_are_deterministic_on_replay(tmp_path: Path) -> None:
    ids = []
    for run in range(2):
        store = Store(tmp_path / f"run{run}", 64 * 1024 * 1024)
        world = World(store)
        world.send(DEVICE)
        world.send(EMAIL_A, CRM_A)
        world.send(DEVICE, EMAIL_A)
        ids.append(world.profile_id(EMAIL_A))
        store.close()
    assert ids[0] == ids[1]


def test_identity_graph_none_policy_reads_one_identity(store: Store) -> None:
    config = load({})
    config.merge_policies.append(MergePolicy(id="single", identity_graph="none"))
    world = World(store, config)
    world.send(EMAIL_A)
    world.send(DEVICE)
    world.send(EMAIL_A, DEVICE)
    view = world.ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=DEVICE, merge_policy="single"))
    assert isinstance(view, lookups.ProfileView) and view.merge_policy == "single"


def test_expired_events_leave_the_timeline(store: Store) -> None:
    config = load({})
    config.datasets.append(Dataset(id="short", event_ttl_days=1))
    day = 86_400_000
    world = World(store, config, now=10 * day / 1000)
    world.send(EMAIL_A, ts=2 * day, dataset="short")
    world.send(EMAIL_A, ts=int(9.5 * day), dataset="short")
    world.send(EMAIL_A, ts=2 * day, dataset="demo-events")
    assert world.events(EMAIL_A) == ["m2", "m3"]
    world.now = 11 * day / 1000
    world.send(EMAIL_B)  # any batch sweeps a slice of expired events
    assert world.events(EMAIL_A) == ["m3"]
    with store.env.begin() as txn:
        assert txn.stat(store.event)["entries"] == 2
