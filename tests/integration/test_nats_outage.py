"""JetStream goes away under steady load: the gateway spools, answers 2xx, and replays in
order when it returns; every acknowledged event ends up in the profile exactly once.

Checked where a double or a reordering would show: the stream itself (each accepted event
stored once, in the order the client sent them, read in stream order) and a COUNT computed
attribute (a message applied twice counts twice, though it overwrites itself in the
timeline)."""

from __future__ import annotations

import threading

import httpx
import polars as pl
import pytest

from tests.harness import System, event, message
from tests.integration.counted import VIEWS_TOML, backfilled, now_iso, views
from tests.integration.stream_contents import settled, stored_event_ids


@pytest.mark.config(VIEWS_TOML)
def test_killing_nats_under_load_loses_and_doubles_nothing(system: System) -> None:
    email = "outage@shop.example"
    system.wait_for(lambda: backfilled(system), 10, "the COUNT definition live")
    timestamp = now_iso()
    accepted: list[str] = []
    statuses: list[int] = []
    done = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=system.url, timeout=20) as client:
            for i in range(300):
                event_id = f"outage-{i}"
                xdm = event(email=email, event_id=event_id, timestamp=timestamp)
                response = client.post("/collection/demo", json=message("demo-events", xdm))
                statuses.append(response.status_code)
                if response.status_code == 200:
                    accepted.append(event_id)
        done.set()

    sender = threading.Thread(target=send)
    sender.start()
    system.wait_for(lambda: len(statuses) >= 60, 20, "traffic flowing")
    system.nats.kill()
    system.wait_for(lambda: len(statuses) >= 160, 30, "traffic while NATS is down")
    system.nats.start()
    sender.join(60)
    assert done.is_set()
    assert set(statuses) == {200}, sorted(set(statuses))

    def all_there() -> list[str]:
        response = system.events("Email", email, limit="1000")
        ids = [c["entityId"] for c in response.json()["children"]] if response.status_code == 200 else []
        return ids if len(ids) >= len(accepted) else []

    ids = system.wait_for(all_there, 60, "every accepted event in the profile")
    assert sorted(ids) == sorted(accepted) and len(ids) == len(set(ids)) == 300
    assert "Replayed" in system.log_text("gateway"), "the outage should have been bridged by the spool"
    # The spool replayed in order and nothing was stored twice: the stream holds exactly the
    # accepted events, in the order the (one, sequential) client sent them.
    assert stored_event_ids(system.nats.url, "outage-") == accepted
    system.wait_for(lambda: settled(system.nats.url), 40, "no redelivery still to come")
    assert views(system, email) == len(accepted) == 300

    def lake_ids() -> list[str] | None:
        files = list((system.data_dir / "lake").rglob("*.parquet"))
        if not files:
            return None
        frame = pl.concat([pl.read_parquet(f, columns=["_id"]) for f in files])
        found = frame.filter(pl.col("_id").str.starts_with("outage-"))["_id"].to_list()
        return found if len(set(found)) == len(accepted) else None

    found = system.wait_for(lake_ids, 60, "every accepted event in the lake")
    assert found is not None and sorted(found) == sorted(accepted)
