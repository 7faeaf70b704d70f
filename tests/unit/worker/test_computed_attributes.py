"""Computed attributes against real LMDB files, with a clock the test moves."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inlet import lookups
from inlet.xdm import Identity
from tests.unit.worker.world import DAY_MS, NOW_MS, World, definition
from worker.profile.store import Store

ECID = Identity("ECID", "1" * 38)  # the browser
IDFA = Identity("IDFA", "A" * 36)  # the phone
CRM = Identity("CRMID", "C-1", primary=True, authenticated=True)  # the shop's back office
EMAIL = Identity("Email", "ann@shop.example", authenticated=True)

PURCHASES_30D = definition({
    "name": "purchases30d", "function": "SUM", "field": "commerce.order.priceTotal",
    "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 30, "unit": "DAYS"}})


def order(price: Any) -> dict[str, Any]:
    return {"commerce": {"order": {"priceTotal": price}}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    yield s
    s.close()


def test_a_30_day_purchase_sum_across_web_mobile_and_server_side_events(store: Store) -> None:
    world = World(store, [PURCHASES_30D])
    now = NOW_MS
    world.send(ECID, ts=now - 40 * DAY_MS, **order(1000))  # web, before the window: never counted
    world.send(ECID, ts=now - 20 * DAY_MS, **order(10.10))  # web, anonymous
    world.send(IDFA, ts=now - 10 * DAY_MS, **order(20.20))  # mobile app, anonymous
    world.send(CRM, ts=now - 2 * DAY_MS, **order(30.30))  # server side, from the shop's CRM
    world.send(ECID, ts=now - DAY_MS, event_type="web.webpagedetails.pageViews", **order(99))  # not a purchase
    assert world.computed(ECID) == {"purchases30d": 10.1}
    # Logins stitch the three identities into one person; the sum covers every channel.
    world.send(CRM, ECID, ts=now - DAY_MS, event_type="login")
    world.send(CRM, IDFA, ts=now - DAY_MS, event_type="login")
    assert world.computed(IDFA) == world.computed(ECID) == {"purchases30d": 60.6}
    attribute = world.profile(CRM)["computedAttributes"]["purchases30d"]
    assert attribute["lastUpdatedAt"].endswith("Z") and set(attribute) == {"value", "lastUpdatedAt"}

    world.now_ms = now + 11 * DAY_MS  # no new events: the window slides on reads alone
    assert world.computed(CRM) == {"purchases30d": 50.5}
    world.now_ms = now + 21 * DAY_MS
    assert world.computed(CRM) == {"purchases30d": 30.3}
    world.now_ms = now + 29 * DAY_MS
    assert world.computed(CRM) == {}  # nothing in the window: no value


def test_out_of_order_events_land_in_their_own_bucket(store: Store) -> None:
    world = World(store, [PURCHASES_30D])
    world.send(EMAIL, ts=NOW_MS - 1 * DAY_MS, **order(1))
    world.send(EMAIL, ts=NOW_MS - 25 * DAY_MS, **order(2))  # late, older than the newest
    world.send(EMAIL, ts=NOW_MS - 31 * DAY_MS, **order(4))  # older than the window: ignored
    assert world.computed(EMAIL) == {"purchases30d": 3}
    world.now_ms += 6 * DAY_MS  # the late event's bucket leaves first
    assert world.computed(EMAIL) == {"purchases30d": 1}


def test_every_function_with_conditions(store: Store) -> None:
    def make(name: str, function: str, **extra: Any) -> Any:
        return definition({"name": name, "function": function, "duration": {"count": 7, "unit": "DAYS"},
                           "filter": {"eventType": ["commerce.purchases"]}, **extra})

    field = {"field": "commerce.order.priceTotal"}
    big = {"filter": {"eventType": ["commerce.purchases"],
                      "conditions": [{"field": "commerce.order.priceTotal", "op": "gt", "value": 10},
                                     {"field": "commerce.order.currencyCode", "op": "in", "value": ["EUR", "USD"]}]}}
    world = World(store, [
        make("total", "SUM", **field), make("orders", "COUNT"), make("cheapest", "MIN", **field),
        make("dearest", "MAX", **field), make("lastOrder", "MOST_RECENT", field="commerce.order"),
        make("firstOrder", "FIRST", **field), make("bigOrders", "COUNT", **big),
        make("firstDays", "FIRST", field="commerce.order.priceTotal",
             filter={"conditions": [{"field": "marketing.campaign", "op": "exists"}]}),
        make("hours", "COUNT", duration={"count": 2, "unit": "HOURS"}),
    ])
    orders = [(3, 12, "EUR"), (1, 5, "EUR"), (5, 40, "GBP"), (2, 25, "USD")]  # (days ago, price, currency)
    for days, price, currency in orders:
        world.send(EMAIL, ts=NOW_MS - days * DAY_MS, commerce={"order": {"priceTotal": price, "currencyCode": currency}})
    world.send(EMAIL, ts=NOW_MS - 3_600_000, commerce={"order": {"priceTotal": "free"}})  # not a number
    world.send(EMAIL, ts=NOW_MS - 4 * DAY_MS, event_type="web.webpagedetails.pageViews", marketing={"campaign": "x"})
    assert world.computed(EMAIL) == {
        "total": 82, "orders": 5, "cheapest": 5, "dearest": 40,
        "lastOrder": {"priceTotal": "free"}, "firstOrder": 40, "bigOrders": 2, "hours": 1,
    }
    selected = world.profile(EMAIL, fields=["computedAttributes.total"])
    assert list(selected) == ["computedAttributes"] and list(selected["computedAttributes"]) == ["total"]
    assert "computedAttributes" not in world.profile(EMAIL, fields=["person"])


def test_months_are_calendar_months(store: Store) -> None:
    world = World(store, [definition({"name": "m", "function": "COUNT", "duration": {"count": 1, "unit": "MONTHS"}})])
    world.now_ms = 1_772_323_200_000  # 2026-03-01T00:00Z
    world.send(EMAIL, ts=1_769_904_000_000 - DAY_MS)  # 2026-01-31: more than a month before
    world.send(EMAIL, ts=1_769_904_000_000 + DAY_MS)  # 2026-02-02
    assert world.computed(EMAIL) == {"m": 1}


def test_deleting_a_profile_removes_its_computed_values(store: Store) -> None:
    world = World(store, [PURCHASES_30D])
    world.send(EMAIL, ECID, ts=NOW_MS - DAY_MS, **order(5))
    world.delete(EMAIL)
    with store.env.begin() as txn:
        assert txn.stat(store.computed)["entries"] == 0
    world.send(ECID, ts=NOW_MS, event_type="web.webpagedetails.pageViews")
    assert world.computed(ECID) == {}


def test_unlink_takes_an_identitys_purchases_with_it(store: Store) -> None:
    world = World(store, [PURCHASES_30D])
    world.send(EMAIL, ts=NOW_MS - DAY_MS, **order(5))
    world.send(ECID, ts=NOW_MS - DAY_MS, **order(7))
    world.send(EMAIL, ECID, ts=NOW_MS, event_type="login")
    assert world.computed(EMAIL) == {"purchases30d": 12}
    world.unlink(ECID)
    assert world.computed(EMAIL) == {"purchases30d": 5}
    assert world.computed(ECID) == {"purchases30d": 7}


def test_the_sweep_drops_old_buckets_and_the_state_of_deleted_definitions(store: Store) -> None:
    count = definition({"name": "views", "function": "COUNT", "duration": {"count": 1, "unit": "DAYS"}})
    world = World(store, [PURCHASES_30D, count])
    world.send(EMAIL, ts=NOW_MS - 3_600_000, **order(5))
    world.send(ECID, ts=NOW_MS - 3_600_000, **order(5))

    def buckets() -> int:
        with store.env.begin() as txn:
            return int(txn.stat(store.computed)["entries"])

    assert buckets() == 4
    world.now_ms += 2 * DAY_MS
    world.send(Identity("Email", "other@shop.example"), ts=world.now_ms, event_type="x")  # any batch sweeps
    assert buckets() == 3  # the 1-day counts of the two left, a new one came
    world.definitions.replace([count])
    world.send(Identity("Email", "other@shop.example"), ts=world.now_ms, event_type="x")
    assert buckets() == 1  # purchases30d is gone; the new view shares the other's bucket


def test_a_redelivered_batch_counts_nothing_twice(store: Store) -> None:
    world = World(store, [PURCHASES_30D])
    event = world.event(EMAIL, ts=NOW_MS, **order(5))
    world.apply(event)
    world.apply(event)
    assert world.computed(EMAIL) == {"purchases30d": 5}


FUNCTIONS = ["SUM", "COUNT", "MIN", "MAX", "MOST_RECENT", "FIRST"]


def all_functions(prefix: str = "") -> list[Any]:
    return [definition({"name": f"{prefix}{f.lower()}", "function": f, "field": "commerce.order.priceTotal",
                        "filter": {"eventType": ["commerce.purchases"],
                                   "conditions": [{"field": "commerce.order.priceTotal", "op": "gte", "value": 1}]},
                        "duration": {"count": 30, "unit": "DAYS"}}) for f in FUNCTIONS]


def random_traffic(world: World, rng: random.Random, count: int) -> None:
    people = [Identity("CRMID", f"p{i}", authenticated=True) for i in range(6)]  # one CRMID a person: 6 people
    devices = [Identity("ECID", f"{i:038d}") for i in range(8)]
    for _ in range(count):
        ids = [rng.choice(people)] if rng.random() < 0.6 else []
        if rng.random() < 0.5 or not ids:
            ids.append(rng.choice(devices))
        ts = world.now_ms - rng.randrange(-DAY_MS, 35 * DAY_MS)  # out of order, some too old, some ahead
        price = rng.choice([rng.randrange(0, 500) / 10, rng.randrange(0, 50), "n/a"])
        kind = rng.choice(["commerce.purchases", "commerce.purchases", "web.webpagedetails.pageViews"])
        world.send(*ids, ts=ts, event_type=kind, **order(price))
        world.now_ms += rng.randrange(0, 3_600_000)


def test_backfill_of_a_new_definition_matches_streaming(tmp_path: Path) -> None:
    """The same random traffic into two stores: one counts from the start, the other gets the
    definitions afterwards and backfills (in chunks of 3 events, with streaming in between)."""
    streaming, late = Store(tmp_path / "a", 64 << 20), Store(tmp_path / "b", 64 << 20)
    try:
        counted = World(streaming, all_functions())
        backfilled = World(late, [])
        random_traffic(counted, random.Random(5), 300)
        random_traffic(backfilled, random.Random(5), 300)
        backfilled.definitions.replace(all_functions())
        reports, more = backfilled.backfill.step()
        assert more and not reports[0].done
        random_traffic(backfilled, random.Random(6), 20)  # streaming goes on between chunks
        random_traffic(counted, random.Random(6), 20)
        reports = backfilled.backfill.run_to_end()
        assert all(r.done and r.processed >= 300 for r in reports) and len(reports) == 6
        people = [Identity("CRMID", f"p{i}") for i in range(6)] + [Identity("ECID", f"{i:038d}") for i in range(8)]
        values = [counted.computed(p) for p in people]
        assert any(v for v in values)
        assert values == [backfilled.computed(p) for p in people]
        # Idempotent: a backfill that runs again (a changed-and-restored definition) changes nothing.
        backfilled.definitions.replace([])
        backfilled.definitions.replace(all_functions())
        backfilled.backfill.run_to_end()
        assert values == [backfilled.computed(p) for p in people]
    finally:
        streaming.close()
        late.close()


def test_backfill_reports_progress_and_survives_a_restart(store: Store) -> None:
    world = World(store, [])
    for i in range(10):
        world.send(Identity("Email", f"p{i}@shop.example"), ts=NOW_MS - DAY_MS, **order(i + 1))
    world.definitions.replace([PURCHASES_30D])
    (report,), more = world.backfill.step()
    assert more and (report.processed, report.total, report.done) == (3, 10, False)
    restarted = World(store, [PURCHASES_30D])  # a new worker on the same store resumes the job
    reports = restarted.backfill.run_to_end()
    assert [(r.processed, r.total, r.done) for r in reports] == [(10, 10, True)]
    assert restarted.computed(Identity("Email", "p9@shop.example")) == {"purchases30d": 10}


def test_a_definition_change_starts_fresh_state(store: Store) -> None:
    world = World(store, [PURCHASES_30D])
    world.send(EMAIL, ts=NOW_MS - DAY_MS, **order(5))
    world.send(EMAIL, ts=NOW_MS - DAY_MS, **order(50))
    narrower = definition({
        "name": "purchases30d", "function": "SUM", "field": "commerce.order.priceTotal",
        "duration": {"count": 30, "unit": "DAYS"},
        "filter": {"conditions": [{"field": "commerce.order.priceTotal", "op": "lt", "value": 10}]}})
    world.definitions.replace([narrower])
    assert world.computed(EMAIL) == {}  # the old state no longer counts
    world.backfill.run_to_end()
    assert world.computed(EMAIL) == {"purchases30d": 5}


def test_lookups_only_answer_for_the_sandbox_of_a_definition(store: Store) -> None:
    other = definition({"name": "elsewhere", "sandbox": "dev", "function": "COUNT", "duration": {"count": 1, "unit": "DAYS"}})
    world = World(store, [other])
    world.send(EMAIL, ts=NOW_MS)
    view = world.ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=EMAIL))
    assert isinstance(view, lookups.ProfileView) and b"computedAttributes" not in bytes(view.entity)
