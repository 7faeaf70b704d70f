"""The merge policies endpoint as Adobe documents it, through the real gateway, NATS and
profile worker: the page's example requests (dataset ids adapted to this system's) and the
documented answers, field by field; and the documented PATCH forms changing what the next
profile read returns.

Source: https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/merge-policies
(AdobeDocs/experience-platform.en, help/profile/api/merge-policies.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import ORG, System, message

POLICIES = "/data/core/ups/config/mergePolicies"
CONFIG = "/data/core/ups/config"  # the list's `_links.next.href` is "@/mergePolicies?…", relative to it
# The page's create example, with its dataset ids replaced by this system's.
CREATE = {
    "name": "Loyalty members ordered by ID",
    "identityGraph": {"type": "none"},
    "attributeMerge": {"type": "dataSetPrecedence", "order": ["demo-profiles", "demo-accounts"]},
    "schema": {"name": "_xdm.context.profile"},
    "isActiveOnEdge": True,
    "default": True,
}
POLICY_FIELDS = {"id", "name", "imsOrgId", "sandbox", "schema", "version", "identityGraph", "attributeMerge",
                 "isActiveOnEdge", "default", "updateEpoch"}


def check_policy(policy: dict[str, Any]) -> None:
    """The documented merge policy object, with AEP's sandbox object."""
    assert set(policy) == POLICY_FIELDS, policy
    assert policy["imsOrgId"] == ORG and isinstance(policy["updateEpoch"], int)
    sandbox = policy["sandbox"]
    assert set(sandbox) == {"sandboxId", "sandboxName", "type", "default"}
    assert sandbox["sandboxName"] == "prod" and sandbox["type"] == "production" and sandbox["default"] is True
    assert sandbox["sandboxId"]


def create(system: System, **changes: Any) -> dict[str, Any]:
    response = system.http.post(POLICIES, headers=system.auth, json={**CREATE, **changes})
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.components("gateway", "profile")
def test_create_get_list_and_bulk_get_answer_as_documented(system: System) -> None:
    """"Create a merge policy", "Access a single merge policy by ID", "Retrieve multiple merge
    policies by their IDs" (POST …/bulk-get → 207 `{"results": {id: policy}}`) and "List
    multiple merge policies by criteria" (`_page` {totalCount, pageSize}, `children`,
    `_links.next.href`: "@/mergePolicies?start=…", "" when there is no next page).
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/merge-policies)"""
    created = create(system)
    check_policy(created)
    assert created["name"] == CREATE["name"] and created["version"] == 1
    assert created["identityGraph"] == {"type": "none"} and created["attributeMerge"] == CREATE["attributeMerge"]
    assert created["schema"] == {"name": "_xdm.context.profile"}
    assert created["isActiveOnEdge"] is True and created["default"] is True

    fetched = system.http.get(f"{POLICIES}/{created['id']}", headers=system.auth)
    assert fetched.status_code == 200 and fetched.json() == created

    bulk = system.http.post(f"{POLICIES}/bulk-get", headers=system.auth,
                            json={"ids": [{"id": created["id"]}, {"id": "crm-first"}]})
    assert bulk.status_code == 207, bulk.text
    results = bulk.json()["results"]
    assert set(results) == {created["id"], "crm-first"}
    assert results[created["id"]] == created
    check_policy(results["crm-first"])
    assert results["crm-first"]["default"] is False  # the new default unset the old one

    listed = system.http.get(POLICIES, headers=system.auth, params={"schema.name": "_xdm.context.profile"})
    assert listed.status_code == 200
    body = listed.json()
    assert body["_page"] == {"totalCount": 3, "pageSize": 3}
    assert body["_links"] == {"next": {"href": ""}}
    for policy in body["children"]:
        check_policy(policy)

    seen: list[str] = []
    page = system.http.get(POLICIES, headers=system.auth, params={"limit": "2"}).json()
    while True:
        assert page["_page"]["totalCount"] == 3 and page["_page"]["pageSize"] == len(page["children"])
        seen += [p["name"] for p in page["children"]]
        href = page["_links"]["next"]["href"]
        if not href:
            break
        assert href.startswith("@/mergePolicies?start=")
        page = system.http.get(CONFIG + href[1:], headers=system.auth).json()
    assert seen == sorted(seen) and len(seen) == 3  # ordered by name, as the page says
    only_default = system.http.get(POLICIES, headers=system.auth, params={"default": "true"}).json()
    assert [p["id"] for p in only_default["children"]] == [created["id"]]


