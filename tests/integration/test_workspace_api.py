"""The workspace's own endpoints (`/ui/api/…`, gateway/endpoints/workspace.py) through the real
gateway and profile worker: scopes and sandboxes, paging, the preview, and the page's files."""

from __future__ import annotations

from typing import Any

from tests.harness import System, event, message

ANALYST = {"Authorization": "Bearer analyst-token-0123456789"}  # profile:read, prod only
DEV_TEAM = {"Authorization": "Bearer dev-team-token-0123456789"}  # everything, dev only


def test_a_token_sees_only_its_sandboxes_and_needs_write_to_upsert(system: System) -> None:
    assert system.post_event(email="ann@shop.example").status_code == 200
    system.wait_for(lambda: system.profile("Email", "ann@shop.example").status_code == 200, 10, "profile")
    for path in ("/ui/api/profiles", "/ui/api/accounts", "/ui/api/ingestion", "/ui/api/context"):
        assert system.http.get(path, headers=ANALYST).status_code == 200, path
        refused = system.http.get(path, headers={**ANALYST, "x-sandbox-name": "dev"})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", path
    # A dev token lists dev (empty), never prod's profiles.
    dev = system.http.get("/ui/api/profiles", headers={**DEV_TEAM, "x-sandbox-name": "dev"})
    assert dev.status_code == 200 and dev.json()["total"] == 0
    body = {"dataset": "demo-profiles", "entityId": "ann@shop.example", "entityIdNS": "Email",
            "attributes": {"loyalty": {"tier": "gold"}}}
    refused = system.http.post("/ui/api/upsert", headers=ANALYST, json=body)
    assert refused.status_code == 403, refused.text
    accepted = system.http.post("/ui/api/upsert", headers=system.auth, json=body)
    assert accepted.status_code == 200, accepted.text
    system.wait_for(lambda: next(iter(system.profile("Email", "ann@shop.example").json().values()))["entity"]
                    .get("loyalty") == {"tier": "gold"}, 10, "the upsert")
    wrong = system.http.post("/ui/api/upsert", headers=system.auth, json={**body, "dataset": "demo-events"})
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_parameter"


def test_pages_follow_next_and_cover_every_profile_once(system: System) -> None:
    for i in range(7):
        assert system.post_event(email=f"p{i}@shop.example").status_code == 200
    system.wait_for(lambda: system.profile("Email", "p6@shop.example").status_code == 200, 10, "profiles")
    system.wait_for(lambda: _page(system, "")["total"] == 7, 10, "all listed")
    seen: list[str] = []
    cursor = ""
    while True:
        page = _page(system, cursor)
        seen += [p["profileId"] for p in page["profiles"]]
        cursor = page["next"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7
    assert system.http.get("/ui/api/profiles", params={"after": "x"}, headers=system.auth).status_code == 400
    assert system.http.get("/ui/api/profiles", params={"limit": "1000"}, headers=system.auth).status_code == 400


def _page(system: System, after: str) -> dict[str, Any]:
    params = {"limit": "3", **({"after": after} if after else {})}
    response = system.http.get("/ui/api/profiles", params=params, headers=system.auth)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_the_preview_checks_the_definition_as_the_api_does(system: System) -> None:
    xdm = event(email="buyer@shop.example", event_type="commerce.purchases", timestamp="2099-01-01T00:00:00Z",
                commerce={"order": {"priceTotal": 5}})
    assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    system.wait_for(lambda: system.profile("Email", "buyer@shop.example").status_code == 200, 10, "profile")
    pql = {"type": "PQL", "format": "pql/text", "value": "xEvent[eventType = \"commerce.purchases\"].count()"}
    body = {"expression": pql, "duration": {"count": 30, "unit": "DAYS"}, "entityId": "buyer@shop.example",
            "entityIdNS": "Email"}
    ok = system.http.post("/ui/api/computed-preview", headers=system.auth, json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["value"] is None  # a purchase dated 2099 is not in the last 30 days
    bad = system.http.post("/ui/api/computed-preview", headers=system.auth,
                           json={**body, "expression": {**pql, "value": "xEvent.average(x)"}})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_message"
    nobody = system.http.post("/ui/api/computed-preview", headers=system.auth, json={**body, "entityId": "zed@x.example"})
    assert nobody.status_code == 404
    assert system.http.get("/data/core/ca/attributes/preview", headers=system.auth).status_code == 404  # unsaved


def test_the_page_and_its_modules_are_served_with_the_csp_and_nothing_else_is(system: System) -> None:
    for name in ("", "app.js", "api.js", "view-profiles.js", "view-ingestion.js", "app.css"):
        response = system.http.get(f"/ui/{name}")
        assert response.status_code == 200, name
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert system.http.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    for name in ("ui.py", "..%2Fapp.py", "nothing.js"):
        assert system.http.get(f"/ui/{name}").status_code == 404, name
