"""Real-Time Customer Profile APIs through the real gateway, NATS and profile worker."""

from __future__ import annotations

from typing import Any

from tests.harness import System, event, message

POLICIES = "/data/core/ups/config/mergePolicies"


def entity_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    (entity,) = response.json().values()
    return dict(entity)


def test_merge_policy_crud_and_merge_on_read(system: System) -> None:
    auth = system.auth
    listed = system.http.get(POLICIES, headers=auth).json()
    assert {p["id"] for p in listed["children"]} >= {"default", "crm-first"}
    assert system.http.get(POLICIES).status_code == 401

    email = "policy@shop.example"
    ids = {"Email": [{"id": email, "primary": True}]}
    system.http.post("/collection/demo", json=message("demo-profiles", {"identityMap": ids, "loyalty": {"tier": "gold"}}))
    web = event(email=email, event_id="later")
    assert system.http.post("/collection/demo", json=message("demo-events", web)).status_code == 200
    system.wait_for(lambda: system.profile("Email", email).status_code == 200, 5)

    created = system.http.post(POLICIES, headers=auth, json={
        "name": "CRM wins", "identityGraph": {"type": "none"},
        "attributeMerge": {"type": "dataSetPrecedence", "order": ["demo-profiles"]},
        "schema": {"name": "_xdm.context.profile"}})
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["id"] and policy["imsOrgId"] == "DEMO@AdobeOrg" and policy["default"] is False
    assert system.http.get(f"{POLICIES}/{policy['id']}", headers=auth).json()["name"] == "CRM wins"

    def read_with(policy_id: str) -> dict[str, Any]:
        response = system.profile("Email", email, mergePolicyId=policy_id)
        return entity_of(response) if response.status_code == 200 else {}

    assert system.wait_for(lambda: read_with(policy["id"]).get("mergePolicy") == {"id": policy["id"]}, 5)
    assert read_with(policy["id"])["entity"]["loyalty"] == {"tier": "gold"}

    patched = system.http.patch(f"{POLICIES}/{policy['id']}", headers=auth,
                                json=[{"op": "replace", "path": "/default", "value": True}])
    assert patched.status_code == 200 and patched.json()["default"] is True and patched.json()["version"] == 2
    old_default = system.http.get(f"{POLICIES}/default", headers=auth).json()
    assert old_default["default"] is False
    assert system.wait_for(lambda: entity_of(system.profile("Email", email))["mergePolicy"] == {"id": policy["id"]}, 5)

    bad = system.http.post(POLICIES, headers=auth, json={"attributeMerge": {"type": "dataSetPrecedence", "order": ["nope"]}})
    assert bad.status_code == 400 and bad.json()["code"] == "unknown_dataset"
    wrong_type = system.http.post(POLICIES, headers=auth, json={"attributeMerge": {"type": "sometimes"}})
    assert wrong_type.status_code == 400 and wrong_type.json()["code"] == "invalid_message"
    assert system.http.post(POLICIES, headers=auth, content=b"{").json()["code"] == "malformed_json"
    bad_id = system.http.post(POLICIES, headers=auth, json={"id": "two words", "name": "x"})
    assert bad_id.status_code == 400 and bad_id.json()["code"] == "invalid_message"
    named = system.http.post(POLICIES, headers=auth, json={"id": "named-in-body", "name": "x"})
    assert named.status_code == 201 and named.json()["id"] == "named-in-body"  # inlet's extension
    deleted = system.http.delete(f"{POLICIES}/{policy['id']}", headers=auth)
    assert deleted.status_code == 200 and deleted.content == b""  # AEP: 200, empty body
    assert system.http.get(f"{POLICIES}/{policy['id']}", headers=auth).status_code == 404
    assert system.wait_for(lambda: system.profile("Email", email, mergePolicyId=policy["id"]).status_code == 400, 5)


def test_unlink_undoes_a_merge_through_the_api(system: System) -> None:
    ecid = "4" * 38
    for xdm in (event(email=None, ecid=ecid, event_id="anon"), event(email="wrong@shop.example", event_id="login"),
                event(email="wrong@shop.example", ecid=ecid, event_id="joined")):
        assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200

    def graph_size(ns: str, value: str) -> int:
        response = system.profile(ns, value)
        return len(entity_of(response)["identityGraph"]) if response.status_code == 200 else 0

    system.wait_for(lambda: graph_size("ECID", ecid) == 2, 5, "merged")
    graph = system.http.get("/data/core/ups/access/graph", params={"entityId": ecid, "entityIdNS": "ECID"},
                            headers=system.auth).json()
    (link,) = graph["links"]
    assert {link["a"], link["b"]} == {f"ECID:{ecid}", "Email:wrong@shop.example"}
    assert link["messageId"].endswith("/joined") and link["timeMs"] > 0

    params = {"entityId": ecid, "entityIdNS": "ECID"}
    assert system.http.post("/data/core/ups/access/unlink", params=params).status_code == 401
    assert system.http.post("/data/core/ups/access/unlink", params=params, headers=system.auth).status_code == 202
    system.wait_for(lambda: graph_size("ECID", ecid) == 1, 5, "split")
    assert graph_size("Email", "wrong@shop.example") == 1
    device_events = [c["entityId"] for c in system.events("ECID", ecid).json()["children"]]
    assert device_events == ["anon"]


