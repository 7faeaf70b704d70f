"""Metrics, request ids, structured logs and `inlet status`, from the real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from inlet.nats_server import NatsServer
from tests.harness import System


def test_metrics_cover_requests_messages_publish_latency_and_consumer_lag(system: System) -> None:
    assert system.post_event(email="metrics@shop.example").status_code == 200
    assert system.http.post("/collection/demo", content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
    system.wait_for(lambda: system.profile("Email", "metrics@shop.example").status_code == 200, 5)

    def scrape() -> str:
        text = system.http.get("/metrics").text
        return text if 'inlet_worker_messages_total{outcome="applied"' in text else ""

    text = system.wait_for(scrape, 15, "worker metrics pushed")
    assert 'inlet_http_requests_total{route="collection.single",status="200"}' in text
    assert 'inlet_messages_accepted_total{kind="event",spooled="false"}' in text
    assert 'inlet_messages_rejected_total{reason="malformed_json"}' in text
    assert "inlet_publish_seconds_bucket" in text
    assert 'inlet_consumer_lag{consumer="profile-0"}' in text
    assert "inlet_spool_bytes" in text
    assert 'worker="profile-0"' in text and "inlet_worker_batch_seconds" in text
    names = [family.name for family in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), "a metric family is declared twice"


def test_request_ids_are_echoed_and_logged_as_json(system: System) -> None:
    response = system.http.post("/collection/nope", json={}, headers={"x-request-id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    generated = system.post_event()
    assert len(generated.headers["x-request-id"]) == 32
    system.http.post("/collection/demo", json={}, headers={"x-request-id": "bad id with spaces"})
    lines = [json.loads(line) for line in system.log_text("gateway").splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message", "process"} <= set(line) for line in lines)


def gateway_log_lines(system: System) -> list[dict[str, object]]:
    return [json.loads(line) for line in system.log_text("gateway").splitlines() if line.startswith("{")]


def test_a_request_id_appears_in_the_json_log_line_of_that_request(tmp_path: Path, nats_server: NatsServer) -> None:
    """The id a client sends (or the one the gateway made up and echoed) is the `request_id`
    of the log lines written while serving that request, and of no other request's lines:
    that is what lets an operator go from a client's complaint to the gateway's log. Refusals
    are logged at DEBUG, so this gateway runs at DEBUG."""
    system = System(tmp_path, nats_server, extra_env={"INLET_LOG_LEVEL": "DEBUG"})
    try:
        system.start("gateway")
        sent = system.http.post("/collection/nope", json={}, headers={"x-request-id": "trace-42"})
        assert sent.status_code == 404 and sent.headers["x-request-id"] == "trace-42"
        made_up = system.http.post("/collection/demo", content=b"{nope", headers={"content-type": "application/json"})
        assert made_up.status_code == 400
        generated = made_up.headers["x-request-id"]
        assert len(generated) == 32

        def logged(rid: str, text: str) -> list[dict[str, object]]:
            return [line for line in gateway_log_lines(system)
                    if line.get("request_id") == rid and text in str(line["message"])]

        (line,) = system.wait_for(lambda: logged("trace-42", "unknown_connection"), 5, "the refusal logged with its id")
        assert line["level"] == "DEBUG" and line["logger"] == "inlet.gateway" and line["process"]
        system.wait_for(lambda: logged(generated, "malformed_json"), 5, "the generated id logged")
        assert not logged("trace-42", "malformed_json"), "one request's id leaked into another's log line"
    finally:
        system.close()
    assert not system.error_lines()


def test_inlet_status_reports_stream_consumers_and_spool(system: System) -> None:
    assert system.post_event(email="status@shop.example").status_code == 200
    out = subprocess.run([sys.executable, "-m", "inlet", "status", "--json"], env=system.env,
                         capture_output=True, text=True, timeout=30, cwd=system.tmp)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["stream"]["name"] == "INGEST" and status["stream"]["messages"] >= 1
    assert {c["name"] for c in status["consumers"]} >= {"profile-0"}
    assert status["dead_letters"] == 0
    table = subprocess.run([sys.executable, "-m", "inlet", "status"], env=system.env,
                           capture_output=True, text=True, timeout=30, cwd=system.tmp)
    assert "profile-0" in table.stdout and "dead letters: 0" in table.stdout
