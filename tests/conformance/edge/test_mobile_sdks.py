"""Adobe's mobile SDKs (Edge + Edge Identity, Android and iOS) against the real processes.

Request shapes are the ones the SDKs' own functional tests assert they send (only the ECID,
org and datastream adapted); answers are read the way each SDK's EdgeNetworkService reads
them (see `clients.py`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.conformance.edge.clients import (
    ANDROID_AGENT,
    ANDROID_IMPLEMENTATION,
    IOS_IMPLEMENTATION,
    STREAMING,
    StoreResponsePayloads,
    android_records,
    handles,
    ios_records,
    mobile_identity_map,
    new_ecid,
)
from tests.harness import System

IDENTITY = "kndctr_DEMO_AdobeOrg_identity"
CLUSTER = "kndctr_DEMO_AdobeOrg_cluster"
CONSENT = "kndctr_DEMO_AdobeOrg_consent"


def post(system: System, body: dict[str, Any], path: str = "/ee/v1/interact") -> httpx.Response:
    """As `EdgeNetworkService.doRequest`: POST JSON, `configId` and `requestId` in the query, no Origin."""
    return system.http.post(path, params={"configId": "demo", "requestId": str(uuid.uuid4())},
                            content=json.dumps(body).encode(),
                            headers={"content-type": "application/json", "accept": "application/json",
                                     "user-agent": ANDROID_AGENT})


def mobile_event(event_type: str, **xdm: Any) -> dict[str, Any]:
    """One event as RequestBuilder writes it: `_id` (the event's unique id) and `timestamp`."""
    return {"xdm": {"_id": str(uuid.uuid4()), "timestamp": "2026-11-23T10:00:00.000Z", "eventType": event_type, **xdm}}


def test_android_reads_every_handle_of_a_streamed_answer(system: System) -> None:
    """Source: adobe/aepsdk-edge-android code/edge/src/androidTest/java/com/adobe/marketing/mobile/
    EdgeFunctionalTests.java (testSendEvent_withXDMData_sendsCorrectRequestEvent: request-level
    `xdm` with the ECID and implementationDetails, `meta.konductorConfig.streaming`) and
    EdgeNetworkService.java `handleStreamingResponse` (split on lineFeed, cut the separator's length).
    Without the framing Android cuts the first character of the JSON and loses every handle."""
    ecid = new_ecid()
    event = mobile_event("test.type", testString="stringValue", testInt=10, testArray=["elem1", "elem2"],
                         testMap={"key": "value"})
    body = {"events": [event], "meta": STREAMING,
            "xdm": {"identityMap": mobile_identity_map(ecid), "implementationDetails": ANDROID_IMPLEMENTATION}}
    response = post(system, body)
    assert response.status_code == 200, response.text
    assert response.text.startswith("\u0000{") and response.text.endswith("}\n")
    records = android_records(response.text)
    assert [r["requestId"] for r in records] == [response.request.url.params["requestId"]]
    assert handles(records, "identity:result") == [{"id": ecid, "namespace": {"code": "ECID"}}]
    (hint,) = handles(records, "locationHint:result")
    assert hint["scope"] == "EdgeNetwork" and hint["hint"] and hint["ttlSeconds"] > 0
    assert {p["key"] for p in handles(records, "state:store")} == {CLUSTER}  # a claimed ECID: nothing signed

    def landed() -> dict[str, Any] | None:
        timeline = system.events("ECID", ecid)
        return timeline.json()["children"][0]["entity"] if timeline.status_code == 200 else None

    xdm = system.wait_for(landed, 5, "the app's event under its own ECID")
    assert xdm["implementationDetails"] == ANDROID_IMPLEMENTATION  # request-level XDM merged in
    assert xdm["identityMap"]["ECID"][0]["id"] == ecid and xdm["testMap"] == {"key": "value"}


def test_ios_reads_the_same_answer_by_trimming(system: System) -> None:
    """Source: adobe/aepsdk-edge-ios Sources/EdgeNetworkHandlers/EdgeNetworkService.swift
    `handleStreamingResponse` (split on the line-feed character, trim the separator) and
    Tests/FunctionalTests/AEPEdgeFunctionalTests.swift (request-level identityMap and
    implementationDetails, streaming on). The event carries `data` (ExperienceEvent(xdm:data:)),
    which the profile timeline shows beside the XDM."""
    ecid = new_ecid()
    event = {**mobile_event("test.type", test="xdm"), "data": {"testDataString": "stringValue", "testDataArray": ["arrayElem1", 2, True]}}
    body = {"events": [event], "meta": STREAMING,
            "xdm": {"identityMap": mobile_identity_map(ecid), "implementationDetails": IOS_IMPLEMENTATION}}
    response = post(system, body)
    assert response.status_code == 200, response.text
    records = ios_records(response.text)
    assert handles(records, "identity:result") == [{"id": ecid, "namespace": {"code": "ECID"}}]
    assert handles(records, "locationHint:result")[0]["scope"] == "EdgeNetwork"

    def child() -> dict[str, Any] | None:
        timeline = system.events("ECID", ecid)
        return timeline.json()["children"][0] if timeline.status_code == 200 else None

    found = system.wait_for(child, 5, "the app's event in its profile")
    assert found["data"] == {"testDataString": "stringValue", "testDataArray": ["arrayElem1", 2, True]}
    assert "testDataString" not in found["entity"]  # `data` is not XDM


def test_a_simulated_app_keeps_one_device_id_and_its_login_stitches(system: System) -> None:
    """A mobile app end to end, as the SDKs behave:
    - first launch: Edge Identity mints the ECID on the device (aepsdk-edgeidentity-android
      `ECID.java`) and the Edge extension sends it in the request-level identityMap, with no
      stored state (aepsdk-edge-android EdgeFunctionalTests.java, the first request);
    - it keeps the `state:store` payloads and sends them back in `meta.state.entries`
      (StoreResponsePayloadManager.java; testSendEvent_twoConsecutiveCalls_appendsReceivedClientSideStore)
      and, after a `locationHint:result`, calls `/ee/<hint>/v1/interact` (EdgeEndpoint.java);
    - screen views (`MobileCore.trackState` → xdm web.webpagedetails.pageViews / application views);
    - login: `Identity.updateIdentities` adds an authenticated Email to the request-level
      identityMap (aepsdk-edgeidentity-android IdentityMap/IdentityState).
    Then the profile API holds one profile for the ECID and the Email with every event, and
    the ECID answered in `identity:result` never changed."""
    ecid = new_ecid()
    store = StoreResponsePayloads()
    answered: list[str] = []
    sent: list[str] = []
    path = "/ee/v1/interact"

    def send(event: dict[str, Any], **logins: tuple[str, str]) -> None:
        nonlocal path
        body = {"events": [event], "meta": store.meta(),
                "xdm": {"identityMap": mobile_identity_map(ecid, **logins), "implementationDetails": ANDROID_IMPLEMENTATION}}
        response = post(system, body, path)
        assert response.status_code == 200, response.text
        records = android_records(response.text)
        store.save(handles(records, "state:store"))
        answered.extend(p["id"] for p in handles(records, "identity:result"))
        for hint in handles(records, "locationHint:result"):
            if hint["scope"] == "EdgeNetwork":
                path = f"/ee/{hint['hint']}/v1/interact"
        sent.append(event["xdm"]["_id"])

    send(mobile_event("application.launch", application={"isLaunch": True, "name": "Shop"}))
    assert CLUSTER in store.entries and IDENTITY not in store.entries
    for screen in ("home", "catalog", "cart"):
        send(mobile_event("web.webpagedetails.pageViews", web={"webPageDetails": {"name": screen, "pageViews": {"value": 1}}}))
    assert path != "/ee/v1/interact"  # the SDK moved to the hinted path, and it still works
    send(mobile_event("web.webpagedetails.pageViews", web={"webPageDetails": {"name": "account"}}),
         Email=("ada.app@shop.example", "authenticated"))

    assert answered == [ecid] * 5  # the device id never changed

    def one_profile() -> dict[str, Any] | None:
        by_email, by_ecid = system.profile("Email", "ada.app@shop.example"), system.profile("ECID", ecid)
        if by_email.status_code != 200 or by_ecid.status_code != 200 or by_email.json().keys() != by_ecid.json().keys():
            return None
        (entity,) = by_email.json().values()
        return entity if {f"ECID:{ecid}", "Email:ada.app@shop.example"} <= set(entity["identityGraph"]) else None

    entity = system.wait_for(one_profile, 5, "ECID and Email in one profile")
    assert [i for i in entity["identityGraph"] if i.startswith("ECID:")] == [f"ECID:{ecid}"]

    def timeline() -> list[str]:
        response = system.events("Email", "ada.app@shop.example")
        ids = [c["entityId"] for c in response.json()["children"]] if response.status_code == 200 else []
        return ids if len(ids) == len(sent) else []

    assert sorted(system.wait_for(timeline, 5, "every event in the profile")) == sorted(sent)


def test_set_consent_honours_the_apps_ecid(system: System) -> None:
    """Source: adobe/aepsdk-edge-android code/edge/src/androidTest/java/com/adobe/marketing/mobile/
    ConsentStatusChangeFunctionalTests.java (testCollectConsentNo_sendsRequestToEdgeNetwork): the
    consent request carries the ECID in a top-level `identityMap`, `query.consent.operation`
    "update", and streaming meta. The answer names that ECID (no new device is minted), stores
    the consent entry, and events sent back with it are not collected."""
    ecid = new_ecid()
    body = {"query": {"consent": {"operation": "update"}},
            "identityMap": {"ECID": [{"id": ecid, "authenticatedState": "ambiguous", "primary": False}]},
            "consent": [{"standard": "Adobe", "version": "2.0",
                         "value": {"collect": {"val": "n"}, "metadata": {"time": "2026-11-23T10:00:00.000Z"}}}],
            "meta": STREAMING}
    response = post(system, body, "/ee/v1/privacy/set-consent")
    assert response.status_code == 200, response.text
    records = android_records(response.text)
    assert handles(records, "identity:result") == [{"id": ecid, "namespace": {"code": "ECID"}}]
    stored = {p["key"]: p for p in handles(records, "state:store")}
    assert stored[CONSENT]["value"] == "general=out" and IDENTITY not in stored

    store = StoreResponsePayloads()
    store.save(list(stored.values()))
    event = {"events": [mobile_event("test.type")], "meta": store.meta(),
             "xdm": {"identityMap": mobile_identity_map(ecid), "implementationDetails": ANDROID_IMPLEMENTATION}}
    dropped = post(system, event)
    assert dropped.status_code == 200
    (record,) = android_records(dropped.text)
    assert record["warnings"][0]["code"] == "forbidden"


def test_errors_stay_plain_json_for_the_sdks_error_path(system: System) -> None:
    """Source: aepsdk-edge-android EdgeNetworkService.java `doRequest`: a status other than
    200/204/207 and the recoverable ones goes to `handleError`, which reads the body as one
    JSON document (iOS: `composeGenericErrorAsJson` passes a JSON body through unchanged)."""
    response = system.http.post("/ee/v1/interact?configId=nope", json={"events": [], "meta": STREAMING})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_datastream"
