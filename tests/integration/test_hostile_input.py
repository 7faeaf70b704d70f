"""Hostile input against the real gateway process: every case gets its one right answer (the
exact status and error code, as a JSON problem), and the process keeps serving (the harness
fails the test if it logged an ERROR). "Any status below 500" would pass a 2xx for data the
gateway should have refused, so no case accepts a range."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inlet.config import Limits
from tests.harness import System, event, message

ENDPOINTS = ["/collection/demo", "/collection/batch/demo", "/ee/v1/interact?configId=demo",
             "/ee/v1/collect?configId=demo", "/ee/v2/interact?configId=demo"]
CONTENT_TYPES = ["application/json", "text/plain", "application/xml", "multipart/form-data", "", "application/vnd.adobe.xed+json"]
LIMITS = Limits()  # the harness config keeps the default shape limits
ORG = "DEMO@AdobeOrg"


def family(path: str) -> str:
    return "edge" if path.startswith("/ee/") else "batch" if path.startswith("/collection/batch/") else "single"


def assert_refused(response: httpx.Response, status: int, code: str, what: object) -> None:
    """Exactly this status and error code, as a JSON problem (or an Edge error list), with no
    stack trace."""
    assert response.status_code == status, (what, status, code, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    assert "Traceback" not in response.text
    document = response.json()
    if "errors" in document:  # the Edge Network's answer: the problem is the first error
        first = document["errors"][0]
        assert (first["status"], first["code"]) == (status, code), (what, document)
        assert document["handle"] == []
    else:
        assert (document["status"], document["code"]) == (status, code), (what, document)
        assert document["title"] and document["detail"]


# Bodies by kind; each kind has a known answer per endpoint family (`expected`).
not_json = st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(str.encode)).map(lambda b: b"\x00" + b)
json_not_object = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                            st.text(max_size=50), st.lists(st.integers(), max_size=5)).map(lambda v: json.dumps(v).encode())
BAD_UTF8 = (b'{"events": [{"xdm": {"_id": "\xc3\x28"}}], '
            + json.dumps(message("demo-events", event(event_id="__BAD__")))[1:].encode().replace(b"__BAD__", b"\xc3\x28"))
DUPLICATE_KEYS = b'{"header": {"imsOrgId": 1, "imsOrgId": "DEMO@AdobeOrg"}, "events": 1, "events": []}'
GZIP_BOMB = gzip.compress(b" " * 10_000_000)


def hostile_bodies() -> st.SearchStrategy[tuple[str, int, bytes]]:
    """(kind, size parameter, body)."""
    return st.one_of(
        not_json.map(lambda b: ("not_json", 0, b)),
        json_not_object.map(lambda b: ("json_not_object", 0, b)),
        st.integers(1, 5000).map(lambda d: ("brackets", d, b"[" * d + b"]" * d)),
        st.integers(LIMITS.max_string_bytes + 1, 200_000).map(
            lambda n: ("long_string", n, b'{"events": [{"xdm": {"a": "' + b"x" * n + b'"}}]}')),
        st.integers(1, 120_000).map(lambda n: ("unterminated", n, b'{"events": [{"xdm": {"a": "' + b'\\"' * n)),
        st.sampled_from([("duplicate_keys", 0, DUPLICATE_KEYS), ("bad_utf8", 0, BAD_UTF8), ("gzip_bomb", 0, GZIP_BOMB)]),
    )


def expected(path: str, content_type: str, kind: str, size: int) -> tuple[int, str]:
    """The one right answer. The server endpoints take JSON media types only; the Edge takes
    any (browsers send text/plain beacons). Batches decode their envelope (`messages`) before
    the shape of each message is checked."""
    where = family(path)
    if where != "edge" and content_type in ("application/xml", "multipart/form-data"):
        return 415, "unsupported_media_type"
    if kind == "not_json":
        return 400, "malformed_json"
    if kind == "json_not_object":
        return 400, "invalid_message"
    if kind == "brackets":
        return (400, "too_deep") if where != "batch" and size > LIMITS.max_depth else (400, "invalid_message")
    if kind == "long_string":
        return (400, "missing_field") if where == "batch" else (400, "string_too_long")
    if kind == "unterminated":  # each `\"` is two bytes of the string
        too_long = where != "batch" and 2 * size > LIMITS.max_string_bytes
        return (400, "string_too_long") if too_long else (400, "malformed_json")
    if kind == "duplicate_keys":  # the first value of a key is checked
        return (400, "missing_field") if where == "batch" else (400, "invalid_message")
    if kind == "bad_utf8":
        return (400, "missing_field") if where == "batch" else (400, "malformed_json")
    assert kind == "gzip_bomb"
    return {"single": (413, "message_too_large"), "batch": (400, "malformed_json"),  # 10 MB of spaces fits a batch
            "edge": (413, "request_too_large")}[where]


@pytest.mark.components("gateway", "profile")
def test_hostile_bodies_get_their_exact_refusal_and_the_gateway_keeps_serving(system: System) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.sampled_from(ENDPOINTS), st.sampled_from(CONTENT_TYPES), hostile_bodies())
    def case(path: str, content_type: str, hostile: tuple[str, int, bytes]) -> None:
        kind, size, body = hostile
        headers = {"content-type": content_type} if content_type else {}
        if kind == "gzip_bomb":
            headers["content-encoding"] = "gzip"
        status, code = expected(path, content_type, kind, size)
        assert_refused(system.http.post(path, content=body, headers=headers), status, code, (path, content_type, kind, size))

    case()
    assert system.post_event().status_code == 200
    assert system.http.get("/healthz").status_code == 200


def json_values(keys: st.SearchStrategy[str] = st.text(alphabet="xyz", max_size=6)) -> st.SearchStrategy[Any]:
    """Any JSON value; object keys never collide with a field the envelope knows."""
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=12,
    )


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
objects = st.dictionaries(st.text(alphabet="xyz", max_size=6), json_values(), max_size=3)
non_objects = scalars | st.text(max_size=12) | st.lists(json_values(), max_size=3)
non_strings = scalars.filter(lambda v: v is not None) | st.lists(json_values(), max_size=3) | objects
letters = st.text(alphabet="abcdefghij", min_size=1, max_size=12)
# (path in the message, values put there, the answer): each value is wrong in a known way.
WRONG = [
    (("header",), non_objects, "invalid_message"),
    (("header",), objects, "missing_field"),  # no datasetId
    (("header", "imsOrgId"), non_strings | st.none(), "invalid_message"),
    (("header", "imsOrgId"), letters, "org_mismatch"),
    (("header", "datasetId"), non_strings | st.none(), "invalid_message"),
    (("header", "datasetId"), letters, "unknown_dataset"),
    (("header", "schemaRef"), non_objects, "invalid_message"),
    (("header", "schemaRef"), objects, "missing_field"),  # no id
    (("header", "operations"), non_objects.filter(lambda v: v is not None), "invalid_message"),
    (("body",), non_objects, "invalid_message"),
    (("body",), objects, "missing_field"),  # no xdmEntity
    (("body", "xdmEntity"), non_objects, "invalid_message"),
    (("body", "xdmEntity"), objects, "missing_identity"),
    (("body", "xdmEntity", "_id"), st.sampled_from([None, ""]), "missing_field"),
    (("body", "xdmEntity", "_id"), non_strings, "invalid_message"),
    (("body", "xdmEntity", "timestamp"), st.sampled_from([None, ""]), "missing_field"),
    (("body", "xdmEntity", "timestamp"), non_strings, "invalid_message"),
    (("body", "xdmEntity", "timestamp"), letters, "invalid_timestamp"),
    (("body", "xdmEntity", "identityMap"), non_objects, "invalid_message"),
    (("body", "xdmEntity", "identityMap"), st.just({}), "missing_identity"),
    (("body", "xdmEntity", "identityMap", "Email"), st.just([]), "missing_identity"),
    (("body", "xdmEntity", "identityMap", "Email"), non_objects.filter(lambda v: not isinstance(v, list))
     | st.lists(scalars | st.text(max_size=12), min_size=1, max_size=3), "invalid_message"),
]


@pytest.mark.components("gateway", "profile")
def test_wrong_types_and_values_in_real_envelopes_get_their_exact_refusal(system: System) -> None:
    """A valid message with one field replaced by a value that is wrong in a known way, alone
    or in a batch beside a good message (which is still accepted: one bad message fails alone).
    Unknown fields are ignored, as AEP's streaming API does: the message is accepted."""
    good = message("demo-events", event(event_id="hostile-template"))

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.sampled_from(WRONG).flatmap(lambda w: st.tuples(st.just(w[0]), w[1], st.just(w[2]))), st.booleans())
    def case(wrong: tuple[tuple[str, ...], Any, str], batch: bool) -> None:
        path, value, code = wrong
        document = json.loads(json.dumps(good))
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        what = (path, value, batch)
        if batch:
            response = system.http.post("/collection/batch/demo", json={"messages": [document, good]})
            assert response.status_code == 207, response.text
            first, second = response.json()["responses"]
            assert "xactionId" in second, what
            assert (first.get("statusCode"), first.get("code")) == (400, code), (what, first)
        else:
            assert_refused(system.http.post("/collection/demo", json=document), 400, code, what)

    case()

    for unknown in (("header", "xyz"), ("xyz",)):
        document = json.loads(json.dumps(good))
        (document["header"] if len(unknown) == 2 else document)[unknown[-1]] = {"any": [1, "thing"]}
        accepted = system.http.post("/collection/demo", json=document)
        assert accepted.status_code == 200 and accepted.json()["xactionId"], accepted.text
    assert system.post_event().status_code == 200


