"""A COUNT computed attribute over page views, for the crash and outage tests.

Events are stored under their message id, so applying one twice overwrites itself in the
timeline and a timeline can never show a double. A COUNT adds one per apply: if a worker
applied a redelivered message again, the count would exceed the number of accepted events.
"""

from __future__ import annotations

from datetime import datetime, timezone

from tests.harness import System

VIEWS = "views30d"
VIEWS_TOML = f"""
[[computed_attributes]]
name = "{VIEWS}"
function = "COUNT"
filter = {{eventType = ["web.webpagedetails.pageViews"]}}
duration = {{count = 30, unit = "DAYS"}}
"""


def now_iso() -> str:
    """A timestamp inside the 30-day window, whatever day the test runs."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def backfilled(system: System) -> bool:
    """The seeded definition's backfill is done, so it cannot rebuild (and so hide) a double
    count later: from here on only streaming counts."""
    response = system.http.get(f"/data/core/ca/attributes/{VIEWS}", headers=system.auth)
    return response.status_code == 200 and response.json().get("backfill", {}).get("status") == "done"


def views(system: System, email: str) -> int | None:
    """The profile's page-view count, or None while the profile or the value is missing."""
    response = system.profile("Email", email)
    if response.status_code != 200:
        return None
    (entity,) = response.json().values()
    value = entity["entity"].get("computedAttributes", {}).get(VIEWS, {}).get("value")
    return int(value) if value is not None else None
