"""The computed attributes API as Adobe documents it, through the real gateway, NATS and
profile worker: the page's example requests (a PQL `expression`) and the documented answers.

Source: https://experienceleague.adobe.com/en/docs/experience-platform/profile/computed-attributes/api
(AdobeDocs/experience-platform.en, help/profile/computed-attributes/api.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import ORG, System

ATTRIBUTES = "/data/core/ca/attributes"
SUM_PQL = ("xEvent[(commerce.checkouts.value > 0.0 or commerce.purchases.value > 1.0 or "
           "commerce.order.priceTotal >= 10.0)].sum(commerce.order.priceTotal)")
SUM_PQL_7_DAYS = ("xEvent[(commerce.checkouts.value > 0.0 or commerce.purchases.value > 1.0 or "
                  "commerce.order.priceTotal >= 10.0) and (timestamp occurs <= 7 days before now)]"
                  ".sum(commerce.order.priceTotal)")
MOST_RECENT_PQL = ('xEvent[eventType.equals("commerce.backofficeOrderPlaced", false)].topN(timestamp, 1)'
                   '.map({"timestamp": timestamp, "value": producedBy}).head()')
# The page's create request, unchanged.
CREATE = {
    "name": "testing",
    "displayName": "Sample Display Name",
    "description": "Sample Description",
    "expression": {"type": "PQL", "format": "pql/text", "value": SUM_PQL},
    "keepCurrent": False,
    "duration": {"count": 4, "unit": "DAYS"},
    "status": "DRAFT",
}


def check_item(item: dict[str, Any]) -> None:
    """The documented fields of a computed attribute."""
    assert item["type"] == "ComputedAttribute" and item["id"] and item["imsOrgId"] == ORG
    assert item["sandbox"]["sandboxName"] == "prod" and item["sandbox"]["type"] == "production"
    assert item["schema"] == {"name": "_xdm.context.profile"}
    assert isinstance(item["createEpoch"], int) and isinstance(item["updateEpoch"], int)
    assert item["status"] in ("DRAFT", "NEW", "PROCESSING", "PROCESSED", "DISABLED")
    assert item["path"] and item["positionPath"]


@pytest.mark.components("gateway", "profile")
def test_create_get_update_list_and_delete_as_documented(system: System) -> None:
    """"Create a computed attribute" (200, `id`, `type`, `expression` echoed, `mergeFunction`,
    `status` DRAFT), "Retrieve a specific computed attribute" by its id, "Update a specific
    computed attribute" (the page's PATCH object: description, an expression with a `timestamp
    occurs` lookback, status DRAFT → NEW), "Retrieve a list" (`_page` {offset, limit, count,
    totalCount}, `_links`) and "Delete" (202 with the deleted attribute).
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/computed-attributes/api)"""
    created = system.http.post(ATTRIBUTES, headers=system.auth, json=CREATE)
    assert created.status_code == 200, created.text
    item = created.json()
    check_item(item)
    assert item["name"] == "testing" and item["displayName"] == "Sample Display Name"
    assert item["description"] == "Sample Description" and item["keepCurrent"] is False
    assert item["expression"]["type"] == "PQL" and item["expression"]["format"] == "pql/text"
    assert item["expression"]["value"] == SUM_PQL
    assert item["mergeFunction"] == {"value": "SUM"} and item["status"] == "DRAFT"
    assert item["duration"] == {"count": 4, "unit": "DAYS"}
    # inlet's own shape, compiled from the PQL:
    assert item["function"] == "SUM" and item["field"] == "commerce.order.priceTotal"
    assert len(item["filter"]["anyOf"]) == 1 and len(item["filter"]["anyOf"][0]) == 3

    fetched = system.http.get(f"{ATTRIBUTES}/{item['id']}", headers=system.auth)
    assert fetched.status_code == 200 and fetched.json()["name"] == "testing"
    assert fetched.json()["id"] == item["id"]

    updated = system.http.patch(f"{ATTRIBUTES}/{item['id']}", headers=system.auth, json={
        "description": "Sample Description",
        "expression": {"type": "PQL", "format": "pql/text", "value": SUM_PQL_7_DAYS},
        "status": "NEW",
    })
    assert updated.status_code == 200, updated.text
    after = updated.json()
    check_item(after)
    assert after["status"] in ("NEW", "PROCESSING", "PROCESSED") and after["version"] == 2
    assert after["expression"]["value"] == SUM_PQL_7_DAYS
    assert after["duration"] == {"count": 7, "unit": "DAYS"}  # the new expression's lookback
    assert system.wait_for(lambda: system.http.get(f"{ATTRIBUTES}/testing", headers=system.auth)
                           .json()["status"] == "PROCESSED", 10, "the backfill of a NEW attribute")

    second = {**CREATE, "name": "lastOrderSource", "expression": {"type": "PQL", "format": "pql/text",
                                                                  "value": MOST_RECENT_PQL}}
    assert system.http.post(ATTRIBUTES, headers=system.auth, json=second).json()["mergeFunction"] == {
        "value": "MOST_RECENT"}
    listed = system.http.get(f"{ATTRIBUTES}?limit=1&sortBy=name", headers=system.auth)
    assert listed.status_code == 200
    body = listed.json()
    assert body["_page"]["offset"] == 0 and body["_page"]["limit"] == 1
    assert body["_page"]["count"] == 1 and body["_page"]["totalCount"] == 2
    assert [a["name"] for a in body["computedAttributes"]] == ["lastOrderSource"]
    assert body["_links"]["self"] == {"href": "/attributes?offset=0&limit=1&sortBy=name"}
    following = system.http.get("/data/core/ca" + body["_links"]["next"]["href"], headers=system.auth).json()
    assert [a["name"] for a in following["computedAttributes"]] == ["testing"]
    assert "next" not in following["_links"] and following["_links"]["prev"] == {
        "href": "/attributes?offset=0&limit=1&sortBy=name"}
    drafts = system.http.get(f"{ATTRIBUTES}?status=draft", headers=system.auth).json()
    assert [a["name"] for a in drafts["computedAttributes"]] == ["lastOrderSource"]

    deleted = system.http.delete(f"{ATTRIBUTES}/{item['id']}", headers=system.auth)
    assert deleted.status_code == 202 and deleted.json()["id"] == item["id"]
    assert system.http.get(f"{ATTRIBUTES}/{item['id']}", headers=system.auth).status_code == 404


@pytest.mark.components("gateway", "profile")
def test_pql_outside_the_supported_subset_is_refused_naming_the_construct(system: System) -> None:
    """The older page's profile-attribute expression (`person.birthDate.getMonth() =
    currentMonth()`) and aggregations computed attributes do not document are refused with a
    400 whose detail names what is not supported; a bad `expression.type` too.
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/computed-attributes/api)"""
    cases = {
        "person.birthDate.getMonth() = currentMonth()": "xEvent",
        "xEvent.average(commerce.order.priceTotal)": "average",
        'xEvent[commerce.order.currencyCode.contains("E")].count()': "contains",
        "xEvent[commerce.shipping.shipDate occurs <= 1 days before now].min(commerce.order.priceTotal)": "occurs",
        "xEvent.topN(timestamp, 5).head().producedBy": "topN(timestamp, 5)",
        "xEvent[a > ].count()": "expected a number",
    }
    for value, named in cases.items():
        body = {**CREATE, "expression": {"type": "PQL", "format": "pql/text", "value": value}}
        response = system.http.post(ATTRIBUTES, headers=system.auth, json=body)
        assert response.status_code == 400, (value, response.text)
        problem = response.json()
        assert problem["code"] == "invalid_message" and named in problem["detail"], (value, problem)
    wrong_type = {**CREATE, "expression": {"type": "SQL", "format": "sql/text", "value": SUM_PQL}}
    assert system.http.post(ATTRIBUTES, headers=system.auth, json=wrong_type).status_code == 400
    no_lookback = {k: v for k, v in CREATE.items() if k != "duration"}
    missing = system.http.post(ATTRIBUTES, headers=system.auth, json=no_lookback)
    assert missing.status_code == 400 and missing.json()["code"] == "missing_field"
    contradiction = {**CREATE, "function": "COUNT"}
    assert system.http.post(ATTRIBUTES, headers=system.auth, json=contradiction).status_code == 400
    assert system.http.get(ATTRIBUTES, headers=system.auth).json()["_page"]["totalCount"] == 0
