"""Edge Network protocol through the real gateway, NATS and profile worker (no browser)."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

from gateway import device_id
from tests.harness import System

ORIGIN = "https://shop.example"
IDENTITY = "kndctr_DEMO_AdobeOrg_identity"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"


def interact(system: System, body: dict[str, Any], path: str = "/ee/v1/interact", **headers: str):  # type: ignore[no-untyped-def]
    return system.http.post(
        path,
        params={"configId": "demo", "requestId": str(uuid.uuid4())},
        content=json.dumps(body).encode(),
        headers={"content-type": "text/plain;charset=UTF-8", "origin": ORIGIN, "user-agent": CHROME, **headers},
    )


def page_view(name: str = "home", **xdm: Any) -> dict[str, Any]:
    return {"xdm": {"eventType": "web.webpagedetails.pageViews",
                    "web": {"webPageDetails": {"URL": "https://shop.example/", "name": name}}, **xdm}}


def handles(response: Any, kind: str) -> list[dict[str, Any]]:
    return [p for h in response.json()["handle"] if h["type"] == kind for p in h["payload"]]


def ecid_of(response: Any) -> str:
    (identity,) = handles(response, "identity:result")
    assert identity["namespace"] == {"code": "ECID"}
    return str(identity["id"])


def test_first_visit_mints_an_ecid_and_the_event_lands_in_its_profile(system: System) -> None:
    response = interact(system, {"events": [page_view()], "query": {"identity": {"fetch": ["ECID"]}},
                                 "meta": {"state": {"domain": "", "cookiesEnabled": True}}})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    ecid = ecid_of(response)
    assert device_id.is_ecid(ecid)
    (stored,) = [s for s in handles(response, "state:store") if s["key"] == IDENTITY]
    assert stored["maxAge"] == 34_128_000

    timeline = system.wait_for(lambda: system.events("ECID", ecid).status_code == 200 and system.events("ECID", ecid), 5)
    (child,) = timeline.json()["children"]
    xdm = child["entity"]
    assert xdm["_id"] and xdm["timestamp"]
    assert xdm["identityMap"]["ECID"][0]["id"] == ecid
    assert xdm["environment"]["browserDetails"]["name"] == "Chrome"
    assert xdm["environment"]["ipV4"] == "127.0.0.1"
    assert xdm["device"]["type"] == "desktop"

    # The browser presents the entry back and keeps its id; a forged one gets a fresh id.
    again = interact(system, {"events": [page_view("two")],
                              "meta": {"state": {"entries": [{"key": IDENTITY, "value": stored["value"]}]}}})
    assert ecid_of(again) == ecid
    forged_value = stored["value"][:-4] + ("AAAA" if not stored["value"].endswith("AAAA") else "BBBB")
    forged = interact(system, {"events": [page_view()], "meta": {"state": {"entries": [{"key": IDENTITY, "value": forged_value}]}}})
    assert forged.status_code == 200 and ecid_of(forged) != ecid
    garbled = interact(system, {"events": [page_view()]}, cookie=f"{IDENTITY}=%%%not-base64")
    assert garbled.status_code == 200 and device_id.is_ecid(ecid_of(garbled))


def test_identify_joins_ecid_and_email_in_one_profile(system: System) -> None:
    first = interact(system, {"events": [page_view()]})
    ecid = ecid_of(first)
    value = handles(first, "state:store")[0]["value"]
    login = page_view("account", identityMap={"Email": [{"id": "Jane@Shop.Example", "authenticatedState": "authenticated", "primary": True}]})
    assert interact(system, {"events": [login]}, cookie=f"{IDENTITY}={value}").status_code == 200

    def joined() -> bool:
        response = system.profile("Email", "jane@shop.example")
        return response.status_code == 200 and f"ECID:{ecid}" in next(iter(response.json().values()))["identityGraph"]

    assert system.wait_for(joined, 5, "ECID and email joined")


def test_collect_answers_204_and_v2_and_location_hint_paths_work(system: System) -> None:
    beacon = interact(system, {"events": [page_view("unload")]}, path="/ee/v1/collect")
    assert beacon.status_code == 204 and beacon.content == b""
    assert interact(system, {"events": [page_view()]}, path="/ee/or2/v1/interact").status_code == 200
    v2 = interact(system, {"event": page_view("server")}, path="/ee/v2/interact")
    assert v2.status_code == 200 and ecid_of(v2)
    # A server request's events route by their own identities: one without any is refused.
    fpid = {"identityMap": {"FPID": [{"id": str(uuid.uuid4()), "primary": "true"}]}}
    assert interact(system, {"event": page_view(**fpid)}, path="/ee/v2/collect").status_code == 202
    assert system.http.post("/ee/v2/collect?configId=demo&silent=true", json={"event": page_view(**fpid)}).status_code == 204
    nameless = interact(system, {"event": page_view()}, path="/ee/v2/collect")
    assert nameless.status_code == 400 and nameless.json()["errors"][0]["code"] == "missing_identity"
    assert interact(system, {}, path="/ee/v1/nope").status_code == 404


def test_identity_acquire_and_set_consent(system: System) -> None:
    acquired = interact(system, {"query": {"identity": {"fetch": ["ECID"]}}}, path="/ee/v1/identity/acquire")
    assert acquired.status_code == 200 and device_id.is_ecid(ecid_of(acquired))
    value = handles(acquired, "state:store")[0]["value"]
    consent = {"consent": [{"standard": "Adobe", "version": "2.0", "value": {"collect": {"val": "n"}}}]}
    out = interact(system, consent, path="/ee/v1/privacy/set-consent", cookie=f"{IDENTITY}={value}")
    assert out.status_code == 200
    assert {"key": "kndctr_DEMO_AdobeOrg_consent", "value": "general=out", "maxAge": 15_552_000,
            "attrs": {"SameSite": "None"}} in handles(out, "state:store")
    # With consent out, the edge drops events and says so.
    dropped = interact(system, {"events": [page_view()]},
                       cookie=f"{IDENTITY}={value}; kndctr_DEMO_AdobeOrg_consent=general=out")
    assert dropped.status_code == 200 and dropped.json()["warnings"][0]["code"] == "forbidden"


def test_cors_preflight_and_refused_origins(system: System) -> None:
    preflight = system.http.options("/ee/v1/interact?configId=demo", headers={
        "origin": "http://localhost:5173", "access-control-request-method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    refused = system.http.options("/ee/v1/interact?configId=demo", headers={"origin": "https://evil.example"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    post = interact(system, {"events": [page_view()]}, origin="https://evil.example")
    assert post.status_code == 403 and "access-control-allow-origin" not in post.headers
    assert post.json()["errors"][0]["code"] == "origin_not_allowed"


def test_gzip_bodies_and_edge_errors(system: System) -> None:
    body = gzip.compress(json.dumps({"events": [page_view()]}).encode())
    zipped = system.http.post("/ee/v1/interact?configId=demo", content=body,
                              headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert zipped.status_code == 200, zipped.text
    bomb = gzip.compress(b" " * (50 * 1024 * 1024))
    refused = system.http.post("/ee/v1/interact?configId=demo", content=bomb,
                               headers={"content-type": "text/plain", "content-encoding": "gzip"})
    assert refused.status_code == 413
    for params, content, code in [
        ({"configId": "demo"}, b"{nope", "malformed_json"),
        ({"configId": "nope"}, b"{}", "unknown_datastream"),
        ({}, b"{}", "invalid_parameter"),
        ({"configId": "demo"}, b'{"events": [{"xdm": {"timestamp": "soon"}}]}', "invalid_timestamp"),
    ]:
        response = system.http.post("/ee/v1/interact", params=params, content=content,
                                    headers={"content-type": "text/plain"})
        assert response.status_code == 400, (code, response.text)
        error = response.json()
        assert error["handle"] == [] and error["requestId"] and error["errors"][0]["code"] == code
    assert interact(system, {"events": [page_view()]}).status_code == 200


def test_a_mobile_app_sends_its_own_device_id(system: System) -> None:
    """The README's curl example for apps: the app holds its ECID and sends it in identityMap."""
    app_ecid = "12345678901234567890123456789012345678"
    event = {"xdm": {"eventType": "application.launch", "timestamp": "2026-11-23T10:00:00Z",
                     "identityMap": {"ECID": [{"id": app_ecid, "primary": True}]},
                     "environment": {"type": "application"}}}
    response = system.http.post("/ee/v1/interact?configId=demo", json={"events": [event]},
                                headers={"user-agent": "ShopApp/3.1 (iPhone; iOS 17.4)"})
    assert response.status_code == 200 and ecid_of(response) == app_ecid
    system.wait_for(lambda: system.events("ECID", app_ecid).status_code == 200, 5, "app event in profile")


