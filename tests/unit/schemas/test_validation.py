"""Schema validation without processes: the standard schemas accept what our senders send, the
two compiled forms (typed fast path, collecting walk) agree, and every kind of violation is
reported at its path."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.decode import decode_message
from gateway.schema_check import descriptor_identities
from inlet.config import Dataset, load
from inlet.demo import Demo
from inlet.schemas.failures import SchemaFailure
from inlet.schemas.registry import Registry
from inlet.schemas.standard import default_schema_id
from inlet.schemas.validate import Validator, walk
from inlet.xdm import Identity
from tests.harness import event

CONFIG = load({})
DEMO = CONFIG.connection("demo")
assert DEMO is not None
REGISTRY = Registry("demo")
EVENTS = REGISTRY.validator("prod", default_schema_id("demo", "experienceevent"))
PROFILES = REGISTRY.validator("prod", default_schema_id("demo", "profile"))
assert EVENTS is not None and PROFILES is not None


def check(validator: Validator, doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v.path, v.code) for v in validator.check(msgspec.json.encode(doc))]


def test_the_default_event_schema_takes_the_tests_and_the_tags_events() -> None:
    assert check(EVENTS, event()) == []
    tag = {"_id": "1", "timestamp": "2026-11-23T10:00:00.000Z", "eventType": "web.webinteraction.linkClicks",
           "web": {"webPageDetails": {"URL": "https://shop.example/", "name": "Shop"}, "webReferrer": {"URL": ""}},
           "environment": {"type": "browser", "browserDetails": {"viewportWidth": 1280, "viewportHeight": 720}},
           "implementationDetails": {"name": "https://github.com/inlet/tag", "version": "0.1.0", "environment": "browser"}}
    assert check(EVENTS, tag) == []  # tag/src/xdm.js `event()`


class CapturingDemo(Demo):
    """The demo's traffic, each request handed to the gateway's own decode path (streaming) or
    the event validator (Edge) instead of the network."""

    def __init__(self) -> None:
        super().__init__("http://unused", "token", 7, CONFIG.org, "demo", "demo")
        self.checked = 0

    def _post(self, path: str, body: Any, headers: dict[str, str] | None = None, method: str = "POST") -> Any:
        if path.startswith("/collection/"):
            message = decode_message(json.dumps(body).encode(), CONFIG, DEMO, 1)
            assert not isinstance(message, SchemaFailure), (body, message.violations)
            self.checked += 1
        elif path.startswith("/ee/"):
            for item in body["events"]:
                xdm = {"timestamp": "2026-11-23T10:00:00Z", **item["xdm"]}
                assert check(EVENTS, xdm) == [], xdm
                self.checked += 1
        return {"computedAttributes": [{"name": "purchases30d"}]}


def test_the_demo_traffic_conforms_to_the_default_schemas() -> None:
    demo = CapturingDemo()
    demo.accounts()
    demo.run(6, progress=False)
    assert demo.checked > 30


@pytest.mark.parametrize(("doc", "expected"), [
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00"}, [("/timestamp", "format")]),  # no offset
    ({"timestamp": "2026-11-23T10:00:00Z"}, [("/_id", "required")]),
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00Z", "eventType": 3}, [("/eventType", "type")]),
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00Z", "device": {"screenOrientation": "diagonal"}},
     [("/device/screenOrientation", "enum")]),
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00Z", "implementationDetails": {"name": "not a uri"}},
     [("/implementationDetails/name", "format")]),
    ({"_id": "", "timestamp": "2026-11-23T10:00:00Z"}, [("/_id", "minLength")]),
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00Z", "placeContext": {"localTimezoneOffset": 9999}},
     [("/placeContext/localTimezoneOffset", "maximum")]),
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00Z", "productListItems": [{"quantity": -1}, {"quantity": 1.5}]},
     [("/productListItems/0/quantity", "minimum"), ("/productListItems/1/quantity", "type")]),
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00Z", "identityMap": {"Email": [{"id": "x" * 1025}]}},
     [("/identityMap/Email/0/id", "maxLength")]),
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00Z", "web": {"webPageDetails": {"secret": 1}}},
     [("/web/webPageDetails/secret", "undeclared")]),
    ({"_id": "e", "timestamp": "2026-11-23T10:00:00Z", "web": None, "eventType": None}, []),  # null is absent
])
def test_each_kind_of_violation_is_reported_at_its_path(doc: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert check(EVENTS, doc) == expected


def test_profile_formats_email_and_date() -> None:
    assert check(PROFILES, {"personalEmail": {"address": "not-an-email"}, "person": {"birthDate": "14/03/1969"}}) == [
        ("/personalEmail/address", "format"), ("/person/birthDate", "format")]  # document order
    assert check(PROFILES, {"personalEmail": {"address": "a@b.example"}, "person": {"birthDate": "1969-03-14"}}) == []


LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                 st.text(max_size=8), st.sampled_from(["2026-11-23T10:00:00Z", "download", "EUR", "a@b.example",
                                                       "https://x.example/", "portrait"]))
PATHS = [("eventType",), ("web", "webInteraction", "type"), ("web", "webPageDetails", "pageViews", "value"),
         ("commerce", "order", "priceTotal"), ("commerce", "order", "currencyCode"), ("device", "screenWidth"),
         ("device", "screenOrientation"), ("placeContext", "localTime"), ("implementationDetails", "name"),
         ("timestamp",), ("_id",), ("identityMap", "Email"), ("nope",), ("web", "nope")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), LEAF), max_size=4))
def test_the_typed_fast_path_and_the_walk_agree(edits: list[tuple[tuple[str, ...], Any]]) -> None:
    """The fast path decides valid/invalid; the walk explains. They must never disagree, or a
    valid message could be refused (or an invalid one pass) depending on the path taken."""
    doc: dict[str, Any] = event()
    for path, value in edits:
        node = doc
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[path[-1]] = value
    raw = msgspec.json.encode(doc)
    fast_ok = True
    try:
        EVENTS._decode(raw)
    except msgspec.ValidationError:
        fast_ok = False
    assert fast_ok == (walk(EVENTS.schema, doc, "") == []), doc


def test_a_tenant_field_group_resolves_into_its_schema_and_the_union() -> None:
    registry = Registry("demo")
    group = {"$id": "https://ns.adobe.com/demo/mixins/loyalty", "title": "x", "type": "object",
             "definitions": {"f": {"properties": {"_demo": {"type": "object", "properties": {
                 "loyaltyId": {"type": "string", "maxLength": 8}}}}}},
             "allOf": [{"$ref": "#/definitions/f"}]}
    registry.put_local("prod", "fieldgroups", group["$id"], group)
    schema = {"$id": "https://ns.adobe.com/demo/schemas/s1", "meta:altId": "_demo.schemas.s1", "type": "object",
              "title": "s1", "meta:immutableTags": ["union"], "meta:resourceType": "schemas",
              "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"}, {"$ref": group["$id"]}]}
    registry.put_local("prod", "schemas", schema["$id"], schema)
    resolved = registry.resolve("prod", schema)
    assert resolved["meta:class"] == "https://ns.adobe.com/xdm/context/profile"
    assert resolved["properties"]["_demo"]["additionalProperties"] is False
    validator = registry.validator("prod", "_demo.schemas.s1")
    assert validator is not None
    assert validator.check(b'{"_demo": {"loyaltyId": "123456789"}}')[0].path == "/_demo/loyaltyId"
    union = registry.union("prod", "_xdm.context.profile")
    assert union is not None and "_demo" in union["properties"] and "personalEmail" in union["properties"]


def test_identity_descriptors_identify_a_message_without_identity_map() -> None:
    registry = Registry("demo")
    descriptor = {"@id": "d1", "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": "https://ns.adobe.com/demo/schemas/profile",
                  "xdm:sourceProperty": "/personalEmail/address", "xdm:namespace": "email", "xdm:isPrimary": True}
    registry.put_local("prod", "descriptors", "d1", descriptor)
    assert registry.identity_fields("prod", "https://ns.adobe.com/demo/schemas/profile")[0].path == (
        "personalEmail", "address")
    import inlet.schemas.registry as module
    saved = module._registries.get("demo")
    module._registries["demo"] = registry
    try:
        dataset = Dataset(id="p", xdm_class="profile", schema="https://ns.adobe.com/demo/schemas/profile")
        ids = descriptor_identities(CONFIG, dataset, msgspec.Raw(b'{"personalEmail": {"address": " Ann@X.example "}}'),
                                    [Identity("ECID", "123")])
        assert ids == [Identity("Email", "ann@x.example", True), Identity("ECID", "123")]
    finally:
        if saved is not None:
            module._registries["demo"] = saved
