"""`identityGraph: none` through the real gateway, NATS and profile worker: a person and a
device stitched by an event read as one profile under the default merge policy, and as two
under a policy that does not stitch (`mergePolicyId`).

Source of the policy field and query parameter: Adobe Experience League, "Merge policies
endpoint" (https://experienceleague.adobe.com/docs/experience-platform/profile/api/merge-policies.html,
`identityGraph.type`: `pdg` or `none`) and "Entities endpoint"
(https://experienceleague.adobe.com/docs/experience-platform/profile/api/entities.html,
`mergePolicyId`).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import System, event, message

UNSTITCHED = """
[[merge_policies]]
id = "unstitched"
name = "Each identity alone"
identity_graph = "none"
"""


def entity(system: System, ns: str, value: str, **params: str) -> dict[str, Any]:
    response = system.profile(ns, value, **params)
    if response.status_code != 200:
        return {}
    (found,) = response.json().values()
    return dict(found["entity"])


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(UNSTITCHED)
def test_a_none_policy_reads_each_identity_alone(system: System) -> None:
    email, ecid = "unstitched@shop.example", "8" * 38
    device = {"ECID": [{"id": ecid, "primary": True}]}
    person = {"Email": [{"id": email, "primary": True}]}
    for body in (message("demo-profiles", {"identityMap": device, "loyalty": {"tier": "gold"}}),
                 message("demo-profiles", {"identityMap": person, "person": {"name": {"firstName": "Ann"}}}),
                 message("demo-events", event(email=email, ecid=ecid, event_id="stitches"))):
        assert system.http.post("/collection/demo", json=body).status_code == 200

    def stitched_profile() -> dict[str, Any]:
        found = entity(system, "Email", email)
        return found if "loyalty" in found else {}

    stitched = system.wait_for(stitched_profile, 10, "the device's attributes in the person's profile")
    assert stitched["person"] == {"name": {"firstName": "Ann"}} and stitched["loyalty"] == {"tier": "gold"}

    alone = entity(system, "Email", email, mergePolicyId="unstitched")
    assert alone["person"] == {"name": {"firstName": "Ann"}} and "loyalty" not in alone
    device_alone = entity(system, "ECID", ecid, mergePolicyId="unstitched")
    assert device_alone["loyalty"] == {"tier": "gold"} and "person" not in device_alone
