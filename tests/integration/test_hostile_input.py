"""Hostile input against the real gateway process: every case gets a clear 4xx JSON answer,
and the process keeps serving (the harness fails the test if it logged an ERROR)."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import System, event, message

ENDPOINTS = ["/collection/demo", "/collection/batch/demo", "/ee/v1/interact?configId=demo",
             "/ee/v1/collect?configId=demo", "/ee/v2/interact?configId=demo"]
CONTENT_TYPES = ["application/json", "text/plain", "application/xml", "multipart/form-data", "", "application/vnd.adobe.xed+json"]


def assert_clear_refusal(response, body: bytes) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code < 500, (response.status_code, body[:200], response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text[:200]
        document = response.json()
        assert "Traceback" not in response.text
        assert document.get("code") or document.get("errors"), document


@pytest.mark.components("gateway", "profile")
def test_hostile_bodies_get_4xx_and_the_gateway_keeps_serving(system: System) -> None:
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.sampled_from(ENDPOINTS), st.sampled_from(CONTENT_TYPES), st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=500).map(str.encode),
        st.builds(lambda d: b"[" * d + b"]" * d, st.integers(0, 5000)),
        st.builds(lambda n: b'{"events": [{"xdm": {"a": "' + b"x" * n + b'"}}]}', st.integers(60000, 200000)),
        st.just(b'{"header": {"imsOrgId": 1, "imsOrgId": "DEMO@AdobeOrg"}}'),
        st.just(b'{"events": [{"xdm": {"_id": "\xc3\x28"}}]}'),
        st.just(gzip.compress(b" " * 10_000_000)),
        st.builds(lambda n: b'{"events": [{"xdm": {"a": "' + b'\\"' * n, st.integers(1, 120_000)),
    ))
    def case(path: str, content_type: str, body: bytes) -> None:
        headers = {"content-type": content_type} if content_type else {}
        if body[:2] == b"\x1f\x8b":
            headers["content-encoding"] = "gzip"
        assert_clear_refusal(system.http.post(path, content=body, headers=headers), body)

    case()
    assert system.post_event().status_code == 200
    assert system.http.get("/healthz").status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)


@pytest.mark.components("gateway", "profile")
def test_wrong_types_and_unknown_fields_in_real_envelopes(system: System) -> None:
    """A valid message with one field replaced by a value of any type, or an unknown field added."""
    good = message("demo-events", event(event_id="hostile-template"))
    paths = [("header",), ("header", "imsOrgId"), ("header", "datasetId"), ("header", "schemaRef"),
             ("header", "operations"), ("body",), ("body", "xdmEntity"), ("body", "xdmEntity", "_id"),
             ("body", "xdmEntity", "timestamp"), ("body", "xdmEntity", "identityMap"),
             ("body", "xdmEntity", "identityMap", "Email"), ("header", "unknownField"), ("unknownTop",)]

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.sampled_from(paths), json_values, st.booleans())
    def case(path: tuple[str, ...], value: object, batch: bool) -> None:
        document = json.loads(json.dumps(good))
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        if batch:
            response = system.http.post("/collection/batch/demo", json={"messages": [document, good]})
            assert response.status_code == 207, response.text
            first, second = response.json()["responses"]
            assert "xactionId" in second  # one bad message fails alone
            assert "xactionId" in first or (400 <= first["statusCode"] < 500 and first["code"]), first
        else:
            assert_clear_refusal(system.http.post("/collection/demo", json=document), json.dumps(document).encode())

    case()
    assert system.post_event().status_code == 200


@pytest.mark.components("gateway")
def test_pathological_bodies_are_refused_quickly(system: System) -> None:
    """Bodies built to make a scanner or parser slow: each answered in well under a second."""
    bodies = {
        "/ee/v1/interact?configId=demo": [
            b'{"events": [{"xdm": {"a": "' + b'\\"' * 120_000,  # a quadratic tokenizer took minutes
            b"[" * 250_000, b'{"events": [' + b"[]," * 80_000 + b"[]]}", b'{"a": "\\u' + b"0" * 200_000,
        ],
        "/collection/demo": [
            b'{"header": "' + b'\\"' * 500_000, b"[" * 1_000_000,
            json.dumps(message("demo-events", event(note=["x"] * 150_000))).encode(),
        ],
        "/collection/batch/demo": [b'{"messages": [' + b'"\\"' * 300_000 + b"]}",
                                   b'{"messages": [' + b"[" * 2_000_000 + b"]}"],
    }
    for path, cases in bodies.items():
        for body in cases:
            started = time.monotonic()
            response = system.http.post(path, content=body, headers={"content-type": "application/json"})
            assert time.monotonic() - started < 2.0, (path, body[:40])
            assert_clear_refusal(response, body)
    assert system.post_event().status_code == 200