def test_timeline_pages_with_next_links_and_time_bounds(system: System) -> None:
    email = "pages@shop.example"
    for minute in range(7):
        xdm = event(email=email, event_id=f"p{minute}", timestamp=f"2026-11-23T10:0{minute}:00Z")
        assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    system.wait_for(lambda: system.events("Email", email).json().get("_page", {}).get("count") == 7, 5)

    page = system.events("Email", email, limit="3", orderby="-timestamp").json()
    seen = [c["entityId"] for c in page["children"]]
    while page["_links"]["next"]["href"]:  # relative to /data/core/ups/access; "" on the last page
        page = system.http.get("/data/core/ups/access" + page["_links"]["next"]["href"], headers=system.auth).json()
        seen += [c["entityId"] for c in page["children"]]
    assert seen == [f"p{m}" for m in range(6, -1, -1)]
    oldest_first = [c["entityId"] for c in system.events("Email", email).json()["children"]]
    assert oldest_first == [f"p{m}" for m in range(7)]  # AEP's default order is +timestamp

    start = "1795428060000"  # 10:01
    end = "1795428240000"  # 10:04 (exclusive)
    bounded = system.events("Email", email, startTime=start, endTime=end, orderby="timestamp").json()
    assert [c["entityId"] for c in bounded["children"]] == ["p1", "p2", "p3"]
    assert system.events("Email", email, limit="0").status_code == 400
    assert system.events("Email", email, startTime="soon").status_code == 400


def test_sandboxes_are_isolated(system: System) -> None:
    assert system.post_event(email="tenant@shop.example").status_code == 200
    system.wait_for(lambda: system.profile("Email", "tenant@shop.example").status_code == 200, 5)
    other = system.http.get("/data/core/ups/access/entities", params={
        "schema.name": "_xdm.context.profile", "entityId": "tenant@shop.example", "entityIdNS": "Email"},
        headers={**system.auth, "x-sandbox-name": "dev"})
    assert other.status_code == 404
    profile_id = next(iter(system.profile("Email", "tenant@shop.example").json()))
    by_id = system.http.get("/data/core/ups/access/entities", params={
        "schema.name": "_xdm.context.profile", "entityId": profile_id}, headers={**system.auth, "x-sandbox-name": "dev"})
    assert by_id.status_code == 404
    same = system.http.get("/data/core/ups/access/entities", params={
        "schema.name": "_xdm.context.profile", "entityId": profile_id}, headers=system.auth)
    assert same.status_code == 200


def test_tokens_are_limited_by_scope_and_sandbox(system: System) -> None:
    email = "scoped@shop.example"
    assert system.post_event(email=email).status_code == 200
    system.wait_for(lambda: system.profile("Email", email).status_code == 200, 5)
    params = {"schema.name": "_xdm.context.profile", "entityId": email, "entityIdNS": "Email"}
    analyst = {"Authorization": "Bearer analyst-token-0123456789"}
    dev_team = {"Authorization": "Bearer dev-team-token-0123456789"}

    assert system.http.get("/data/core/ups/access/entities", params=params, headers=analyst).status_code == 200
    refused = system.http.delete("/data/core/ups/access/entities", params=params, headers=analyst)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert system.http.post(POLICIES, headers=analyst, json={"name": "x"}).status_code == 403
    assert system.http.post("/data/core/ups/access/unlink", params=params, headers=analyst).status_code == 403

    # A token for another sandbox can neither read nor delete this one's profiles.
    assert system.http.get("/data/core/ups/access/entities", params=params, headers=dev_team).status_code == 403
    assert system.http.delete("/data/core/ups/access/entities", params=params, headers=dev_team).status_code == 403
    in_dev = system.http.get("/data/core/ups/access/entities", params=params, headers={**dev_team, "x-sandbox-name": "dev"})
    assert in_dev.status_code == 404  # allowed there, and there is no such profile in dev
    assert system.profile("Email", email).status_code == 200
