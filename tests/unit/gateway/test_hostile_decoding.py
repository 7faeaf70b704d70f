"""Fuzzing the decoders: any input either decodes or is refused with a `Rejected`, never
anything else (no crash, no stack trace reaches a client)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import device_id, edge_request
from gateway.decode import decode_batch, decode_message, shape
from gateway.limits import Shape
from gateway.user_agent import parse
from inlet.config import Limits, load
from inlet.outcomes import STATUS, Reason, Rejected

CONFIG = load({})
DEMO = CONFIG.connection("demo")
assert DEMO is not None
EVENTS = CONFIG.dataset("prod", "demo-events")
assert EVENTS is not None
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "header": st.fixed_dictionaries({}, optional={
            "schemaRef": json_values | st.just({"id": "s"}),
            "imsOrgId": json_values | st.just("DEMO@AdobeOrg"),
            "datasetId": json_values | st.sampled_from(["demo-events", "demo-profiles"]),
            "operations": json_values | st.just({"data": "merge"}),
        }),
        "body": st.fixed_dictionaries({}, optional={"xdmEntity": json_values | st.fixed_dictionaries({}, optional={
            "_id": json_values, "timestamp": json_values | st.just("2026-11-23T10:00:00Z"),
            "identityMap": json_values | st.just({"Email": [{"id": "a@b.c"}]}),
        })}),
    },
)


# What decoding a small body can refuse for: all 400s (sizes, media types, connections and
# tokens are checked elsewhere, before decoding).
DECODE_REASONS = {Reason.malformed_json, Reason.invalid_message, Reason.missing_field, Reason.missing_identity,
                  Reason.invalid_timestamp, Reason.org_mismatch, Reason.unknown_dataset, Reason.too_deep,
                  Reason.string_too_long, Reason.schema_mismatch}


def decodes_or_refuses(call, valid=None) -> None:  # type: ignore[no-untyped-def]
    """Refused with a decoding reason (400), or decoded; a decode is accepted only when
    `valid()` (an independent check of the input) says the input deserved it."""
    try:
        call()
    except Rejected as rejected:
        assert rejected.reason in DECODE_REASONS and rejected.status == 400 and rejected.detail, rejected.reason
        return
    assert valid is None or valid(), "decoded an input that should have been refused"


def refuses(call, reason: Reason) -> None:  # type: ignore[no-untyped-def]
    """Refused for exactly `reason`, with its status and a detail."""
    try:
        call()
    except Rejected as rejected:
        assert (rejected.reason, rejected.status) == (reason, STATUS[reason]) and rejected.detail, rejected.reason
    else:
        raise AssertionError(f"accepted; expected {reason.value}")


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    data = b"\x00" + raw  # never JSON, whatever follows
    refuses(lambda: decode_message(data, CONFIG, DEMO, 0), Reason.malformed_json)
    refuses(lambda: decode_batch(data), Reason.malformed_json)
    refuses(lambda: edge_request.decode(data), Reason.malformed_json)
    device_id.decode(raw.decode("latin-1"), b"k")  # must not raise


@FUZZ
@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                 st.text(max_size=20), st.lists(json_values, max_size=4)))
def test_json_that_is_not_an_object(value: object) -> None:
    data = json.dumps(value).encode()
    refuses(lambda: decode_message(data, CONFIG, DEMO, 0), Reason.invalid_message)
    refuses(lambda: decode_batch(data), Reason.invalid_message)
    refuses(lambda: edge_request.decode(data), Reason.invalid_message)


def deserves_acceptance(document: dict[str, Any]) -> bool:
    """Independently of the decoder: the envelope a message needs to be accepted."""
    header, body = document.get("header"), document.get("body")
    if not isinstance(header, dict) or not isinstance(body, dict) or not isinstance(body.get("xdmEntity"), dict):
        return False
    schema_ref = header.get("schemaRef")
    return (isinstance(schema_ref, dict) and isinstance(schema_ref.get("id"), str)
            and header.get("imsOrgId", "") in ("", CONFIG.org)
            and header.get("datasetId") in ("demo-events", "demo-profiles"))


@FUZZ
@given(envelope_like)
def test_structured_but_wrong_messages(document: dict[str, Any]) -> None:
    data = json.dumps(document).encode()
    decodes_or_refuses(lambda: decode_message(data, CONFIG, DEMO, 0), lambda: deserves_acceptance(document))


def build(body: bytes) -> None:
    request = edge_request.decode(body)
    edge_request.consent_choice(request)
    edge_request.claimed_device_id(request)
    edge_request.build_events(request, "r", CONFIG, EVENTS, CONFIG.org, "demo", "1" * 38, "", parse(""), "", 0)


@FUZZ
@given(st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values, max_size=3))
def test_edge_bodies_build_events_or_refuse(events: list, extra: dict) -> None:
    body = json.dumps({"events": [{"xdm": e} if isinstance(e, dict) else e for e in events], **extra}).encode()
    decodes_or_refuses(lambda: build(body))


# The fields the gateway reads or writes, with values of any type: the branches that matter.
xdm_like = st.dictionaries(
    st.sampled_from(["_id", "timestamp", "eventType", "identityMap", "environment", "device"]),
    json_values | st.just("2026-11-23T10:00:00Z") | st.just({"ECID": [{"id": "1" * 38}]})
    | st.just({"browserDetails": [], "ipV4": {}}) | st.dictionaries(st.sampled_from(["ECID", "Email"]), json_values),
    max_size=6,
)
edge_like = st.fixed_dictionaries({}, optional={
    "events": st.lists(st.fixed_dictionaries({}, optional={"xdm": xdm_like | json_values, "data": json_values}), max_size=3)
    | json_values,
    "event": st.fixed_dictionaries({"xdm": xdm_like}) | json_values,
    "meta": st.fixed_dictionaries({}, optional={"state": st.fixed_dictionaries({}, optional={
        "domain": json_values, "entries": st.lists(st.fixed_dictionaries({"key": json_values, "value": json_values}))
        | json_values})}) | json_values,
    "consent": st.lists(st.fixed_dictionaries({}, optional={
        "standard": st.just("Adobe") | json_values, "version": st.sampled_from(["1.0", "2.0"]) | json_values,
        "value": st.just({"general": "in"}) | st.just({"collect": {"val": "y"}}) | json_values})) | json_values,
    "identityMap": json_values | st.just({"Email": [{"id": "a@b.c", "primary": True}]}),
    "xdm": xdm_like | json_values,  # request-level XDM (mobile SDKs), merged into every event
})


@FUZZ
@given(edge_like)
def test_edge_requests_with_the_fields_that_matter(document: dict) -> None:
    decodes_or_refuses(lambda: build(json.dumps(document).encode()))


protobuf_fields = st.lists(st.one_of(
    st.builds(device_id._bytes_field, st.sampled_from([1, 10, 15, 2]), st.binary(max_size=40)),
    st.builds(device_id._varint_field, st.integers(0, 20), st.integers(0, 2**70)),
    st.binary(max_size=4),
), max_size=6).map(b"".join)


@FUZZ
@given(protobuf_fields | st.binary(max_size=80), st.text(max_size=60))
def test_device_id_values_never_raise(raw: bytes, text: str) -> None:
    import base64

    for value in (base64.urlsafe_b64encode(raw).decode().rstrip("="), text, text + "=" * 3):
        found = device_id.decode(value, b"k")
        assert found is None or device_id.is_ecid(found.ecid)


LIMITED = Shape(Limits(max_depth=5, max_string_bytes=12))


def depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def longest(value: object, ensure_ascii: bool) -> int:
    if isinstance(value, dict):
        return max([longest(k, ensure_ascii) for k in value] + [longest(v, ensure_ascii) for v in value.values()], default=0)
    if isinstance(value, list):
        return max((longest(v, ensure_ascii) for v in value), default=0)
    if isinstance(value, str):
        return len(json.dumps(value, ensure_ascii=ensure_ascii).encode()) - 2
    return 0


def unstorable_key(value: object) -> bool:
    """A field name with a quote, backslash or control character: refused (`gateway.limits.storable`)."""
    if isinstance(value, dict):
        return any(any(c in '"\\' or ord(c) < 0x20 for c in k) or unstorable_key(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable_key(v) for v in value)
    return False


deep_json = st.recursive(
    st.none() | st.integers() | st.text(alphabet=st.sampled_from('ab"\\[]{}\u00e9\n'), max_size=16),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet="k[{\"", max_size=4), inner, max_size=3),
    max_leaves=40,
)


@FUZZ
@given(deep_json, st.booleans())
def test_the_shape_check_agrees_with_the_parsed_document(document: object, ensure_ascii: bool) -> None:
    """Brackets and quotes inside strings, escapes, non-ASCII: the raw-bytes check sees what a parser sees."""
    raw = json.dumps(document, ensure_ascii=ensure_ascii).encode()
    expected = (Reason.string_too_long if longest(document, ensure_ascii) > 12
                else Reason.too_deep if depth(document) > 5
                else Reason.invalid_message if unstorable_key(document) else None)
    try:
        LIMITED.check(raw)
        found = None
    except Rejected as rejected:
        found = rejected.reason
    assert found is expected


@FUZZ
@given(st.text(max_size=200))
def test_invalid_utf8_duplicate_keys_and_deep_documents(text: str) -> None:
    for data in (b'{"header": {"a": 1, "a": 2}, "body": ' + text.encode() + b"}",
                 b"\xff\xfe" + text.encode(), b"[" * 3000 + text.encode()):
        decodes_or_refuses(lambda data=data: (shape(CONFIG).check(data), decode_message(data, CONFIG, DEMO, 0)))
