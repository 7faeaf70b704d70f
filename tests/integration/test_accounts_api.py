"""Account (B2B) profiles and the union schema through the real gateway, NATS and worker."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import System, event, message

B2B = """
[[datasets]]
id = "crm-accounts"
class = "account"

[[datasets]]
id = "account-people"
class = "account-person"
"""
ENTITIES = "/data/core/ups/access/entities"
ACME = "acme@0001.salesforce"


def account(system: System, key: str = ACME, **params: str) -> Any:
    return system.http.get(ENTITIES, params={"schema.name": "_xdm.context.account", "entityId": key, **params},
                           headers=system.auth)


def person(email: str) -> dict[str, Any]:
    return {"Email": [{"id": email, "primary": True, "authenticatedState": "authenticated"}]}


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(B2B)
def test_an_account_with_its_people_paged(system: System) -> None:
    bodies = [
        message("crm-accounts", {"accountKey": {"sourceKey": ACME}, "accountName": "Acme",
                                 "accountOrganization": {"industry": "Retail", "annualRevenue": {"amount": 5e6}}}),
        message("account-people", {"identityMap": person("ann@acme.example"), "accountKey": {"sourceKey": ACME}}),
        message("demo-profiles", {"identityMap": person("ann@acme.example"),
                                  "person": {"name": {"firstName": "Ann"}}, "workEmail": {"address": "ann@acme.example"}}),
        message("demo-profiles", {"identityMap": person("bob@acme.example"), "person": {"name": {"firstName": "Bob"}},
                                  "b2b": {"accountKey": {"sourceKey": ACME}}}),
    ]
    for body in bodies:
        response = system.http.post("/collection/demo", json=body)
        assert response.status_code == 200, response.text

    def people_count() -> int:
        response = account(system)
        return len(next(iter(response.json().values()))["people"]["children"]) if response.status_code == 200 else 0

    system.wait_for(lambda: people_count() == 2, 10, "two people in the account")
    (found,) = account(system).json().values()
    assert found["accountKey"] == ACME and found["sources"] == ["crm-accounts"]
    assert found["entity"]["accountOrganization"]["industry"] == "Retail"
    assert found["mergePolicy"] == {"id": "default"} and found["lastModifiedAt"].endswith("Z")
    names = sorted(p["entity"]["person"]["name"]["firstName"] for p in found["people"]["children"])
    assert names == ["Ann", "Bob"]
    ann_id = next(iter(system.profile("Email", "ann@acme.example").json()))
    assert ann_id in {p["entityId"] for p in found["people"]["children"]}

    first = next(iter(account(system, limit="1").json().values()))["people"]
    assert first["_page"]["count"] == 1 and first["_page"]["totalCount"] == 2
    # `_links.next.href` is relative to /data/core/ups/access, as for events; "" on the last page.
    next_page = system.http.get("/data/core/ups/access" + first["_links"]["next"]["href"], headers=system.auth)
    second = next(iter(next_page.json().values()))["people"]
    assert second["_page"]["count"] == 1 and second["_links"] == {"next": {"href": ""}}
    assert {first["children"][0]["entityId"], second["children"][0]["entityId"]} == {p["entityId"] for p in found["people"]["children"]}

    # Ann's relation ends: she leaves the account.
    ended = message("account-people", {"identityMap": person("ann@acme.example"), "accountKey": {"sourceKey": ACME},
                                       "isActive": False})
    assert system.http.post("/collection/demo", json=ended).status_code == 200
    system.wait_for(lambda: people_count() == 1, 10, "Ann unlinked")

    assert account(system, "nobody").status_code == 404
    assert system.http.get(ENTITIES, params={"schema.name": "_xdm.context.account"}, headers=system.auth).status_code == 400
    assert account(system, limit="0").status_code == 400
    assert account(system, start="not-a-profile-id").status_code == 400
    assert system.http.get(ENTITIES, params={"schema.name": "_xdm.context.account", "entityId": ACME}).status_code == 401
    no_key = system.http.post("/collection/demo", json=message("crm-accounts", {"accountName": "keyless"}))
    assert no_key.status_code == 400 and no_key.json()["code"] == "missing_field"


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(B2B)
def test_the_union_schema_of_each_class(system: System) -> None:
    events = [message("demo-events", event(email="u@shop.example", commerce={"order": {"priceTotal": 10}})),
              message("demo-events", event(email="u@shop.example", commerce={"order": {"priceTotal": 10.5}})),
              message("lake-only", event(email="u@shop.example", secret={"field": 1})),
              message("demo-profiles", {"identityMap": person("u@shop.example"), "loyalty": {"tier": "gold"}}),
              message("crm-accounts", {"accountKey": {"sourceKey": ACME}, "accountName": "Acme"})]
    for body in events:
        assert system.http.post("/collection/demo", json=body).status_code == 200

    def union(xdm_class: str) -> dict[str, Any]:
        response = system.http.get("/data/core/ups/config/unionSchema", params={"class": xdm_class}, headers=system.auth)
        assert response.status_code == 200, response.text
        return dict(response.json())

    system.wait_for(lambda: any(f["path"] == "accountName" for f in union("account")["fields"]), 10, "observed")
    observed = {f["path"]: f for f in union("experienceevent")["fields"]}
    assert observed["commerce.order.priceTotal"] == {"path": "commerce.order.priceTotal",
                                                     "types": ["integer", "number"], "datasets": ["demo-events"]}
    assert observed["web.webPageDetails.URL"]["types"] == ["string"]
    assert "secret.field" not in observed  # lake-only is not enabled for profile
    profile = union("profile")
    assert profile["datasets"] == ["demo-profiles"] and profile["class"] == "profile"
    assert {f["path"] for f in profile["fields"]} == {"identityMap", "loyalty.tier"}
    assert union("account")["datasets"] == ["crm-accounts", "demo-accounts"]  # every profile-enabled one

    assert system.http.get("/data/core/ups/config/unionSchema", params={"class": "profile"}).status_code == 401
    wrong = system.http.get("/data/core/ups/config/unionSchema", params={"class": "person"}, headers=system.auth)
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_parameter"
