import json

import pytest

from gateway.decode import (
    command_id,
    decode_batch,
    decode_message,
    event_id,
    parse_timestamp_ms,
    record_id,
    retry_key_of,
)
from inlet.config import load
from inlet.messages import Event, Record
from inlet.outcomes import Reason, Rejected
from inlet.xdm import Identity

CONFIG = load({})
DEMO = CONFIG.connection("demo")
assert DEMO is not None


def schema_of(dataset: str) -> str:
    """The schema the dataset names (docs/schemas.md): a message must name it in `schemaRef`."""
    found = CONFIG.dataset("prod", dataset)
    return found.schema if found and found.schema else "s"


def envelope(dataset: str = "demo-events", operation: str | None = None, **xdm: object) -> bytes:
    header: dict[str, object] = {"schemaRef": {"id": schema_of(dataset)}, "imsOrgId": "DEMO@AdobeOrg", "datasetId": dataset}
    if operation:
        header["operations"] = {"data": operation}
    return json.dumps({"header": header, "body": {"xdmEntity": xdm}}).encode()


IDS = {"identityMap": {"Email": [{"id": "A@B.example", "primary": True}]}}


def test_event_becomes_a_bus_event_with_raw_bytes() -> None:
    data = envelope(_id="e1", timestamp="2026-11-23T10:00:00Z", eventType="x", **IDS)
    message = decode_message(data, CONFIG, DEMO, received_ms=5)
    assert isinstance(message, Event)
    assert message.message_id == event_id("DEMO@AdobeOrg", "prod", "demo-events", "e1") == "DEMO@AdobeOrg/prod/demo-events/e1"
    assert message.timestamp_ms == 1_795_428_000_000
    assert message.identities == [Identity("Email", "a@b.example", True)]
    assert json.loads(bytes(message.xdm))["_id"] == "e1"


def test_a_record_sent_again_is_a_new_write_unless_the_client_names_its_retry() -> None:
    """Issue 12.1: A, B, A must end as A, so the same bytes later are not a retry; a client that
    retries with the same `Idempotency-Key` (and the message's index) keeps the id."""
    create = decode_message(envelope("demo-profiles", **IDS), CONFIG, DEMO, 1)
    again = decode_message(envelope("demo-profiles", **IDS), CONFIG, DEMO, 2)
    merge = decode_message(envelope("demo-profiles", "merge", **IDS), CONFIG, DEMO, 3)
    assert isinstance(create, Record) and isinstance(merge, Record)
    assert len({create.message_id, again.message_id, merge.message_id}) == 3
    assert (create.operation, merge.operation) == ("create", "merge")
    keyed = [decode_message(envelope("demo-profiles", **IDS), CONFIG, DEMO, n, retry_key_of(key, index))
             for n, key, index in [(1, "k1", 0), (9, "k1", 0), (1, "k1", 1), (1, "k2", 0)]]
    first, retry, other_index, other_key = (m.message_id for m in keyed)
    assert first == retry and len({first, other_index, other_key}) == 3
    assert first.startswith("DEMO@AdobeOrg/prod/demo-profiles/")


def test_every_deduplicating_id_names_org_and_sandbox() -> None:
    """Issue 12.2: the same record or event in two sandboxes (datasets of the same id) is two
    messages."""
    assert event_id("O", "prod", "d", "e1") != event_id("O", "dev", "d", "e1") != event_id("P", "dev", "d", "e1")
    assert record_id("O", "prod", "d", "create", b"{}", "0/k") != record_id("O", "dev", "d", "create", b"{}", "0/k")
    assert record_id("O", "dev", "d", "create", b"{}", "0/k").startswith("O/dev/d/")
    assert command_id("O", "prod", "d", "Email:a", "k") != command_id("O", "dev", "d", "Email:a", "k")
    assert command_id("O", "prod", "d", "Email:a", "k") == command_id("O", "prod", "d", "Email:a", "k")
    assert command_id("O", "prod", "d", "Email:a", None) != command_id("O", "prod", "d", "Email:a", None)


def test_an_event_id_longer_than_the_limit_is_refused() -> None:
    """Issue 12.7: refused with a 400 at the gateway, not accepted and then never stored."""
    ok = decode_message(envelope(_id="e" * 1024, timestamp="2026-11-23T10:00:00Z", **IDS), CONFIG, DEMO, 1)
    assert isinstance(ok, Event)
    with pytest.raises(Rejected) as caught:
        decode_message(envelope(_id="e" * 1025, timestamp="2026-11-23T10:00:00Z", **IDS), CONFIG, DEMO, 1)
    assert caught.value.reason is Reason.invalid_message and caught.value.status == 400
    assert "_id" in caught.value.detail and "1024" in caught.value.detail


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", Reason.malformed_json),
        (b"[]", Reason.invalid_message),
        (b'{"header": {}, "body": {}}', Reason.missing_field),
        (envelope("nope", **IDS), Reason.unknown_dataset),
        (envelope(timestamp="2026-11-23T10:00:00Z", **IDS), Reason.missing_field),
        (envelope(_id="e", **IDS), Reason.missing_field),
        (envelope(_id="e", timestamp="2026-11-23T10:00:00", **IDS), Reason.invalid_timestamp),
        (envelope(_id="e", timestamp="soon", **IDS), Reason.invalid_timestamp),
        (envelope(_id="e", timestamp="2026-11-23T10:00:00Z"), Reason.missing_identity),
        (envelope(_id="e", timestamp="2026-11-23T10:00:00Z", identityMap={"Email": "x"}), Reason.invalid_message),
        (envelope("demo-profiles", "upsert", **IDS), Reason.invalid_message),
        (b" " * (1024 * 1024 + 1), Reason.message_too_large),
    ],
)
def test_bad_messages_are_rejected_with_a_stable_reason(data: bytes, reason: Reason) -> None:
    with pytest.raises(Rejected) as caught:
        decode_message(data, CONFIG, DEMO, 1)
    assert caught.value.reason is reason
    assert caught.value.detail


def test_error_paths_point_into_the_xdm_entity() -> None:
    data = envelope(_id="e", timestamp="2026-11-23T10:00:00Z", identityMap={"Email": [{"id": 5}]})
    with pytest.raises(Rejected, match=r"\$\.body\.xdmEntity\.identityMap"):
        decode_message(data, CONFIG, DEMO, 1)


def test_org_must_match() -> None:
    data = envelope(**IDS).replace(b"DEMO@AdobeOrg", b"EVIL@AdobeOrg")
    with pytest.raises(Rejected) as caught:
        decode_message(data, CONFIG, DEMO, 1)
    assert caught.value.reason is Reason.org_mismatch


def test_batch_keeps_each_message_raw() -> None:
    raws = decode_batch(b'{"messages": [{"a": 1}, "junk", {"b": [2]}]}')
    assert [bytes(r) for r in raws] == [b'{"a": 1}', b'"junk"', b'{"b": [2]}']


def test_timestamps_with_offsets() -> None:
    assert parse_timestamp_ms("1970-01-01T00:00:01.5Z") == 1500
    assert parse_timestamp_ms("1970-01-01T01:00:00+01:00") == 0
