"""Fuzzing the decoders: any input either decodes or is refused with a `Rejected`, never
anything else (no crash, no stack trace reaches a client)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import device_id, edge_request
from gateway.decode import decode_batch, decode_message, shape
from inlet.config import load
from inlet.outcomes import Rejected

CONFIG = load({})
DEMO = CONFIG.connection("demo")
assert DEMO is not None
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
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


def decodes_or_refuses(call) -> None:  # type: ignore[no-untyped-def]
    try:
        call()
    except Rejected as rejected:
        assert rejected.status in (400, 403, 404, 413, 415) and rejected.detail


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    decodes_or_refuses(lambda: decode_message(data, CONFIG, DEMO, 0))
    decodes_or_refuses(lambda: decode_batch(data))
    decodes_or_refuses(lambda: edge_request.decode(data))
    device_id.decode(data.decode("latin-1"), b"k")  # must not raise


@FUZZ
@given(envelope_like)
def test_structured_but_wrong_messages(document: dict) -> None:
    data = json.dumps(document).encode()
    decodes_or_refuses(lambda: decode_message(data, CONFIG, DEMO, 0))


@FUZZ
@given(st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values, max_size=3))
def test_edge_bodies_build_events_or_refuse(events: list, extra: dict) -> None:
    body = json.dumps({"events": [{"xdm": e} if isinstance(e, dict) else e for e in events], **extra}).encode()

    def build() -> None:
        request = edge_request.decode(body)
        from gateway.user_agent import parse

        dataset = CONFIG.dataset("prod", "demo-events")
        assert dataset is not None
        edge_request.build_events(request, "r", CONFIG, dataset, CONFIG.org, "demo", "1" * 38, "", parse(""), "", 0)

    decodes_or_refuses(build)


@FUZZ
@given(st.text(max_size=200))
def test_invalid_utf8_duplicate_keys_and_deep_documents(text: str) -> None:
    for data in (b'{"header": {"a": 1, "a": 2}, "body": ' + text.encode() + b"}",
                 b"\xff\xfe" + text.encode(), b"[" * 3000 + text.encode()):
        decodes_or_refuses(lambda: (shape(CONFIG).check(data), decode_message(data, CONFIG, DEMO, 0)))
