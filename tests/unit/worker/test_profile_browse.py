"""The workspace's browse queries (worker/profile/browse.py) against real LMDB files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from inlet import browse
from inlet.xdm import Identity
from tests.unit.worker.world import DAY_MS, NOW_MS, World, definition
from worker.profile.browse import Browser, PreviewPart, PreviewPartAnswer, _preview_of
from worker.profile.store import Store, owner_id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    yield s
    s.close()


def email(name: str) -> Identity:
    return Identity("Email", f"{name}@shop.example", primary=True, authenticated=True)


def ask(browser: Browser, query: browse.Query) -> browse.Answer:
    return browse.decode_answer(browser.answer(browse.encode(query)))


def page(browser: Browser, **kw: Any) -> browse.ProfilesPage:
    answer = ask(browser, browse.ProfilesQuery(org="O", sandbox="prod", **kw))
    assert isinstance(answer, browse.ProfilesPage), answer
    return answer


def firsts(p: browse.ProfilesPage) -> list[str]:
    return [row.identities[0] for row in p.rows]


def test_newest_updated_first_and_pages_that_cover_everyone_once(store: Store) -> None:
    world = World(store)
    for i, name in enumerate(["ann", "bob", "cy", "dee", "eve"]):
        world.now_ms = NOW_MS + i * 1000
        world.send(email(name), ts=world.now_ms)
    world.now_ms += 1000
    world.send(email("bob"), ts=world.now_ms)  # bob changes last
    browser = Browser(store)
    first = page(browser, limit=2)
    assert firsts(first) == ["Email:bob@shop.example", "Email:eve@shop.example"] and first.matched == 5
    assert first.remaining == 5
    seen = firsts(first)
    last = first.rows[-1]
    while True:
        more = page(browser, limit=2, after=(last.last_modified_ms, last.profile_id))
        if not more.rows:
            break
        seen += firsts(more)
        assert more.remaining == 5 - len(seen) + len(more.rows)
        last = more.rows[-1]
    assert seen == ["Email:bob@shop.example", "Email:eve@shop.example", "Email:dee@shop.example",
                    "Email:cy@shop.example", "Email:ann@shop.example"]


def test_search_by_any_identity_value_namespace_and_dataset(store: Store) -> None:
    world = World(store)
    ecid = Identity("ECID", "12345678901234567890123456789012345678")
    world.send(email("ann"), ecid, ts=NOW_MS)
    world.send(email("annabel"), ts=NOW_MS)
    world.apply(world.record(email("bob"), dataset="demo-profiles", person={"name": {"firstName": "Bob"}}))
    world.send(Identity("Phone", "+4930123", primary=True), ts=NOW_MS, dataset="web-events")
    browser = Browser(store)
    assert sorted(i for r in page(browser, search="ANN").rows for i in r.identities if i.startswith("Email")) == [
        "Email:ann@shop.example", "Email:annabel@shop.example"]
    found = page(browser, search="5678901")  # part of the ECID: the profile, shown by its identities
    assert [r.identity_count for r in found.rows] == [2] and "Email:ann@shop.example" in found.rows[0].identities
    assert page(browser, search="ann", namespace="Phone").rows == []
    assert firsts(page(browser, namespace="Phone")) == ["Phone:+4930123"]
    assert firsts(page(browser, dataset="demo-profiles")) == ["Email:bob@shop.example"]  # attributes
    assert firsts(page(browser, dataset="web-events")) == ["Phone:+4930123"]  # events
    sample = page(browser, dataset="demo-events")
    assert sorted(i for r in sample.rows for i in r.identities if i.startswith("Email")) == [
        "Email:ann@shop.example", "Email:annabel@shop.example"]
    assert sample.scanned == 5 and not sample.truncated


def test_a_preview_is_the_value_the_worker_counts_once_saved_and_writes_nothing(store: Store) -> None:
    spend = definition({"name": "spend7d", "function": "SUM", "field": "commerce.order.priceTotal",
                        "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 7, "unit": "DAYS"}})
    world = World(store)
    ecid = Identity("ECID", "1" * 38)
    world.send(ecid, ts=NOW_MS - 10 * DAY_MS, commerce={"order": {"priceTotal": 1000}})  # outside the window
    world.send(ecid, ts=NOW_MS - 2 * DAY_MS, commerce={"order": {"priceTotal": 10.1}})
    world.send(email("ann"), ecid, ts=NOW_MS - DAY_MS, commerce={"order": {"priceTotal": 20.2}})
    world.send(email("ann"), ts=NOW_MS - DAY_MS, event_type="web.webpagedetails.pageViews",
               commerce={"order": {"priceTotal": 99}})  # not a purchase
    world.send(email("ann"), ts=NOW_MS, commerce={"order": {"priceTotal": "12"}})  # a string: not summed
    browser = Browser(store, clock=world.clock)
    with store.env.begin() as txn:
        buckets_before = txn.stat(store.computed)["entries"]
    answer = ask(browser, browse.PreviewQuery(org="O", sandbox="prod", definition=spend, identity=email("ann")))
    assert isinstance(answer, browse.Preview), answer
    assert msgspec.json.decode(answer.value) == 30.3 and answer.counted == 2 and answer.scanned == 4
    with store.env.begin() as txn:
        assert txn.stat(store.computed)["entries"] == buckets_before  # nothing saved
    counted = World(store, [spend])
    counted.backfill.run_to_end()
    assert counted.computed(email("ann")) == {"spend7d": 30.3}  # what the preview said
    nobody = ask(browser, browse.PreviewQuery(org="O", sandbox="prod", definition=spend, identity=email("zed")))
    assert isinstance(nobody, browse.Missing)


def test_accounts_by_key_or_name(store: Store) -> None:
    world = World(store)
    for key, name in [("acme@crm", "Acme Outfitters"), ("globex@crm", "Globex")]:
        world.apply(world.record(dataset="demo-accounts", record_class="account", account_key=key, accountName=name))
    browser = Browser(store)
    answer = ask(browser, browse.AccountsQuery(org="O", sandbox="prod", search="outfit"))
    assert isinstance(answer, browse.AccountsPage)
    assert [(r.account_key, r.name) for r in answer.rows] == [("acme@crm", "Acme Outfitters")]
    everyone = ask(browser, browse.AccountsQuery(org="O", sandbox="prod"))
    assert isinstance(everyone, browse.AccountsPage) and everyone.matched == 2


def test_partial_previews_of_a_split_profile_merge_to_the_whole_preview(store: Store) -> None:
    """With N shards a preview is merged from each shard's partial over the identities it
    keeps (docs/profile.md "Workspace"): split by identity, the merge is the one-store value."""
    world = World(store)
    ecid = Identity("ECID", "2" * 38)
    world.send(ecid, ts=NOW_MS - 2 * DAY_MS, commerce={"order": {"priceTotal": 7}})
    world.send(email("ann"), ecid, ts=NOW_MS - DAY_MS, commerce={"order": {"priceTotal": 5}})
    world.send(email("ann"), ts=NOW_MS - 3 * DAY_MS, commerce={"order": {"priceTotal": 11}})
    browser = Browser(store, clock=world.clock)
    owners = [owner_id("prod", "ECID:" + "2" * 38), owner_id("prod", "Email:ann@shop.example")]
    for function in ("SUM", "COUNT", "MIN", "MOST_RECENT", "FIRST"):
        d = definition({"name": "x", "function": function, "field": "commerce.order.priceTotal",
                        "duration": {"count": 7, "unit": "DAYS"}})
        whole = ask(browser, browse.PreviewQuery(org="O", sandbox="prod", definition=d, identity=email("ann")))
        assert isinstance(whole, browse.Preview)
        parts = [browser._read_part(PreviewPart(definition=d, sandbox="prod", now_ms=NOW_MS, owners=[o]))
                 for o in owners]
        assert all(isinstance(p, PreviewPartAnswer) and p.counted for p in parts)
        merged = _preview_of(bytes.fromhex(whole.profile_id), d, [p for p in parts if isinstance(p, PreviewPartAnswer)])
        assert merged == whole, function
