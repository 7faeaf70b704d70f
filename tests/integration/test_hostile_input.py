"""Hostile input against the real gateway process: every case gets a clear 4xx JSON answer,
and the process keeps serving (the harness fails the test if it logged an ERROR)."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import System

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
    ))
    def case(path: str, content_type: str, body: bytes) -> None:
        headers = {"content-type": content_type} if content_type else {}
        if body[:2] == b"\x1f\x8b":
            headers["content-encoding"] = "gzip"
        assert_clear_refusal(system.http.post(path, content=body, headers=headers), body)

    case()
    assert system.post_event().status_code == 200
    assert system.http.get("/healthz").status_code == 200
