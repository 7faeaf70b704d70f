"""Nothing accepted is dropped or mixed up on its way to the profile (issue 12, items 1, 2, 7),
through the real gateway, nats-server and profile worker.

The request shapes are AEP streaming ingestion's (`POST /collection/{connectionId}` with a
`header`/`body.xdmEntity` envelope, https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/tutorials/streaming-record-data);
the identity value limit is Identity Service's guardrail (non-ECID identity values over 1,024
characters are refused, https://experienceleague.adobe.com/en/docs/experience-platform/identity/guardrails).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.harness import System, event, message

DEV = """
[[connections]]
id = "dev-demo"
sandbox = "dev"

[[datasets]]
id = "demo-profiles"
sandbox = "dev"
class = "profile"

[[datasets]]
id = "demo-events"
sandbox = "dev"
class = "experienceevent"
"""


def tier(system: System, email: str, sandbox: str = "prod") -> str | None:
    response = system.http.get(
        "/data/core/ups/access/entities",
        params={"schema.name": "_xdm.context.profile", "entityId": email, "entityIdNS": "Email"},
        headers={**system.auth, "x-sandbox-name": sandbox},
    )
    if response.status_code != 200:
        return None
    (entity,) = response.json().values()
    value = entity["entity"].get("loyalty", {}).get("tier")
    return str(value) if value is not None else None


def record(email: str, value: str) -> dict[str, Any]:
    return message("demo-profiles", {"identityMap": {"Email": [{"id": email, "primary": True}]},
                                     "loyalty": {"tier": value}})


def stream_seq(response: httpx.Response) -> str:
    """The stream sequence in `xactionId` (`<received ms>:<seq>:<index>`): a message JetStream
    took for a duplicate answers with the sequence of the first."""
    assert response.status_code == 200, response.text
    return str(response.json()["xactionId"].split(":")[1])


@pytest.mark.components("gateway", "profile")
def test_a_record_sent_as_a_then_b_then_a_again_ends_as_a(system: System) -> None:
    email = "aba@shop.example"
    assert system.http.post("/collection/demo", json=record(email, "gold")).status_code == 200
    system.wait_for(lambda: tier(system, email) == "gold", 10, "A applied")
    assert system.http.post("/collection/demo", json=record(email, "silver")).status_code == 200
    system.wait_for(lambda: tier(system, email) == "silver", 10, "B applied")
    assert system.http.post("/collection/demo", json=record(email, "gold")).status_code == 200
    system.wait_for(lambda: tier(system, email) == "gold", 10, "A again applied, not taken for a retry")


@pytest.mark.components("gateway", "profile")
def test_a_retry_with_an_idempotency_key_is_stored_once_and_a_resend_without_one_is_new(system: System) -> None:
    """The retry of a request (same `Idempotency-Key`, same body) keeps its message id, so
    JetStream stores it once; the same body without a key is a new message."""
    body = record("retry@shop.example", "gold")
    first = stream_seq(system.http.post("/collection/demo", json=body, headers={"Idempotency-Key": "req-1"}))
    retry = stream_seq(system.http.post("/collection/demo", json=body, headers={"Idempotency-Key": "req-1"}))
    other = stream_seq(system.http.post("/collection/demo", json=body, headers={"Idempotency-Key": "req-2"}))
    plain = [stream_seq(system.http.post("/collection/demo", json=body)) for _ in range(2)]
    assert first == retry
    assert len({first, other, *plain}) == 4


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(DEV)
def test_the_same_messages_in_two_sandboxes_are_stored_in_both(system: System) -> None:
    """Datasets of the same id in `prod` and `dev`: the same record (same retry key), event
    (same `_id`) and delete (same key) reach both sandboxes' profiles."""
    email = "twins@shop.example"
    key = {"Idempotency-Key": "same-request"}
    for connection in ("demo", "dev-demo"):
        response = system.http.post(f"/collection/{connection}", json=record(email, "gold"), headers=key)
        assert response.status_code == 200, response.text
        ev = event(email=email, event_id="same-event-id")
        assert system.http.post(f"/collection/{connection}", json=message("demo-events", ev)).status_code == 200
    for sandbox in ("prod", "dev"):
        system.wait_for(lambda: tier(system, email, sandbox) == "gold", 10, f"record in {sandbox}")

        def timeline() -> list[Any]:
            response = system.http.get("/data/core/ups/access/entities", headers={**system.auth, "x-sandbox-name": sandbox},
                                       params={"schema.name": "_xdm.context.experienceevent",
                                               "relatedSchema.name": "_xdm.context.profile",
                                               "relatedEntityId": email, "relatedEntityIdNS": "Email"})
            return list(response.json()["children"]) if response.status_code == 200 else []

        assert [c["entityId"] for c in system.wait_for(timeline, 10, f"event in {sandbox}")] == ["same-event-id"]
    # The same delete request (same key) in both sandboxes deletes in both.
    for sandbox in ("prod", "dev"):
        response = system.http.delete("/data/core/ups/access/entities", headers={**system.auth, **key, "x-sandbox-name": sandbox},
                                      params={"entityId": email, "entityIdNS": "Email"})
        assert response.status_code == 202, response.text
    for sandbox in ("prod", "dev"):
        system.wait_for(lambda: tier(system, email, sandbox) is None, 10, f"deleted in {sandbox}")


