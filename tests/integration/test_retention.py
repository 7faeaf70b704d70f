"""Retention of stream INGEST (issue 12.13): bounded by size and age, never by deleting what a
consumer still needs to make room, and warned about in `inlet status` and `/metrics` first."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.harness import System

SMALL = 48 * 1024


def _status(system: System) -> tuple[int, dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "inlet", "status", "--json"], env=system.env,
                         capture_output=True, text=True, timeout=60, cwd=system.tmp)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(f"\n[nats]\nmax_bytes = {SMALL}\n")
def test_a_full_stream_refuses_new_messages_into_the_spool_and_loses_nothing(system: System) -> None:
    """The profile worker is down: its durable consumer still needs every message, so nothing
    may be trimmed or discarded to make room; the gateway spools what the stream refuses."""
    system.stop("profile")
    email = "full@shop.example"
    statuses = [system.post_event(email=email, event_id=f"full-{i}").status_code for i in range(150)]
    assert set(statuses) == {200}, statuses  # accepted: stored, or spooled once the stream was full
    code, status = _status(system)
    assert status["stream"]["max_bytes"] == SMALL and status["stream"]["bytes"] <= SMALL
    assert status["stream"]["messages"] < 150, "the stream should have filled up"
    assert sum(status["spool_bytes"].values()) > 0, "what the full stream refused is in the spool"
    assert code == 1 and any("stream INGEST holds" in w for w in status["warnings"]), status["warnings"]
    table = subprocess.run([sys.executable, "-m", "inlet", "status"], env=system.env, capture_output=True,
                           text=True, timeout=60, cwd=system.tmp).stdout
    assert "WARNING: stream INGEST holds" in table
    metrics = system.http.get("/metrics").text
    assert f"inlet_stream_max_bytes {float(SMALL)}" in metrics
    assert "inlet_retention_warnings 1.0" in metrics

    # The worker comes back and catches up: the gateway trims what it acknowledged, and the
    # spool drains into the room, in order.
    system.start("profile")

    def timeline() -> list[str]:
        response = system.events("Email", email, limit="1000")
        ids = [c["entityId"] for c in response.json()["children"]] if response.status_code == 200 else []
        return ids if len(ids) >= 150 else []

    ids = system.wait_for(timeline, 60, "every accepted event in the profile once the consumer caught up")
    assert sorted(ids) == sorted(f"full-{i}" for i in range(150))


@pytest.mark.components("gateway")
@pytest.mark.config(f"\n[nats]\nmax_bytes = {SMALL}\n[spool]\nenabled = false\n")
def test_without_a_spool_a_full_stream_answers_503(system: System) -> None:
    statuses = [system.post_event(event_id=f"nospool-{i}").status_code for i in range(150)]
    assert 200 in statuses and statuses[-1] == 503, statuses
    first_refused = statuses.index(503)
    assert set(statuses[first_refused:]) == {503}, "once full, nothing more is taken in"
    _, status = _status(system)
    assert status["stream"]["messages"] == first_refused, "every 200 is stored, nothing older was deleted"


@pytest.mark.components("gateway", "profile")
@pytest.mark.config("\n[nats]\nmax_age = 6\nduplicate_window = 1\n")
def test_a_consumer_whose_unacked_messages_near_max_age_is_warned_about(system: System) -> None:
    system.stop("profile")  # its durable consumer stays, and stops acknowledging
    assert system.post_event(email="old@shop.example").status_code == 200

    def warned() -> list[str]:
        return [w for w in _status(system)[1]["warnings"] if w.startswith("consumer profile-0:")]

    warning = system.wait_for(warned, 20, "a warning about profile-0's oldest unacknowledged message")
    assert "max_age" in warning[0]
    metrics = system.http.get("/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith('inlet_consumer_oldest_unacked_age_seconds{consumer="profile-0"}'))
    assert float(line.split()[-1]) >= 3.0


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(f"\n[nats]\nmax_bytes = {SMALL}\n")
def test_history_every_consumer_acknowledged_is_trimmed_before_the_stream_fills(system: System) -> None:
    """With the consumer keeping up, the gateway purges acknowledged history from 80 % of
    max_bytes on, so three times the limit flows through without a refusal or a spooled byte."""
    sent = 0
    for _ in range(12):
        for _ in range(15):
            assert system.post_event(email="trim@shop.example", event_id=f"trim-{sent}").status_code == 200
            sent += 1

        def room() -> dict[str, Any]:
            _, status = _status(system)
            lag = sum(c["lag"] for c in status["consumers"])
            return status if lag == 0 and status["stream"]["bytes"] < 0.8 * SMALL else {}

        status = system.wait_for(room, 20, "the consumer caught up and the acknowledged history trimmed")
    assert status["stream"]["first_seq"] > 1, "acknowledged history was purged"
    assert sum(status["spool_bytes"].values()) == 0, "nothing was refused into the spool"
    assert status["stream"]["last_seq"] == sent
    assert "purged" in system.log_text("gateway")
