"""Computed attributes through the real gateway, NATS and profile worker: definitions API,
streaming values in the profile, backfill with progress."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.harness import System, event, message

ATTRIBUTES = "/data/core/ca/attributes"
SEEDED = """
[[computed_attributes]]
name = "purchases30d"
function = "SUM"
field = "commerce.order.priceTotal"
filter = {eventType = ["commerce.purchases"]}
duration = {count = 30, unit = "DAYS"}
"""
DAY = 86_400


def days_ago(days: float) -> str:
    moment = datetime.fromtimestamp(time.time() - days * DAY, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def purchase(identity_map: dict[str, Any], price: float, days: float, **extra: Any) -> dict[str, Any]:
    return message("demo-events", event(email=None, event_type="commerce.purchases", timestamp=days_ago(days),
                                        identityMap=identity_map, commerce={"order": {"priceTotal": price}}, **extra))


def computed(system: System, ns: str, value: str, **params: str) -> dict[str, Any]:
    response = system.profile(ns, value, **params)
    if response.status_code != 200:
        return {}
    (profile,) = response.json().values()
    return dict(profile["entity"].get("computedAttributes", {}))


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(SEEDED)
def test_a_purchase_sum_across_channels_appears_in_the_profile(system: System) -> None:
    web = {"ECID": [{"id": "7" * 38}]}
    app = {"IDFA": [{"id": "9" * 36}]}
    crm = {"CRMID": [{"id": "ann-1", "primary": True, "authenticatedState": "authenticated"}]}
    for body in (purchase(web, 10.10, 20), purchase(app, 20.20, 10), purchase(crm, 30.30, 2),
                 purchase(crm, 999, 45),  # older than the window
                 purchase({**crm, **web}, 0, 1, eventType="login"), purchase({**crm, **app}, 0, 1, eventType="login")):
        assert system.http.post("/collection/demo", json=body).status_code == 200
    # The logins are not purchases, whatever they carry.
    value = system.wait_for(lambda: computed(system, "IDFA", "9" * 36).get("purchases30d", {}).get("value") == 60.6
                            and computed(system, "IDFA", "9" * 36), 10, "the cross-channel sum")
    assert value["purchases30d"]["lastUpdatedAt"].endswith("Z")
    only = system.profile("CRMID", "ann-1", fields="computedAttributes.purchases30d")
    (entity,) = only.json().values()
    assert list(entity["entity"]) == ["computedAttributes"]

    listed = system.http.get(ATTRIBUTES, headers=system.auth)
    assert listed.status_code == 200
    (seeded,) = listed.json()["computedAttributes"]
    assert seeded["name"] == "purchases30d" and seeded["imsOrgId"] == "DEMO@AdobeOrg"
    assert system.wait_for(lambda: system.http.get(f"{ATTRIBUTES}/purchases30d", headers=system.auth)
                           .json()["backfill"]["status"] == "done", 10, "the seed's backfill")


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(SEEDED)
def test_a_new_definition_backfills_to_the_streaming_value(system: System) -> None:
    people = [f"b{i}@shop.example" for i in range(5)]
    for i, email in enumerate(people):
        ids = {"Email": [{"id": email, "primary": True}]}
        for day in range(i + 2):
            body = purchase(ids, 5 + day * 1.25, day * 7)  # some older than 30 days
            assert system.http.post("/collection/demo", json=body).status_code == 200
    system.wait_for(lambda: all("purchases30d" in computed(system, "Email", e) for e in people), 10, "streamed")

    definition = {"name": "purchasesLate", "function": "SUM", "field": "commerce.order.priceTotal",
                  "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 30, "unit": "DAYS"},
                  "description": "the same as purchases30d, defined after the events"}
    created = system.http.post(ATTRIBUTES, headers=system.auth, json=definition)
    assert created.status_code == 200, created.text  # AEP answers a create with 200
    assert created.json()["backfill"]["status"] in ("pending", "running", "done")
    done = system.wait_for(lambda: (b := system.http.get(f"{ATTRIBUTES}/purchasesLate", headers=system.auth)
                                    .json()["backfill"])["status"] == "done" and b, 10, "backfill done")
    assert done["processed"] >= 20 and done["total"] >= 20
    for email in people:
        values = computed(system, "Email", email)
        assert values["purchasesLate"]["value"] == values["purchases30d"]["value"]


@pytest.mark.components("gateway", "profile")
def test_definitions_api_validates_and_edits(system: System) -> None:
    auth, analyst = system.auth, {"Authorization": "Bearer analyst-token-0123456789"}
    good = {"name": "orders7d", "function": "COUNT", "filter": {"eventType": ["commerce.purchases"]},
            "duration": {"count": 7, "unit": "DAYS"}}
    assert system.http.get(ATTRIBUTES).status_code == 401
    assert system.http.post(ATTRIBUTES, json=good).status_code == 401
    assert system.http.post(ATTRIBUTES, headers=analyst, json=good).status_code == 403
    assert system.http.get(ATTRIBUTES, headers=analyst).json()["computedAttributes"] == []

    def refused(body: Any, code: str, raw: bytes | None = None) -> None:
        response = (system.http.post(ATTRIBUTES, headers=auth, content=raw) if raw is not None
                    else system.http.post(ATTRIBUTES, headers=auth, json=body))
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["code"] == code and problem["status"] == 400 and problem["detail"], problem

    refused({**good, "function": "AVG"}, "invalid_message")
    refused({**good, "duration": {"count": 7, "unit": "MONTHS"}}, "invalid_message")
    refused({**good, "function": "SUM"}, "invalid_message")  # SUM of what?
    refused({k: v for k, v in good.items() if k != "duration"}, "missing_field")
    refused({**good, "filter": {"conditions": [{"field": "x", "op": "in", "value": 1}]}}, "invalid_message")
    refused({**good, "unknown": 1}, "invalid_message")
    refused(None, "malformed_json", raw=b"{")
    refused([good], "invalid_message")

    created = system.http.post(ATTRIBUTES, headers=auth, json=good)
    assert created.status_code == 200 and created.json()["version"] == 1
    refused(good, "invalid_parameter")  # exists
    assert system.http.get(f"{ATTRIBUTES}/nope", headers=auth).status_code == 404

    patched = system.http.patch(f"{ATTRIBUTES}/orders7d", headers=auth,
                                json=[{"op": "replace", "path": "/duration/count", "value": 14}])
    assert patched.status_code == 200 and patched.json()["duration"] == {"count": 14, "unit": "DAYS"}
    assert patched.json()["version"] == 2
    merged = system.http.patch(f"{ATTRIBUTES}/orders7d", headers=auth, json={"description": "two weeks"})
    assert merged.json()["description"] == "two weeks" and merged.json()["version"] == 3
    same = system.http.patch(f"{ATTRIBUTES}/orders7d", headers=auth, json={"description": "two weeks"})
    assert same.status_code == 200 and same.json()["version"] == 3  # nothing changed: no new version
    renamed = system.http.patch(f"{ATTRIBUTES}/orders7d", headers=auth, json={"name": "other"})
    assert renamed.status_code == 400 and renamed.json()["code"] == "invalid_parameter"
    bad_patch = system.http.patch(f"{ATTRIBUTES}/orders7d", headers=auth, json={"duration": {"unit": "YEARS"}})
    assert bad_patch.status_code == 400
    round_trip = system.http.get(f"{ATTRIBUTES}/orders7d", headers=auth).json()  # with its backfill field
    put_back = system.http.put(f"{ATTRIBUTES}/orders7d", headers=auth, json=round_trip)
    assert put_back.status_code == 200 and put_back.json()["version"] == 3

    assert system.http.delete(f"{ATTRIBUTES}/orders7d", headers=analyst).status_code == 403
    deleted = system.http.delete(f"{ATTRIBUTES}/orders7d", headers=auth)
    assert deleted.status_code == 202 and deleted.json()["name"] == "orders7d"  # AEP: 202 with the definition
    assert system.http.get(f"{ATTRIBUTES}/orders7d", headers=auth).status_code == 404
    assert system.http.delete(f"{ATTRIBUTES}/orders7d", headers=auth).status_code == 404


# The same definitions twice: in inlet's own shape, and as AEP's PQL expression.
PAIRS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"function": "SUM", "field": "commerce.order.priceTotal", "duration": {"count": 30, "unit": "DAYS"},
      "filter": {"eventType": ["commerce.purchases"],
                 "conditions": [{"field": "commerce.order.currencyCode", "op": "eq", "value": "EUR"}]}},
     {"value": 'xEvent[eventType = "commerce.purchases" and commerce.order.currencyCode = "EUR"]'
               '.sum(commerce.order.priceTotal)', "duration": {"count": 30, "unit": "DAYS"}}),
    ({"function": "COUNT", "duration": {"count": 30, "unit": "DAYS"}, "filter": {"eventType": ["commerce.purchases"]}},
     {"value": 'xEvent[eventType.equals("commerce.purchases", false)].count()', "duration": {"count": 30, "unit": "DAYS"}}),
    ({"function": "MIN", "field": "commerce.order.priceTotal", "duration": {"count": 30, "unit": "DAYS"},
      "filter": {"eventType": ["commerce.purchases"],
                 "conditions": [{"field": "commerce.order.priceTotal", "op": "gt", "value": 5}]}},
     {"value": 'xEvent[eventType = "commerce.purchases" and commerce.order.priceTotal > 5]'
               '.min(commerce.order.priceTotal)', "duration": {"count": 30, "unit": "DAYS"}}),
    ({"function": "MAX", "field": "commerce.order.priceTotal", "duration": {"count": 30, "unit": "DAYS"}},
     {"value": "xEvent[timestamp occurs <= 30 days before now].max(commerce.order.priceTotal)"}),
    ({"function": "MOST_RECENT", "field": "web.webPageDetails.name", "duration": {"count": 30, "unit": "DAYS"},
      "filter": {"eventType": ["web.webpagedetails.pageViews"]}},
     {"value": 'xEvent[eventType = "web.webpagedetails.pageViews"].topN(timestamp, 1)'
               '.map({"timestamp": timestamp, "value": web.webPageDetails.name}).head()',
      "duration": {"count": 30, "unit": "DAYS"}}),
    ({"function": "FIRST", "field": "eventType", "duration": {"count": 30, "unit": "DAYS"}},
     {"value": "xEvent.bottomN(timestamp, 1).head().eventType", "duration": {"count": 30, "unit": "DAYS"}}),
    ({"function": "COUNT", "duration": {"count": 30, "unit": "DAYS"},
      "filter": {"anyOf": [[{"field": "commerce.order.priceTotal", "op": "gte", "value": 50},
                            {"field": "commerce.order.currencyCode", "op": "eq", "value": "USD"}]]}},
     {"value": 'xEvent[commerce.order.priceTotal >= 50 or commerce.order.currencyCode = "USD"].count()',
      "duration": {"count": 30, "unit": "DAYS"}}),
    ({"function": "COUNT", "duration": {"count": 30, "unit": "DAYS"},
      "filter": {"conditions": [{"field": "commerce.order.currencyCode", "op": "ne", "value": "EUR"},
                                {"field": "commerce.order.currencyCode", "op": "ne", "value": "GBP"}]}},
     {"value": 'xEvent[not (commerce.order.currencyCode in ["EUR", "GBP"])].count()',
      "duration": {"count": 30, "unit": "DAYS"}}),
]


@pytest.mark.components("gateway", "profile")
def test_pql_definitions_give_the_values_of_the_same_definitions_in_inlets_shape(system: System) -> None:
    """AEP's PQL `expression` (https://experienceleague.adobe.com/en/docs/experience-platform/
    profile/computed-attributes/api) compiled by inlet.pql must count exactly what the same
    definition in inlet's own shape counts: both are created, the same events streamed through
    the real gateway, NATS and profile worker, and every profile's values compared."""
    for index, (own, expressed) in enumerate(PAIRS):
        mine = system.http.post(ATTRIBUTES, headers=system.auth, json={"name": f"own{index}", **own})
        assert mine.status_code == 200, mine.text
        pql = {"name": f"pql{index}", "duration": expressed.get("duration"),
               "expression": {"type": "PQL", "format": "pql/text", "value": expressed["value"]}}
        created = system.http.post(ATTRIBUTES, headers=system.auth, json={k: v for k, v in pql.items() if v})
        assert created.status_code == 200, created.text
        assert created.json()["function"] == own["function"]
    draft = {"name": "draftCount", "function": "COUNT", "duration": {"count": 30, "unit": "DAYS"}, "status": "DRAFT"}
    assert system.http.post(ATTRIBUTES, headers=system.auth, json=draft).json()["status"] == "DRAFT"
    people = [f"pql{i}@shop.example" for i in range(4)]
    for i, email in enumerate(people):
        ids = {"Email": [{"id": email, "primary": True}]}
        for n in range(i + 3):
            currency = ("EUR", "USD", "GBP")[(i + n) % 3]
            order = {"priceTotal": 4 + 11.5 * n * (i + 1), "currencyCode": currency}
            body = message("demo-events", event(email=None, event_type="commerce.purchases", event_id=f"{email}-{n}",
                                                timestamp=days_ago(n * 9), identityMap=ids, commerce={"order": order}))
            assert system.http.post("/collection/demo", json=body).status_code == 200
            view = message("demo-events", event(email=email, event_id=f"{email}-view{n}", timestamp=days_ago(n * 4 + 0.5),
                                                web={"webPageDetails": {"name": f"page-{i}-{n}"}}))
            assert system.http.post("/collection/demo", json=view).status_code == 200

    def stored(email: str, count: int) -> bool:
        return bool(system.events("Email", email).json().get("_page", {}).get("count") == count)

    for i, email in enumerate(people):
        system.wait_for(lambda: stored(email, 2 * (i + 3)), 10, f"{email}'s events")
    compared = 0
    for i, email in enumerate(people):
        values = computed(system, "Email", email)
        # The `or` across fields (pair 6) counted independently of either definition:
        expected = sum(1 for n in range(i + 3) if n * 9 < 30 and (
            4 + 11.5 * n * (i + 1) >= 50 or ("EUR", "USD", "GBP")[(i + n) % 3] == "USD"))
        assert values.get("pql6", {}).get("value") == (expected or None), (email, values)
        for index in range(len(PAIRS)):
            own_value = values.get(f"own{index}", {}).get("value")
            assert values.get(f"pql{index}", {}).get("value") == own_value, (email, index, values)
            compared += own_value is not None
        assert "draftCount" not in values  # AEP's DRAFT: kept, not computed
    assert compared >= 3 * len(PAIRS)  # the definitions counted something for most people