@pytest.mark.components("gateway", "profile")
def test_long_ids_and_identity_values_the_gateway_accepts_are_stored_and_found(system: System) -> None:
    """An event `_id` of 1,024 characters and an identity value of 1,024 characters (about 3 KB
    of UTF-8) are accepted, stored and found; LMDB keys are at most 511 bytes, and such
    events were dead-lettered before. One character more is a 400 with a clear error."""
    long_email = "é" * 1000 + "@shop.example"  # 1,013 characters, 2,013 bytes
    long_id = "i" * 1024
    ev = event(email=long_email, event_id=long_id)
    assert system.http.post("/collection/demo", json=message("demo-events", ev)).status_code == 200
    ecid_value = "7" * 600  # an ~600-byte identity beside it (issue 12.7's case)
    ev2 = event(email=None, ecid=ecid_value, event_id="ecid-event")
    assert system.http.post("/collection/demo", json=message("demo-events", ev2)).status_code == 200

    def found() -> list[Any]:
        response = system.events("Email", long_email)
        return list(response.json()["children"]) if response.status_code == 200 else []

    (child,) = system.wait_for(found, 10, "the long-id event in the profile")
    assert child["entityId"] == long_id
    system.wait_for(lambda: system.profile("ECID", ecid_value).status_code == 200, 10, "the long ECID profile")

    too_long_id = system.http.post("/collection/demo", json=message("demo-events", event(event_id="i" * 1025)))
    assert too_long_id.status_code == 400
    assert too_long_id.json()["code"] == "invalid_message" and "_id" in too_long_id.json()["detail"]
    too_long_identity = system.http.post("/collection/demo", json=message("demo-events", event(email="e" * 1025)))
    assert too_long_identity.status_code == 400
    assert too_long_identity.json()["code"] == "invalid_message" and "identityMap" in too_long_identity.json()["detail"]
    # Field names are strings too (up to 64 KiB): a 600-byte one is part of no LMDB key.
    long_field = {**event(email="fields@shop.example", event_id="long-field"), "k" * 600: 1}
    assert system.http.post("/collection/demo", json=message("demo-events", long_field)).status_code == 200
    record = message("demo-profiles", {"identityMap": {"Email": [{"id": "fields@shop.example", "primary": True}]},
                                       "x" * 700: "kept"})
    assert system.http.post("/collection/demo", json=record).status_code == 200

    def with_field() -> dict[str, Any]:
        response = system.profile("Email", "fields@shop.example")
        if response.status_code != 200:
            return {}
        (entity,) = response.json().values()
        return dict(entity["entity"]) if "x" * 700 in entity["entity"] else {}

    assert system.wait_for(with_field, 10, "the record with a long field name")["x" * 700] == "kept"
    children = system.events("Email", "fields@shop.example").json()["children"]
    assert [c["entityId"] for c in children] == ["long-field"]
    assert "dead-lettered" not in system.log_text("profile").lower()
