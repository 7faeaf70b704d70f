"""The profile browser's API (`/ui/api/*`) through a real gateway, lake worker and NATS."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import System, event, message

TWO_SANDBOXES = """
[[connections]]
id = "dev-demo"
sandbox = "dev"

[[datasets]]
id = "dev-events"
sandbox = "dev"
class = "experienceevent"
"""
ANALYST = {"Authorization": "Bearer analyst-token-0123456789"}  # profile:read in prod only
DEV_TEAM = {"Authorization": "Bearer dev-team-token-0123456789"}  # every scope, in dev only


@pytest.mark.components("gateway", "lake")
@pytest.mark.config(TWO_SANDBOXES)
def test_the_overview_shows_a_sandbox_bound_token_only_its_sandbox(system: System) -> None:
    for _ in range(3):
        assert system.post_event(email="prod@shop.example").status_code == 200
    for _ in range(2):
        sent = system.http.post("/collection/dev-demo", json=message("dev-events", event(email="dev@shop.example")))
        assert sent.status_code == 200, sent.text

    def overview(headers: dict[str, str]) -> dict[str, Any]:
        answer = system.http.get("/ui/api/overview", headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    # Every sandbox's token: the sandbox it asks for, plus the deployment-wide figures.
    root = system.wait_for(lambda: (o := overview(system.auth))["lakeAgeSeconds"] and o, 15, what="prod lake file")
    assert (root["sandbox"], root["accepted"]) == ("prod", 3)
    assert isinstance(root["rejected"], dict) and isinstance(root["consumerLag"], dict) and root["consumerLag"]
    assert set(root["lakeAgeSeconds"]) == {"demo-events"}

    # A dev token sees dev alone: its messages, its datasets' files, no deployment totals.
    dev = system.wait_for(lambda: (o := overview({**DEV_TEAM, "x-sandbox-name": "dev"}))["lakeAgeSeconds"] and o, 15,
                          what="dev lake file")
    assert (dev["sandbox"], dev["accepted"]) == ("dev", 2)
    assert dev["rejected"] is None and dev["consumerLag"] is None
    assert set(dev["lakeAgeSeconds"]) == {"dev-events"}

    # A prod-bound token sees prod alone; neither may look into the other's sandbox.
    analyst = overview(ANALYST)
    assert (analyst["accepted"], analyst["rejected"], analyst["consumerLag"]) == (3, None, None)
    assert set(analyst["lakeAgeSeconds"]) == {"demo-events"}
    assert system.http.get("/ui/api/overview", headers=DEV_TEAM).status_code == 403
    assert system.http.get("/ui/api/overview", headers={**ANALYST, "x-sandbox-name": "dev"}).status_code == 403
