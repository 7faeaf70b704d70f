"""The Edge Network Server API (`/ee/v2/interact`, `/ee/v2/collect`) as Adobe documents it.

Payloads are the documentation's examples (only the datastream adapted); the answers are
checked the way a server client reads them: the status, then the JSON `handle` list.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.harness import System

COLLECT_DOC = ("https://experienceleague.adobe.com/en/docs/experience-platform/edge-network-server-api/"
               "data-collection/non-interactive-data-collection")
INTERACT_DOC = ("https://experienceleague.adobe.com/en/docs/experience-platform/edge-network-server-api/"
                "data-collection/interactive-data-collection")


def documented_collect(first: str, second: str) -> dict[str, Any]:
    """The non-interactive example: two events of two different people (two FPIDs), `primary`
    sent as the string "true", each with free-form `data` (ids fresh per test)."""
    return {"events": [
        {"xdm": {"identityMap": {"FPID": [{"id": first, "primary": "true"}]},
                 "eventType": "web.webpagedetails.pageViews",
                 "web": {"webPageDetails": {"URL": "https://alloystore.dev/", "name": "home-demo-Home Page"}},
                 "timestamp": "2021-08-09T14:09:20.859Z"},
         "data": {"prop1": "custom value"}},
        {"xdm": {"identityMap": {"FPID": [{"id": second, "primary": "true"}]},
                 "eventType": "web.webinteraction.linkClicks",
                 "web": {"webInteraction": {"linkClicks": {"value": 1}, "name": "My Custom Link",
                                            "URL": "https://myurl.com"}},
                 "timestamp": "2021-08-09T14:09:20.859Z"},
         "data": {"prop1": "custom value"}},
    ]}


def test_collect_of_two_people_stays_two_profiles(system: System) -> None:
    """Source: COLLECT_DOC ("Batched events do not necessarily belong to the same end user").
    `POST /ee/v2/collect?dataStreamId=…` answers 202; each event routes by its own identity, so
    the two FPIDs are two profiles, and no device ECID is added that would merge them."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    response = system.http.post("/ee/v2/collect", params={"dataStreamId": "demo"}, json=documented_collect(first, second))
    assert response.status_code == 202, response.text

    def profile(fpid: str) -> dict[str, Any] | None:
        found = system.profile("FPID", fpid)
        return next(iter(found.json().values())) if found.status_code == 200 else None

    one, two = system.wait_for(lambda: profile(first), 5), system.wait_for(lambda: profile(second), 5)
    assert one["entityId"] != two["entityId"]
    assert one["identityGraph"] == [f"FPID:{first}"] and two["identityGraph"] == [f"FPID:{second}"]
    (child,) = system.wait_for(lambda: system.events("FPID", first).json().get("children"), 5)
    assert child["data"] == {"prop1": "custom value"}
    assert child["entity"]["identityMap"]["FPID"] == [{"id": first, "primary": True}]  # XDM's boolean


def test_interact_answers_handles_and_routes_by_the_documented_identity(system: System) -> None:
    """Source: INTERACT_DOC (`POST /ee/v2/interact?dataStreamId=…`, one `event` with an
    Email_LC_SHA256 primary identity and `data`; "200 OK" with `requestId` and `handle`), and
    https://developer.adobe.com/data-collection-apis/docs/endpoints/interact, which spells the
    parameter `datastreamId`. The event lands under its own identity; no device ECID is minted
    into that person's graph."""
    for param in ("dataStreamId", "datastreamId"):
        hashed = uuid.uuid4().hex * 2
        body = {"event": {"xdm": {"identityMap": {"Email_LC_SHA256": [{"id": hashed, "primary": True}]},
                                  "eventType": "web.webpagedetails.pageViews",
                                  "web": {"webPageDetails": {"URL": "https://alloystore.dev/", "name": "home-demo-Home Page"}},
                                  "timestamp": "2021-08-09T14:09:20.859Z"},
                          "data": {"prop1": "custom value"}}}
        response = system.http.post("/ee/v2/interact", params={param: "demo"}, json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["requestId"] and isinstance(answer["handle"], list)
        assert not [h for h in answer["handle"] if h["type"] == "identity:result"]

        def graph() -> list[str] | None:
            found = system.profile("Email_LC_SHA256", hashed)
            return next(iter(found.json().values()))["identityGraph"] if found.status_code == 200 else None

        assert system.wait_for(graph, 5) == [f"Email_LC_SHA256:{hashed}"]


def test_a_collect_event_without_any_identity_is_refused(system: System) -> None:
    """Source: https://experienceleague.adobe.com/en/docs/experience-platform/collection/
    visitor-identification/visitor-identification-fpid ("Requests that have no identity ... will
    fail"): a server request's event has no device to fall back on."""
    body = documented_collect(str(uuid.uuid4()), str(uuid.uuid4()))
    del body["events"][1]["xdm"]["identityMap"]
    response = system.http.post("/ee/v2/collect", params={"dataStreamId": "demo"}, json=body)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "missing_identity" and "events[1]" in error["detail"]
