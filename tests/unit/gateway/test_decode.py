import json

import pytest

from gateway.decode import decode_batch, decode_message, event_id, parse_timestamp_ms
from inlet.config import load
from inlet.messages import Event, Record
from inlet.outcomes import Reason, Rejected
from inlet.xdm import Identity

CONFIG = load({})
DEMO = CONFIG.connection("demo")
assert DEMO is not None


def envelope(dataset: str = "demo-events", operation: str | None = None, **xdm: object) -> bytes:
    header: dict[str, object] = {"schemaRef": {"id": "s"}, "imsOrgId": "DEMO@AdobeOrg", "datasetId": dataset}
    if operation:
        header["operations"] = {"data": operation}
    return json.dumps({"header": header, "body": {"xdmEntity": xdm}}).encode()


IDS = {"identityMap": {"Email": [{"id": "A@B.example", "primary": True}]}}


def test_event_becomes_a_bus_event_with_raw_bytes() -> None:
    data = envelope(_id="e1", timestamp="2026-11-23T10:00:00Z", eventType="x", **IDS)
    message = decode_message(data, CONFIG, DEMO, received_ms=5)
    assert isinstance(message, Event)
    assert message.message_id == event_id("prod", "demo-events", "e1") == "prod/demo-events/e1"
    assert message.timestamp_ms == 1_795_428_000_000
    assert message.identities == [Identity("Email", "a@b.example", True)]
    assert json.loads(bytes(message.xdm))["_id"] == "e1"


def test_record_ids_are_content_hashes_and_operations_are_kept() -> None:
    create = decode_message(envelope("demo-profiles", **IDS), CONFIG, DEMO, 1)
    again = decode_message(envelope("demo-profiles", **IDS), CONFIG, DEMO, 2)
    merge = decode_message(envelope("demo-profiles", "merge", **IDS), CONFIG, DEMO, 3)
    assert isinstance(create, Record) and isinstance(merge, Record)
    assert create.message_id == again.message_id != merge.message_id
    assert (create.operation, merge.operation) == ("create", "merge")


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
