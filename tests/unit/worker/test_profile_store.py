"""The profile store against real LMDB files: graph, fragments, events, idempotency, deletes."""

from pathlib import Path

import msgspec
import pytest

from inlet import lookups
from inlet.config import load
from inlet.messages import DeleteProfile, Event, Record
from inlet.xdm import Identity
from worker.profile import apply
from worker.profile.identity_graph import Rules
from worker.profile.lookup import Lookups
from worker.profile.store import Store

CONFIG = load({})


def Applier(store: Store, applied_ttl_ms: int) -> apply.Applier:
    return apply.Applier(store, Rules(CONFIG.identity), applied_ttl_ms)

EMAIL = Identity("Email", "ada@shop.example", True)
ECID = Identity("ECID", "111")


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    yield s
    s.close()


def ev(mid: str, ids: list[Identity], ts: int = 1000, received: int = 1) -> Event:
    return Event(org="O", sandbox="prod", dataset="demo-events", source="demo", message_id=mid,
                 received_ms=received, timestamp_ms=ts, identities=ids,
                 xdm=msgspec.Raw(msgspec.json.encode({"_id": mid, "n": ts})))


def rec(mid: str, ids: list[Identity], doc: dict, op: str = "create", received: int = 1,
        dataset: str = "demo-profiles") -> Record:
    return Record(org="O", sandbox="prod", dataset=dataset, source="demo", message_id=mid,
                  received_ms=received, operation=op, identities=ids,  # type: ignore[arg-type]
                  xdm=msgspec.Raw(msgspec.json.encode(doc)))


def profile(store: Store, identity: Identity, **kw: object) -> lookups.Answer:
    answer = Lookups(store, CONFIG).answer(
        lookups.encode(lookups.ProfileLookup(org="O", sandbox="prod", identity=identity, **kw))  # type: ignore[arg-type]
    )
    return lookups.decode_answer(answer)


def events(store: Store, identity: Identity, **kw: object) -> lookups.EventsView:
    answer = lookups.decode_answer(Lookups(store, CONFIG).answer(
        lookups.encode(lookups.EventsLookup(org="O", sandbox="prod", identity=identity, **kw))  # type: ignore[arg-type]
    ))
    assert isinstance(answer, lookups.EventsView)
    return answer


def entity(view: lookups.Answer) -> dict:
    assert isinstance(view, lookups.ProfileView)
    return msgspec.json.decode(view.entity)


def test_linking_two_graphs_merges_profiles_with_their_events(store: Store) -> None:
    applier = Applier(store, 10_000)
    assert applier.apply_batch([ev("a", [EMAIL], ts=1), ev("b", [ECID], ts=2, received=2)], now_ms=0) == []
    first, second = profile(store, EMAIL), profile(store, ECID)
    assert isinstance(first, lookups.ProfileView) and isinstance(second, lookups.ProfileView)
    assert first.profile_id != second.profile_id

    applier.apply_batch([ev("c", [ECID, EMAIL], ts=3)], now_ms=0)
    merged_a, merged_b = profile(store, EMAIL), profile(store, ECID)
    assert isinstance(merged_a, lookups.ProfileView) and isinstance(merged_b, lookups.ProfileView)
    assert merged_a.profile_id == merged_b.profile_id == first.profile_id  # the older graph survives
    assert sorted(merged_a.identities) == ["ECID:111", "Email:ada@shop.example"]
    assert [e.event_id for e in events(store, ECID).events] == ["c", "b", "a"]


def test_a_message_applied_twice_changes_nothing(store: Store) -> None:
    applier = Applier(store, 10_000)
    batch = [ev("a", [EMAIL]), rec("r", [EMAIL], {"loyalty": {"points": 1}}, op="merge")]
    applier.apply_batch(batch, now_ms=0)
    applier.apply_batch([rec("r2", [EMAIL], {"loyalty": {"points": 5}}, op="merge", received=2)], now_ms=0)
    applier.apply_batch(batch, now_ms=0)  # a redelivery after a crash
    assert len(events(store, EMAIL).events) == 1
    assert entity(profile(store, EMAIL))["loyalty"] == {"points": 5}