@pytest.mark.components("gateway")
def test_pathological_bodies_are_refused_quickly(system: System) -> None:
    """Bodies built to make a scanner or parser slow, each refused (the exact reason) in well
    under a second. The big array ends in a nesting too deep: the whole 750 KB must be
    scanned before the one violation shows, so a scan that is not linear is caught."""
    too_deep: list[Any] = []
    for _ in range(LIMITS.max_depth + 5):
        too_deep = [too_deep]
    bodies: dict[str, list[tuple[bytes, int, str]]] = {
        "/ee/v1/interact?configId=demo": [
            (b'{"events": [{"xdm": {"a": "' + b'\\"' * 120_000, 400, "string_too_long"),  # a quadratic tokenizer took minutes
            (b"[" * 250_000, 400, "too_deep"),
            (b'{"events": [' + b"[]," * 80_000 + b"[]]}", 400, "invalid_message"),
            (b'{"a": "\\u' + b"0" * 200_000, 400, "string_too_long"),
        ],
        "/collection/demo": [
            (b'{"header": "' + b'\\"' * 500_000, 400, "string_too_long"),
            (b"[" * 1_000_000, 400, "too_deep"),
            (json.dumps(message("demo-events", event(note=["x"] * 150_000 + [too_deep]))).encode(), 400, "too_deep"),
        ],
        "/collection/batch/demo": [
            (b'{"messages": [' + b'"\\"' * 300_000 + b"]}", 400, "malformed_json"),
            (b'{"messages": [' + b"[" * 2_000_000 + b"]}", 400, "too_deep"),
        ],
    }
    for path, cases in bodies.items():
        for body, status, code in cases:
            started = time.monotonic()
            response = system.http.post(path, content=body, headers={"content-type": "application/json"})
            assert time.monotonic() - started < 2.0, (path, body[:40])
            assert_refused(response, status, code, (path, body[:40]))
    assert system.post_event().status_code == 200
