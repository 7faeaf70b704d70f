"""Requests Adobe's Web SDK (alloy 2.33.1) recorded sending from Chromium, replayed byte for
byte but for the org and datastream, and the device-id trust rules around them.

Source: /work/shared/fixtures/alloy-2.33.1/ (index.md describes each capture); alloy's
`dist/alloy.js` (tests/browser/node_modules/@adobe/alloy): it reads `handle[]`, takes the
ECID from `identity:result` payloads `{id, namespace.code}`, writes each `state:store` payload
as a cookie, and reads the `kndctr_<org>_cluster` cookie as the location hint
(`injectGetLocationHint`) that it inserts into the path.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx

from tests.harness import System

FIXTURES = Path("/work/shared/fixtures/alloy-2.33.1/default")
IDENTITY = "kndctr_DEMO_AdobeOrg_identity"
CLUSTER = "kndctr_DEMO_AdobeOrg_cluster"
ORIGIN = "https://shop.example"


def recorded(name: str) -> dict[str, Any]:
    capture = json.loads((FIXTURES / name).read_text())
    body = json.dumps(capture["request"]["body"]).replace("kndctr_TEST_AdobeOrg", "kndctr_DEMO_AdobeOrg")
    return {"body": json.loads(body), "headers": capture["request"]["headers"], "path": capture["request"]["path"]}


def replay(system: System, capture: dict[str, Any], path: str | None = None, **headers: str) -> httpx.Response:
    sent = {k: v for k, v in capture["headers"].items() if k.lower() in ("user-agent", "content-type")}
    return system.http.post(path or capture["path"], params={"configId": "demo", "requestId": "r-" + capture["path"]},
                            content=json.dumps(capture["body"]).encode(), headers={**sent, "origin": ORIGIN, **headers})


def alloy_handles(response: httpx.Response, kind: str) -> list[dict[str, Any]]:
    return [p for h in response.json()["handle"] if h["type"] == kind for p in h["payload"]]


def alloy_ecid_from_cookie(value: str) -> str:
    """alloy decodes the identity cookie itself: URL-safe base64 of a protobuf, field 1."""
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert raw[0] == 0x0A
    return raw[2 : 2 + raw[1]].decode()


def test_recorded_first_page_view_then_purchase_with_data(system: System) -> None:
    """Captures 01-main-a-pageview-interact (no state yet) and 02-main-b-commerce-identity-interact
    (`sendEvent({xdm, data})`, sent to `/ee/<hint>/v1/interact` with the stored entries)."""
    first = replay(system, recorded("01-main-a-pageview-interact.json"), "/ee/v1/interact")
    assert first.status_code == 200, first.text
    (identity,) = alloy_handles(first, "identity:result")
    ecid = identity["id"]
    stored = {p["key"]: p for p in alloy_handles(first, "state:store")}
    assert alloy_ecid_from_cookie(stored[IDENTITY]["value"]) == ecid
    hint = stored[CLUSTER]["value"]
    assert hint and "/" not in hint  # alloy inserts it as one path segment
    assert alloy_handles(first, "locationHint:result") == [{"scope": "EdgeNetwork", "hint": hint, "ttlSeconds": 1800}]

    purchase = recorded("02-main-b-commerce-identity-interact.json")
    purchase["body"]["meta"]["state"]["entries"] = [{"key": k, "value": stored[k]["value"]} for k in (CLUSTER, IDENTITY)]
    second = replay(system, purchase, f"/ee/{hint}/v1/interact")
    assert second.status_code == 200, second.text
    assert [p["id"] for p in alloy_handles(second, "identity:result")] == [ecid]

    def bought() -> dict[str, Any] | None:
        response = system.events("Email", "jane.doe@example.com")
        children = response.json()["children"] if response.status_code == 200 else []
        return next((c for c in children if c["entity"]["eventType"] == "commerce.purchases"), None)

    child = system.wait_for(bought, 5, "the purchase in the Email's profile")
    assert child["data"] == {"custom": {"checkoutStep": "confirmation"}}
    assert child["entity"]["identityMap"]["ECID"][0]["id"] == ecid


def test_a_claimed_ecid_without_our_cookie_is_never_signed(system: System) -> None:
    """The trust rules (docs/edge.md, "Device ids: what is trusted"): a browser that claims an
    ECID in identityMap, with no cookie of ours, has its events keyed on it but gets no
    `kndctr_*_identity` value and no `inlet_device` cookie, even when the edge is first-party;
    a forged value changes nothing; a valid cookie wins over a claim."""
    victim = "31415926535897932384626433832795028841"
    capture = recorded("01-main-a-pageview-interact.json")
    capture["body"]["events"][0]["xdm"]["identityMap"] = {"ECID": [{"id": victim, "authenticatedState": "ambiguous"}]}
    capture["body"]["meta"]["state"]["domain"] = "shop.example"

    claimed = replay(system, capture, "/ee/v1/interact", host="edge.shop.example")
    assert claimed.status_code == 200
    assert [p["id"] for p in alloy_handles(claimed, "identity:result")] == [victim]
    assert IDENTITY not in {p["key"] for p in alloy_handles(claimed, "state:store")}
    assert "set-cookie" not in claimed.headers

    fresh = replay(system, recorded("01-main-a-pageview-interact.json"), "/ee/v1/interact")
    ours = {p["key"]: p["value"] for p in alloy_handles(fresh, "state:store")}[IDENTITY]
    ours_ecid = alloy_ecid_from_cookie(ours)
    forged = ours[:-6] + ("AAAAAA" if not ours.endswith("AAAAAA") else "BBBBBB")
    with_forged = replay(system, capture, "/ee/v1/interact", cookie=f"{IDENTITY}={forged}")
    assert [p["id"] for p in alloy_handles(with_forged, "identity:result")] == [victim]
    assert IDENTITY not in {p["key"] for p in alloy_handles(with_forged, "state:store")}

    with_ours = replay(system, capture, "/ee/v1/interact", cookie=f"{IDENTITY}={ours}")
    assert [p["id"] for p in alloy_handles(with_ours, "identity:result")] == [ours_ecid]
    resigned = {p["key"]: p["value"] for p in alloy_handles(with_ours, "state:store")}[IDENTITY]
    assert alloy_ecid_from_cookie(resigned) == ours_ecid