@pytest.mark.components("gateway", "profile")
def test_documented_patch_forms_change_the_next_profile_read(system: System) -> None:
    """"Edit individual merge policy fields": the page's single-object PATCH
    (`{"op": "add", "path": "/default", "value": "true"}`) and a JSON Patch array on a
    documented dotted path (`/identityGraph.type`) each change the policy, bump `version`, and
    change what the next profile read under that policy returns. A PATCH that changes nothing
    keeps the version; one whose path names nothing is refused.
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/merge-policies)"""
    email, crm = "ann@example.com", "ann-crm-1"
    both = {"Email": [{"id": email}], "CRMID": [{"id": crm, "primary": True, "authenticatedState": "authenticated"}]}
    for xdm in ({"identityMap": {"Email": [{"id": email, "primary": True}]}, "loyalty": {"tier": "gold"}},
                {"identityMap": both, "person": {"name": {"firstName": "Ann"}}}):
        assert system.http.post("/collection/demo", json=message("demo-profiles", xdm)).status_code == 200
    system.wait_for(lambda: system.profile("Email", email).status_code == 200
                    and len(next(iter(system.profile("Email", email).json().values()))["identityGraph"]) == 2, 10)
    policy = create(system, identityGraph={"type": "pdg"}, default=False, isActiveOnEdge=False)
    url = f"{POLICIES}/{policy['id']}"

    def entity() -> dict[str, Any]:
        response = system.profile("Email", email, mergePolicyId=policy["id"])
        assert response.status_code == 200, response.text
        return dict(next(iter(response.json().values()))["entity"])

    assert system.wait_for(lambda: "person" in entity(), 10, "the policy reached the worker")
    assert entity()["loyalty"] == {"tier": "gold"}

    single = system.http.patch(url, headers=system.auth, json={"op": "add", "path": "/default", "value": "true"})
    assert single.status_code == 200, single.text
    assert single.json()["default"] is True and single.json()["version"] == 2
    check_policy(single.json())
    assert system.wait_for(lambda: next(iter(system.profile("Email", email).json().values()))["mergePolicy"]
                           == {"id": policy["id"]}, 10, "the new default used without mergePolicyId")

    dotted = system.http.patch(url, headers=system.auth,
                               json=[{"op": "replace", "path": "/identityGraph.type", "value": "none"}])
    assert dotted.status_code == 200, dotted.text
    assert dotted.json()["identityGraph"] == {"type": "none"} and dotted.json()["version"] == 3
    assert system.http.get(url, headers=system.auth).json()["identityGraph"] == {"type": "none"}
    # No stitching: the Email identity's own data only, not the name the CRMID brought.
    system.wait_for(lambda: "person" not in entity(), 10, "identityGraph none in the next read")
    assert entity()["loyalty"] == {"tier": "gold"}

    same = system.http.patch(url, headers=system.auth, json={"op": "replace", "path": "/identityGraph.type",
                                                              "value": "none"})
    assert same.status_code == 200 and same.json()["version"] == 3  # nothing changed, no new version
    for nothing in ({"op": "add", "path": "/identityGraph.typo", "value": "none"},
                    [{"op": "replace", "path": "/nosuchfield", "value": 1}],
                    {"identityGraph": {"type": "pdg"}, "misspelt": True}):
        refused = system.http.patch(url, headers=system.auth, json=nothing)
        assert refused.status_code == 400, (nothing, refused.text)
        assert refused.json()["code"] == "invalid_message"
    assert system.http.get(url, headers=system.auth).json()["version"] == 3


@pytest.mark.components("gateway", "profile")
def test_put_overwrites_and_delete_answers_200(system: System) -> None:
    """"Overwrite a merge policy" (PUT with the whole documented object, read-only fields
    included) and "Delete a merge policy": 200 with an empty body, then 404; a policy active
    on edge cannot be deleted until PATCHed.
    (https://experienceleague.adobe.com/en/docs/experience-platform/profile/api/merge-policies)"""
    policy = create(system)
    url = f"{POLICIES}/{policy['id']}"
    overwrite = {"name": "Loyalty members ordered by ID", "imsOrgId": ORG, "schema": {"name": "_xdm.context.profile"},
                 "version": 1, "identityGraph": {"type": "pdg"},
                 "attributeMerge": {"type": "dataSetPrecedence", "order": ["demo-accounts", "demo-profiles"]},
                 "isActiveOnEdge": True, "default": True, "updateEpoch": 1551898378}
    put = system.http.put(url, headers=system.auth, json=overwrite)
    assert put.status_code == 200, put.text
    check_policy(put.json())
    assert put.json()["identityGraph"] == {"type": "pdg"} and put.json()["version"] == 2
    assert put.json()["attributeMerge"]["order"] == ["demo-accounts", "demo-profiles"]
    assert system.http.put(url, headers=system.auth, json=overwrite).json()["version"] == 2  # the same again

    on_edge = system.http.delete(url, headers=system.auth)
    assert on_edge.status_code == 400 and "edge" in on_edge.json()["detail"]
    assert system.http.patch(url, headers=system.auth,
                             json={"op": "replace", "path": "/isActiveOnEdge", "value": "false"}).status_code == 200
    deleted = system.http.delete(url, headers=system.auth)
    assert deleted.status_code == 200 and deleted.content == b""
    assert system.http.get(url, headers=system.auth).status_code == 404