def test_the_same_request_retried_is_stored_once(system: System) -> None:
    ecid_value = device_id.encode(device_id.mint(1), b"x")  # not ours: a fresh id is minted
    body = {"events": [page_view("retried", identityMap={"Email": [{"id": "retry@shop.example", "primary": True}]})]}
    params = {"configId": "demo", "requestId": "fixed-request-id"}
    for _ in range(2):
        response = system.http.post("/ee/v1/interact", params=params, json=body, headers={"cookie": f"{IDENTITY}={ecid_value}"})
        assert response.status_code == 200
    assert system.post_event(email="retry@shop.example", event_id="marker").status_code == 200

    def names() -> list[str]:
        response = system.events("Email", "retry@shop.example")
        ids = [c["entityId"] for c in response.json()["children"]] if response.status_code == 200 else []
        return ids if "marker" in ids else []

    assert len(system.wait_for(names, 5)) == 2


def test_a_first_party_edge_sets_a_long_lived_http_only_cookie(system: System) -> None:
    body = {"events": [page_view()], "meta": {"state": {"domain": "shop.example", "cookiesEnabled": True}}}
    first_party = interact(system, body, host="edge.shop.example")
    cookie = first_party.headers["set-cookie"]
    assert cookie.startswith("inlet_device=")
    for attribute in ("Domain=shop.example", "Path=/", "Max-Age=34128000", "HttpOnly", "Secure", "SameSite=Lax"):
        assert attribute in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    again = interact(system, {"events": [page_view()]}, cookie=f"inlet_device={value}")
    assert ecid_of(again) == ecid_of(first_party)  # the server cookie alone keeps the id
    third_party = interact(system, body, host="collector.elsewhere.example")
    assert "set-cookie" not in third_party.headers


def test_too_many_events_in_one_request_are_refused(system: System) -> None:
    response = interact(system, {"events": [page_view() for _ in range(101)]})
    assert response.status_code == 413 and response.json()["errors"][0]["code"] == "too_many_messages"
