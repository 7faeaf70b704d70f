"""One event through the real processes: gateway → JetStream → profile worker → profile API."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from tests.harness import System, event, message
from tests.integration.counted import VIEWS_TOML, backfilled, now_iso, views
from tests.integration.stream_contents import settled, stored_event_ids


def test_event_is_readable_from_the_profile_api_within_a_second(system: System) -> None:
    email = f"{uuid.uuid4().hex}@shop.example"
    response = system.post_event(email=email)
    accepted = time.monotonic()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["inletId"] == "demo"
    assert body["xactionId"].count(":") == 2
    assert isinstance(body["receivedTimeMs"], int)

    found = system.wait_for(lambda: system.profile("Email", email).status_code == 200, 5, "profile")
    elapsed = time.monotonic() - accepted
    assert found and elapsed < 1.0, f"visible after {elapsed:.3f}s"
    profile = system.profile("Email", email.upper()).json()  # identity values are normalised
    (entity,) = profile.values()
    assert entity["identityGraph"] == [f"Email:{email}"]
    assert entity["mergePolicy"] == {"id": "default"}


def test_same_event_posted_twice_is_counted_once(system: System) -> None:
    xdm = event(email="twice@shop.example", event_id="evt-twice")
    for _ in range(2):
        assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    marker = system.post_event(email="twice@shop.example", event_id="evt-after")
    assert marker.status_code == 200

    def timeline() -> list[str]:
        response = system.events("Email", "twice@shop.example")
        ids = [c["entityId"] for c in response.json()["children"]] if response.status_code == 200 else []
        return ids if "evt-after" in ids else []

    assert sorted(system.wait_for(timeline, 5, "timeline")) == ["evt-after", "evt-twice"]


def test_two_identities_in_one_message_join_one_profile(system: System) -> None:
    ecid = str(uuid.uuid4().int)[:38]
    assert system.post_event(email=None, ecid=ecid).status_code == 200
    assert system.post_event(email="joined@shop.example", ecid=ecid).status_code == 200

    def joined() -> dict:
        response = system.profile("ECID", ecid)
        if response.status_code != 200:
            return {}
        (entity,) = response.json().values()
        return entity if len(entity["identityGraph"]) == 2 else {}

    entity = system.wait_for(joined, 5, "graph of two")
    assert sorted(entity["identityGraph"]) == sorted([f"ECID:{ecid}", "Email:joined@shop.example"])
    by_email = system.profile("Email", "joined@shop.example").json()
    assert list(by_email) == [entity["entityId"]]
    timeline = system.events("Email", "joined@shop.example").json()
    assert timeline["_page"]["count"] == 2


def test_records_merge_newest_value_wins_and_upserts_patch(system: System) -> None:
    email = "grace@shop.example"
    identity = {"Email": [{"id": email, "primary": True}]}
    record = {"_id": "r1", "identityMap": identity,
              "person": {"name": {"firstName": "Grace", "lastName": "Hopper"}},
              "homeAddress": {"city": "Arlington"}}
    assert system.http.post("/collection/demo", json=message("demo-profiles", record)).status_code == 200
    upsert = {"identityMap": identity, "homeAddress": {"city": "New York"}}
    assert system.http.post(
        "/collection/demo", json=message("demo-profiles", upsert, operation="merge")
    ).status_code == 200

    def merged() -> dict:
        response = system.profile("Email", email)
        if response.status_code != 200:
            return {}
        (entity,) = response.json().values()
        return entity if entity["entity"].get("homeAddress", {}).get("city") == "New York" else {}

    entity = system.wait_for(merged, 5, "upsert applied")
    assert entity["entity"]["person"]["name"] == {"firstName": "Grace", "lastName": "Hopper"}
    assert entity["sources"] == ["demo-profiles"]
    assert entity["entity"]["identityMap"] == {"Email": [{"id": email}]}
    only = system.profile("Email", email, fields="person.name.firstName").json()
    (selected,) = only.values()
    assert selected["entity"] == {"person": {"name": {"firstName": "Grace"}}}


def test_batch_answers_each_message_in_order(system: System) -> None:
    good = message("demo-events", event(email="batch@shop.example"))
    bad_dataset = message("nope", event(email="batch@shop.example"))
    no_id = message("demo-events", {k: v for k, v in event(email="batch@shop.example").items() if k != "_id"})
    response = system.http.post("/collection/batch/demo", json={"messages": [good, bad_dataset, no_id, good]})
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["inletId"] == "demo" and body["batchId"]
    first, second, third, fourth = body["responses"]
    assert "xactionId" in first and "xactionId" in fourth
    assert second == {"statusCode": 400, "message": second["message"], "code": "unknown_dataset"}
    assert third["statusCode"] == 400 and third["code"] == "missing_field"


def test_profile_api_requires_a_token_and_answers_404_for_unknown_identities(system: System) -> None:
    params = {"schema.name": "_xdm.context.profile", "entityId": "x@y.z", "entityIdNS": "Email"}
    no_token = system.http.get("/data/core/ups/access/entities", params=params)
    assert no_token.status_code == 401 and no_token.json()["code"] == "unauthorized"
    wrong = system.http.get("/data/core/ups/access/entities", params=params,
                            headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    missing = system.profile("Email", "nobody@nowhere.example")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    bad_schema = system.http.get("/data/core/ups/access/entities", params={**params, "schema.name": "x"},
                                 headers=system.auth)
    assert bad_schema.status_code == 400


def test_authenticated_connection_needs_its_bearer_token(system: System) -> None:
    body = message("demo-events", event())
    assert system.http.post("/collection/secured", json=body).status_code == 401
    assert system.http.post("/collection/secured", json=body,
                            headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = system.http.post("/collection/secured", json=body, headers={"Authorization": "Bearer conn-secret"})
    assert ok.status_code == 200, ok.text
    rotated = system.http.post("/collection/secured", json=body, headers={"Authorization": "Bearer conn-secret-next"})
    assert rotated.status_code == 200, rotated.text
    assert "conn-secret" not in system.log_text("gateway")  # tokens never reach the logs
    other = system.http.post("/collection/secured", json=message("demo-profiles", event()),
                             headers={"Authorization": "Bearer conn-secret"})
    assert other.status_code == 403 and other.json()["code"] == "dataset_not_allowed"


@pytest.mark.parametrize("backlog", [False, True], ids=["live", "backlog"])
def test_deletes_and_unlinks_apply_in_order_with_the_events_around_them(system: System, backlog: bool) -> None:
    """Events, a delete and an unlink of the same profile, sent back to back (each request
    waits only for its own answer, never for the worker): only applying them in the order
    they were accepted leaves exactly `after-delete` in the person's profile and `after-unlink`
    in the device's. Live, they race the worker across batches; as a backlog (the worker
    stopped meanwhile) they arrive in one batch."""
    email, ecid = f"erase-{'backlog' if backlog else 'live'}@shop.example", ("5" if backlog else "6") * 38
    params = {"schema.name": "_xdm.context.profile", "entityIdNS": "Email", "entityId": email}
    if backlog:
        system.stop("profile")

    def post(event_id: str, email: str | None = None, ecid: str | None = None) -> None:
        xdm = event(email=email, ecid=ecid, event_id=event_id)
        assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200

    post("before-delete", email=email)
    post("joins-device", email=email, ecid=ecid)
    assert system.http.delete("/data/core/ups/access/entities", params=params, headers=system.auth).status_code == 202
    post("after-delete", email=email)
    unlink = {"entityId": ecid, "entityIdNS": "ECID"}
    assert system.http.post("/data/core/ups/access/unlink", params=unlink, headers=system.auth).status_code == 202
    post("after-unlink", ecid=ecid)
    if backlog:
        system.start("profile")

    def timeline(ns: str, value: str) -> list[str]:
        response = system.events(ns, value)
        return [c["entityId"] for c in response.json()["children"]] if response.status_code == 200 else []

    system.wait_for(lambda: "after-unlink" in timeline("ECID", ecid), 10, "the last message applied")
    assert timeline("ECID", ecid) == ["after-unlink"]
    assert timeline("Email", email) == ["after-delete"]
    (person,) = system.profile("Email", email).json().values()
    assert person["identityGraph"] == [f"Email:{email}"]


@pytest.mark.config(VIEWS_TOML)
def test_killing_the_profile_worker_mid_stream_loses_and_doubles_nothing(system: System) -> None:
    """Loses nothing: every accepted event is in the stream once and in the timeline.
    Doubles nothing: the COUNT computed attribute equals the number of accepted events (a
    redelivered batch applied again would count twice, though its events overwrite
    themselves in the timeline)."""
    email = "steady@shop.example"
    system.wait_for(lambda: backfilled(system), 10, "the COUNT definition live")
    timestamp = now_iso()
    sent: list[str] = []
    done = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=system.url, timeout=10) as client:
            for i in range(300):
                event_id = f"steady-{i}"
                xdm = event(email=email, event_id=event_id, timestamp=timestamp)
                response = client.post("/collection/demo", json=message("demo-events", xdm))
                assert response.status_code == 200, response.text
                sent.append(event_id)
        done.set()

    sender = threading.Thread(target=send)
    sender.start()
    system.wait_for(lambda: len(sent) >= 50, 10, "traffic flowing")
    system.kill("profile")
    system.wait_for(lambda: len(sent) >= 150, 10, "traffic while the worker is down")
    system.start("profile")
    sender.join(30)
    assert done.is_set() and len(sent) == 300

    def all_there() -> list[str]:
        response = system.events("Email", email, limit="1000")
        ids = [c["entityId"] for c in response.json()["children"]] if response.status_code == 200 else []
        return ids if len(ids) >= 300 else []

    # In-flight messages of the killed worker come back after `profile.ack_wait` (10 s).
    ids = system.wait_for(all_there, 40, "every event in the profile")
    assert sorted(ids) == sorted(sent)
    assert stored_event_ids(system.nats.url, "steady-") == sent  # stored once each, in the order sent
    system.wait_for(lambda: settled(system.nats.url), 30, "no redelivery still to come")
    assert views(system, email) == 300


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "code"),
    [
        ("/collection/demo", b"{not json", {}, 400, "malformed_json"),
        ("/collection/demo", b'{"header": 5, "body": {}}', {}, 400, "invalid_message"),
        ("/collection/demo", b'{"body": {"xdmEntity": {}}}', {}, 400, "missing_field"),
        ("/collection/nope", b"{}", {}, 404, "unknown_connection"),
        ("/collection/demo", b"{}", {"content-type": "application/xml"}, 415, "unsupported_media_type"),
        ("/collection/demo", b"[" * 10 + b"x" * (1024 * 1024 + 1), {}, 413, "message_too_large"),
        ("/collection/batch/demo", b'{"messages": {}}', {}, 400, "invalid_message"),
    ],
)
@pytest.mark.components("gateway")
def test_bad_input_gets_a_clear_error_and_the_gateway_keeps_serving(
    system: System, path: str, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = system.http.post(path, content=content, headers={"content-type": "application/json", **headers})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    assert system.post_event().status_code == 200


@pytest.mark.components("gateway")
def test_invalid_xdm_fields_are_rejected_with_their_reason(system: System) -> None:
    cases = {
        "org_mismatch": {**message("demo-events", event()), "header": {**message("demo-events", event())["header"], "imsOrgId": "OTHER@AdobeOrg"}},
        "unknown_dataset": message("nope", event()),
        "invalid_timestamp": message("demo-events", event(timestamp="yesterday")),
        "missing_identity": message("demo-events", event(email=None)),
    }
    for code, body in cases.items():
        response = system.http.post("/collection/demo?syncValidation=true", json=body)
        assert response.status_code == 400, (code, response.text)
        assert response.json()["code"] == code
        assert response.json()["report"]["cause"]["_streamingValidation"][0]["code"] == code
    ok = system.http.post("/collection/demo?syncValidation=true", json=message("demo-events", event()))
    assert ok.json()["syncValidation"] == {"status": "pass"}
    lake_only = system.http.post("/collection/demo", json=message("lake-only", event(email=None)))
    assert lake_only.status_code == 200


@pytest.mark.components("gateway")
def test_shape_and_rate_limits(system: System) -> None:
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    too_deep = system.http.post("/collection/demo", json=message("demo-events", event(nest=deep)))
    assert too_deep.status_code == 400 and too_deep.json()["code"] == "too_deep"
    very_deep = system.http.post("/collection/demo", content=b'{"header": ' + b"[" * 50000 + b"]" * 50000 + b"}",
                                 headers={"content-type": "application/json"})
    assert very_deep.status_code == 400 and very_deep.json()["code"] == "too_deep"
    long_string = system.http.post("/collection/demo", json=message("demo-events", event(note="x" * 70000)))
    assert long_string.status_code == 400 and long_string.json()["code"] == "string_too_long"
    edge_deep = system.http.post("/ee/v1/interact?configId=demo", content=b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert edge_deep.status_code == 400 and edge_deep.json()["errors"][0]["code"] == "too_deep"

    statuses = [system.http.post("/collection/limited", json=message("demo-events", event())) for _ in range(4)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]
    limited = statuses[-1]
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert system.post_event().status_code == 200  # other connections are not affected
