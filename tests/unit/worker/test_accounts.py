"""Account (B2B) profiles against real LMDB: account records, linked people, merge policies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from inlet import lookups
from inlet.config import Dataset, MergePolicy, load
from inlet.xdm import Identity
from tests.unit.worker.world import World
from worker.profile.store import Store

ANN = Identity("Email", "ann@acme.example", primary=True, authenticated=True)
BOB = Identity("Email", "bob@acme.example", primary=True, authenticated=True)
BOB_CRM = Identity("CRMID", "bob-1", authenticated=True)
ACME = "acme@0001.salesforce"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    yield s
    s.close()


@pytest.fixture
def world(store: Store) -> World:
    config = load({})
    config.datasets += [Dataset(id="crm-accounts", xdm_class="account"), Dataset(id="erp-accounts", xdm_class="account"),
                        Dataset(id="account-people", xdm_class="account-person")]
    config.merge_policies.append(MergePolicy(id="erp-first", attribute_merge="dataSetPrecedence", order=["erp-accounts"]))
    return World(store, config=config)


def account(world: World, **kw: Any) -> lookups.AccountView:
    view = world.ask(lookups.AccountLookup(org="O", sandbox="prod", account_key=ACME, **kw))
    assert isinstance(view, lookups.AccountView), view
    return view


def entity(view: lookups.AccountView) -> dict[str, Any]:
    return dict(msgspec.json.decode(view.entity))


def people(view: lookups.AccountView) -> dict[str, dict[str, Any]]:
    """profile id → the person's shown attributes."""
    return {p.profile_id: msgspec.json.decode(p.entity) for p in view.people}


def account_record(world: World, dataset: str, operation: str = "create", **xdm: Any) -> None:
    world.apply(world.record(dataset=dataset, record_class="account", account_key=ACME, operation=operation,  # type: ignore[arg-type]
                             accountKey={"sourceKey": ACME}, **xdm))


def test_account_records_merge_per_key_under_the_merge_policy(world: World) -> None:
    account_record(world, "erp-accounts", accountName="ACME Corp", accountOrganization={"industry": "Retail"})
    account_record(world, "crm-accounts", accountName="Acme", accountOrganization={"annualRevenue": {"amount": 5e6}})
    merged = entity(account(world))
    assert merged["accountName"] == "Acme"  # timestamp ordered: the newer write wins
    assert merged["accountOrganization"] == {"industry": "Retail", "annualRevenue": {"amount": 5e6}}
    assert entity(account(world, merge_policy="erp-first"))["accountName"] == "ACME Corp"
    assert account(world).sources == ["crm-accounts", "erp-accounts"]
    assert entity(account(world, fields=["accountName"])) == {"accountName": "Acme"}
    world.apply(world.record(dataset="crm-accounts", record_class="account", account_key=ACME, operation="merge",
                             accountName="ACME Inc."))
    assert entity(account(world))["accountName"] == "ACME Inc."
    account_record(world, "crm-accounts", operation="delete")
    assert entity(account(world))["accountName"] == "ACME Corp"
    missing = world.ask(lookups.AccountLookup(org="O", sandbox="prod", account_key="nope"))
    assert isinstance(missing, lookups.NotFound)
    other_sandbox = world.ask(lookups.AccountLookup(org="O", sandbox="dev", account_key=ACME))
    assert isinstance(other_sandbox, lookups.NotFound)


def test_people_link_and_unlink_through_relations_and_person_records(world: World) -> None:
    account_record(world, "crm-accounts", accountName="Acme")
    # Ann through a person-account relation record, Bob through his person record's b2b.accountKey.
    world.apply(world.record(ANN, dataset="account-people", record_class="account-person", account_key=ACME,
                             accountKey={"sourceKey": ACME}, personRole="buyer"))
    world.apply(world.record(ANN, person={"name": {"firstName": "Ann"}}, workEmail={"address": "ann@acme.example"}))
    world.apply(world.record(BOB, account_key=ACME, person={"name": {"firstName": "Bob"}},
                             b2b={"accountKey": {"sourceKey": ACME}}))
    view = account(world)
    assert view.people_total == 2
    shown = sorted(people(view).values(), key=lambda p: p["person"]["name"]["firstName"])
    assert shown == [{"person": {"name": {"firstName": "Ann"}}, "workEmail": {"address": "ann@acme.example"}},
                     {"person": {"name": {"firstName": "Bob"}}}]
    vias = {link.identity: link.via for p in view.people for link in p.links}
    assert vias == {ANN.key: "relation", BOB.key: "profile"}
    ann = world.ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=ANN))
    assert isinstance(ann, lookups.ProfileView) and ann.accounts == [ACME]  # the profile names its account

    # Bob's CRM id joins his profile: still one person, found through either identity.
    world.send(BOB, BOB_CRM, ts=world.now_ms, event_type="login")
    world.apply(world.record(BOB_CRM, dataset="account-people", record_class="account-person", account_key=ACME,
                             accountKey={"sourceKey": ACME}))
    assert account(world).people_total == 2
    (bob,) = [p for p in account(world).people if any(l.identity == BOB.key for l in p.links)]
    assert {link.identity for link in bob.links} == {BOB.key, BOB_CRM.key}

    # Unlinked: the relation becomes inactive; Bob's record drops the account key (and the CRM
    # relation is deleted).
    world.apply(world.record(ANN, dataset="account-people", record_class="account-person", account_key=ACME,
                             accountKey={"sourceKey": ACME}, isActive=False))
    world.apply(world.record(BOB, person={"name": {"firstName": "Bob"}}))
    assert [link.identity for p in account(world).people for link in p.links] == [BOB_CRM.key]
    world.apply(world.record(BOB_CRM, dataset="account-people", record_class="account-person", account_key=ACME,
                             operation="delete", accountKey={"sourceKey": ACME}))
    assert account(world).people == [] and account(world).people_total == 0


def test_a_merge_upsert_without_the_account_key_keeps_the_link(world: World) -> None:
    world.apply(world.record(BOB, account_key=ACME, b2b={"accountKey": {"sourceKey": ACME}}))
    world.apply(world.record(BOB, operation="merge", person={"name": {"lastName": "Builder"}}))
    assert account(world).people_total == 1
    world.apply(world.record(BOB, account_key="globex", b2b={"accountKey": {"sourceKey": "globex"}}))
    assert account(world).people_total == 0  # moved to another account


def test_people_are_paged_by_profile_id(world: World) -> None:
    for i in range(7):
        world.apply(world.record(Identity("Email", f"p{i}@acme.example"), dataset="account-people",
                                 record_class="account-person", account_key=ACME, accountKey={"sourceKey": ACME}))
    seen: list[str] = []
    after = None
    while True:
        view = account(world, limit=3, after=after)
        seen += [p.profile_id for p in view.people]
        if view.next is None:
            break
        after = view.next
    assert len(seen) == 7 == len(set(seen)) and seen == sorted(seen)


def test_deleting_a_person_removes_them_from_their_accounts(world: World) -> None:
    world.apply(world.record(ANN, dataset="account-people", record_class="account-person", account_key=ACME,
                             accountKey={"sourceKey": ACME}))
    world.delete(ANN)
    assert account(world).people == []
    with world.store.env.begin() as txn:
        assert txn.stat(world.store.person_account)["entries"] == 0
