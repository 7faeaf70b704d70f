"""The Profile access API (`/data/core/ups/access/entities`) as Adobe documents it, through the
real gateway, NATS and profile worker: each test sends the page's example request (ids adapted
to data this test streams first) and checks the documented answer field by field.

Source: https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/entities
(AdobeDocs/experience-platform.en, help/profile/api/entities.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import System, message

ENTITIES = "/data/core/ups/access/entities"
ACCESS = "/data/core/ups/access"  # `_links.next.href` is relative to it: "/entities?start=…"
JANE_ECID = "89149270342662559642753730269986316601"
JOHN_ECID = "89149270342662559642753730269986316602"
EVENTS_ECID = "89149270342662559642753730269986316900"
UNKNOWN_ECID = "89149270342662559642753730269986316999"


def stream(system: System, dataset: str, xdm: dict[str, Any]) -> None:
    response = system.http.post("/collection/demo", json=message(dataset, xdm))
    assert response.status_code == 200, response.text


def person(system: System, email: str, ecid: str, first: str) -> None:
    stream(system, "demo-profiles", {
        "identityMap": {"Email": [{"id": email, "primary": True}], "ECID": [{"id": ecid}]},
        "person": {"name": {"firstName": first, "middleName": "F", "lastName": "Doe"}},
        "workEmail": {"primary": True, "address": email, "label": f"{first} Doe", "type": "work", "status": "active"},
        "loyalty": {"tier": "gold"},  # not asked for: must not appear
    })
    system.wait_for(lambda: system.profile("ECID", ecid).status_code == 200, 10, f"{email}'s profile")


def web_event(event_id: str, timestamp: str, name: str) -> dict[str, Any]:
    return {
        "_id": event_id, "timestamp": timestamp, "eventType": "web.webpagedetails.pageViews",
        "identityMap": {"ECID": [{"id": EVENTS_ECID, "primary": True}]},
        "endUserIDs": {"_experience": {"ecid": {"id": EVENTS_ECID, "namespace": {"code": "ecid"}}}},
        "channel": {"_type": "web"},
        "web": {"webPageDetails": {"name": name, "pageViews": {"value": 1}}},
        "commerce": {"productViews": {"value": 1}},  # not asked for: must not appear
    }


@pytest.mark.components("gateway", "profile")
def test_access_profile_by_identity_with_the_identities_pseudo_field(system: System) -> None:
    """GET /access/entities?schema.name=_xdm.context.profile&entityId=…&entityIdNS=email
    &fields=identities,person.name,workEmail — the page's first example: the entity keyed by its
    id, with `identities` as `[{"id", "namespace": {"code"}}]` and only the fields asked for.
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/entities)"""
    person(system, "janedoe@example.com", JANE_ECID, "Jane")
    response = system.http.get(ENTITIES, headers=system.auth, params={
        "schema.name": "_xdm.context.profile", "entityId": "janedoe@example.com", "entityIdNS": "email",
        "fields": "identities,person.name,workEmail"})
    assert response.status_code == 200, response.text
    ((key, found),) = response.json().items()
    assert found["entityId"] == key and found["sources"] == ["demo-profiles"]
    assert found["lastModifiedAt"].endswith("Z")
    entity = found["entity"]
    assert set(entity) == {"identities", "person", "workEmail"}
    assert sorted(entity["identities"], key=lambda i: i["id"]) == [
        {"id": JANE_ECID, "namespace": {"code": "ECID"}},
        {"id": "janedoe@example.com", "namespace": {"code": "Email"}},
    ]
    assert entity["person"] == {"name": {"firstName": "Jane", "middleName": "F", "lastName": "Doe"}}
    assert entity["workEmail"]["address"] == "janedoe@example.com" and entity["workEmail"]["status"] == "active"


@pytest.mark.components("gateway", "profile")
def test_access_several_profiles_by_a_list_of_identities(system: System) -> None:
    """POST /access/entities with `schema`, `fields`, `identities: [{entityId, entityIdNS:
    {code}}]`, `timeFilter`, `limit`, `orderby`, `withCA` — the page's "Access profile data by
    list of identities" example: one entity per profile found, keyed by its id; an identity
    that names no profile is left out (the page shows an empty placeholder; inlet omits it).
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/entities)"""
    person(system, "janedoe@example.com", JANE_ECID, "Jane")
    person(system, "johndoe@example.com", JOHN_ECID, "John")
    response = system.http.post(ENTITIES, headers=system.auth, json={
        "schema": {"name": "_xdm.context.profile"},
        "fields": ["identities", "person.name", "workEmail"],
        "identities": [
            {"entityId": JANE_ECID, "entityIdNS": {"code": "ECID"}},
            {"entityId": UNKNOWN_ECID, "entityIdNS": {"code": "ECID"}},
            {"entityId": JOHN_ECID, "entityIdNS": {"code": "ECID"}},
        ],
        "timeFilter": {"startTime": 1539838505, "endTime": 1539838510},
        "limit": 10, "orderby": "-timestamp", "withCA": True,
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body) == 2
    names = set()
    for key, found in body.items():
        assert found["entityId"] == key and found["sources"] == ["demo-profiles"]
        assert set(found["entity"]) == {"identities", "person", "workEmail"}
        names.add(found["entity"]["person"]["name"]["firstName"])
    assert names == {"Jane", "John"}
    refused = system.http.post(ENTITIES, headers=system.auth, json={"schema": {"name": "_xdm.context.profile"},
                                                                    "identities": []})
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_parameter"


@pytest.mark.components("gateway", "profile")
def test_time_series_events_page_through_relative_next_links(system: System) -> None:
    """GET /access/entities?schema.name=_xdm.context.experienceevent&relatedSchema.name=
    _xdm.context.profile&relatedEntityId=…&relatedEntityIdNS=ECID&fields=endUserIDs,web,channel
    &startTime=1531260476000&endTime=1531260480000&limit=1 — the page's events example and its
    "Access a subsequent page of results": `_page` {orderby, start, count, next},
    `_links.next.href` in the relative `/entities?start=…` form (followed as
    `/access` + href), and on the last page `next: ""` and `"_links": {"next": {"href": ""}}`.
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/entities)"""
    first_id, second_id = "c8d11988-6b56-4571-a123-b6ce74236036", "c8d11988-6b56-4571-a123-b6ce74236037"
    stream(system, "demo-events", web_event(second_id, "2018-07-10T22:07:57Z", "Fernie Snow"))
    stream(system, "demo-events", web_event(first_id, "2018-07-10T22:07:56Z", "Fernie Snow"))
    stream(system, "demo-events", web_event("outside-the-window", "2018-07-10T22:08:30Z", "Later"))
    system.wait_for(lambda: system.events("ECID", EVENTS_ECID).json().get("_page", {}).get("count") == 3, 10)

    query = ("schema.name=_xdm.context.experienceevent&relatedSchema.name=_xdm.context.profile"
             f"&relatedEntityId={EVENTS_ECID}&relatedEntityIdNS=ECID&fields=endUserIDs,web,channel"
             "&startTime=1531260476000&endTime=1531260480000&limit=1")
    response = system.http.get(f"{ENTITIES}?{query}", headers=system.auth)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"_page", "children", "_links"}
    assert page["_page"]["orderby"] == "timestamp" and page["_page"]["start"] == first_id
    assert page["_page"]["count"] == 1 and page["_page"]["next"]
    (child,) = page["children"]
    profile_id = next(iter(system.profile("ECID", EVENTS_ECID).json()))
    assert child["relatedEntityId"] == profile_id and child["entityId"] == first_id
    assert child["timestamp"] == 1531260476000 and child["lastModifiedAt"].endswith("Z")
    assert child["entity"] == {
        "endUserIDs": {"_experience": {"ecid": {"id": EVENTS_ECID, "namespace": {"code": "ecid"}}}},
        "channel": {"_type": "web"},
        "web": {"webPageDetails": {"name": "Fernie Snow", "pageViews": {"value": 1}}},
    }
    href = page["_links"]["next"]["href"]
    assert href.startswith(f"/entities?start={page['_page']['next']}&orderby=timestamp&schema.name=")
    assert "fields=endUserIDs,web,channel" in href and "limit=1" in href

    last = system.http.get(ACCESS + href, headers=system.auth).json()
    assert last["_page"] == {"orderby": "timestamp", "start": second_id, "count": 1, "next": ""}
    assert [c["entityId"] for c in last["children"]] == [second_id]
    assert last["_links"] == {"next": {"href": ""}}


@pytest.mark.components("gateway", "profile")
def test_event_order_defaults_to_plus_timestamp_and_accepts_every_documented_spelling(system: System) -> None:
    """`orderby`: "(+/-)timestamp with the default being +timestamp" (appendix, query
    parameters; also spelt `orderBy`); a `+` must be URL-encoded (`%2Btimestamp`), an
    unencoded one arrives as a space and is read the same.
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/entities)"""
    for minute in range(3):
        stream(system, "demo-events", web_event(f"e{minute}", f"2018-07-10T22:0{minute}:00Z", "page"))
    system.wait_for(lambda: system.events("ECID", EVENTS_ECID).json().get("_page", {}).get("count") == 3, 10)
    base = ("schema.name=_xdm.context.experienceevent&relatedSchema.name=_xdm.context.profile"
            f"&relatedEntityId={EVENTS_ECID}&relatedEntityIdNS=ECID")

    def order(suffix: str) -> tuple[str, list[str]]:
        response = system.http.get(f"{ENTITIES}?{base}{suffix}", headers=system.auth)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["_page"]["orderby"], [c["entityId"] for c in body["children"]]

    oldest_first = ("timestamp", ["e0", "e1", "e2"])
    newest_first = ("-timestamp", ["e2", "e1", "e0"])
    assert order("") == oldest_first
    assert order("&orderby=timestamp") == oldest_first
    assert order("&orderby=%2Btimestamp") == oldest_first
    assert order("&orderby=+timestamp") == oldest_first
    assert order("&orderby=-timestamp") == newest_first
    assert order("&orderBy=-timestamp") == newest_first
    wrong = system.http.get(f"{ENTITIES}?{base}&orderby=name", headers=system.auth)
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_parameter"


@pytest.mark.components("gateway", "profile")
def test_time_series_events_of_several_profiles_with_payload_next_links(system: System) -> None:
    """POST /access/entities with `schema: _xdm.context.experienceevent`, `relatedSchema`,
    `identities: [{relatedEntityId}]` (profile ids, AEP's XIDs), `fields`, `timeFilter`,
    `limit` — "Access time series events for multiple profiles by identities": a page per
    identity keyed by it; a page with more has `_links.next` {"href": "/entities", "payload"},
    and POSTing that payload gives the next page; the last page's href is "".
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/entities)"""
    for minute in range(3):
        stream(system, "demo-events", web_event(f"m{minute}", f"2018-09-18T13:0{minute}:00Z", "page"))
    person(system, "janedoe@example.com", JANE_ECID, "Jane")
    stream(system, "demo-events", {**web_event("jane-1", "2018-09-18T13:04:00Z", "page"),
                                   "identityMap": {"ECID": [{"id": JANE_ECID}]}})
    system.wait_for(lambda: system.events("ECID", EVENTS_ECID).json().get("_page", {}).get("count") == 3, 10)
    system.wait_for(lambda: system.events("ECID", JANE_ECID).json().get("_page", {}).get("count") == 1, 10)
    many = next(iter(system.profile("ECID", EVENTS_ECID).json()))
    jane = next(iter(system.profile("ECID", JANE_ECID).json()))

    response = system.http.post(ENTITIES, headers=system.auth, json={
        "schema": {"name": "_xdm.context.experienceevent"},
        "relatedSchema": {"name": "_xdm.context.profile"},
        "identities": [{"relatedEntityId": many}, {"relatedEntityId": jane}],
        "fields": ["endUserIDs", "channel"],
        "timeFilter": {"startTime": 1537275600000, "endTime": 1537276000000},
        "limit": 2,
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {many, jane}
    first = body[many]
    assert first["_page"]["orderby"] == "timestamp" and first["_page"]["count"] == 2
    assert [c["entityId"] for c in first["children"]] == ["m0", "m1"]
    assert all(set(c["entity"]) == {"endUserIDs", "channel"} for c in first["children"])
    link = first["_links"]["next"]
    assert link["href"] == "/entities"
    assert link["payload"]["identities"] == [{"relatedEntityId": many, "start": first["_page"]["next"]}]
    assert body[jane]["_links"] == {"next": {"href": ""}} and body[jane]["_page"]["next"] == ""

    rest = system.http.post(ACCESS + link["href"], headers=system.auth, json=link["payload"]).json()
    assert [c["entityId"] for c in rest[many]["children"]] == ["m2"]
    assert rest[many]["_links"] == {"next": {"href": ""}}