def test_newest_write_wins_across_datasets_and_precedence_policy(store: Store) -> None:
    applier = Applier(store, 10_000)
    applier.apply_batch([
        rec("crm", [EMAIL], {"person": {"name": {"firstName": "Ada", "lastName": "L"}}}, received=1),
        rec("web", [EMAIL], {"person": {"name": {"firstName": "ADA"}}}, received=2, dataset="demo-events"),
    ], now_ms=0)
    assert entity(profile(store, EMAIL))["person"]["name"] == {"firstName": "ADA", "lastName": "L"}
    config = load({})
    config.merge_policies.append(
        type(config.merge_policies[0])(id="crm-first", attribute_merge="dataSetPrecedence", order=["demo-profiles"])
    )
    answer = Lookups(store, config).answer(lookups.encode(
        lookups.ProfileLookup(org="O", sandbox="prod", identity=EMAIL, merge_policy="crm-first")))
    view = lookups.decode_answer(answer)
    assert entity(view)["person"]["name"]["firstName"] == "Ada"
    assert isinstance(profile(store, EMAIL, merge_policy="nope"), lookups.Refused)


def test_create_replaces_and_merge_patches_a_fragment(store: Store) -> None:
    applier = Applier(store, 10_000)
    applier.apply_batch([rec("1", [EMAIL], {"a": {"x": 1, "y": 2}, "list": [1, 2]})], now_ms=0)
    applier.apply_batch([rec("2", [EMAIL], {"a": {"y": 3}, "list": [9]}, op="merge", received=2)], now_ms=0)
    assert entity(profile(store, EMAIL, fields=["a", "list"])) == {"a": {"x": 1, "y": 3}, "list": [9]}
    applier.apply_batch([rec("3", [EMAIL], {"b": True}, received=3)], now_ms=0)
    assert entity(profile(store, EMAIL, fields=["a", "b"])) == {"b": True}
    applier.apply_batch([rec("4", [EMAIL], {}, op="delete", received=4)], now_ms=0)
    view = profile(store, EMAIL)
    assert isinstance(view, lookups.ProfileView) and view.sources == []


def test_delete_removes_data_but_keeps_the_graph(store: Store) -> None:
    applier = Applier(store, 10_000)
    applier.apply_batch([ev("a", [EMAIL, ECID]), rec("r", [EMAIL], {"x": 1})], now_ms=0)
    applier.apply_batch([DeleteProfile(org="O", sandbox="prod", message_id="d", received_ms=5, identity=ECID)], now_ms=0)
    assert isinstance(profile(store, EMAIL), lookups.NotFound)
    applier.apply_batch([ev("b", [ECID], received=6)], now_ms=0)
    view = profile(store, EMAIL)
    assert isinstance(view, lookups.ProfileView)
    assert sorted(view.identities) == ["ECID:111", "Email:ada@shop.example"]
    assert [e.event_id for e in events(store, EMAIL).events] == ["b"]
    assert "x" not in entity(view)


def test_timeline_pages_and_time_bounds(store: Store) -> None:
    applier = Applier(store, 10_000)
    applier.apply_batch([ev(f"e{i}", [EMAIL], ts=i * 10) for i in range(10)], now_ms=0)
    page = events(store, EMAIL, limit=4)
    assert [e.event_id for e in page.events] == ["e9", "e8", "e7", "e6"] and page.next
    rest = events(store, EMAIL, limit=4, after=page.next)
    assert [e.event_id for e in rest.events] == ["e5", "e4", "e3", "e2"]
    bounded = events(store, EMAIL, start_ms=20, end_ms=50, newest_first=False)
    assert [e.event_id for e in bounded.events] == ["e2", "e3", "e4"] and bounded.next is None


def test_a_failing_message_is_reported_and_the_batch_commits(store: Store) -> None:
    applier = Applier(store, 10_000)
    bad = rec("bad", [EMAIL], {})
    bad.xdm = msgspec.Raw(b"[1, 2]")  # not an object: cannot become a fragment
    failures = applier.apply_batch([ev("a", [EMAIL]), bad, ev("b", [EMAIL])], now_ms=0)
    assert [f.index for f in failures] == [1]
    assert len(events(store, EMAIL).events) == 2


def test_applied_ids_expire(store: Store) -> None:
    applier = Applier(store, applied_ttl_ms=100)
    applier.apply_batch([ev("a", [EMAIL])], now_ms=0)
    with store.env.begin() as txn:
        assert txn.get(b"a", db=store.applied) is not None
    applier.apply_batch([], now_ms=1_000)
    with store.env.begin() as txn:
        assert txn.get(b"a", db=store.applied) is None
