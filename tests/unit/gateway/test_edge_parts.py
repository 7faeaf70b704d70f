from typing import Any

import msgspec
import pytest
from starlette.requests import Request

from gateway import cors, enrich, user_agent
from gateway.edge_request import (
    NO_DATA,
    EdgeEvent,
    EdgeRequest,
    claimed_device_id,
    consent_choice,
    decode,
    merge_request_xdm,
)
from inlet.config import Datastream, Edge
from inlet.outcomes import Rejected

CHROME_LINUX = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
EDGE_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91")
ANDROID_TABLET = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (CHROME_LINUX, ("Chrome", "156.0.0.0", "Linux", "desktop")),
        (SAFARI_IPHONE, ("Safari", "17.4", "iOS", "mobile")),
        (EDGE_WINDOWS, ("Edge", "120.0.2210.91", "Windows", "desktop")),
        (ANDROID_TABLET, ("Chrome", "120.0", "Android", "tablet")),
        ("curl/8.0", ("curl", "8.0", "", "")),  # uap-core names the application; no device
        ("", ("", "", "", "")),
    ],
)
def test_user_agents(agent: str, expected: tuple[str, str, str, str]) -> None:
    parsed = user_agent.parse(agent)
    assert (parsed.browser, parsed.browser_version, parsed.os, parsed.device_type) == expected


def test_cors_origins_with_port_wildcards() -> None:
    stream = Datastream(id="d", origins=["http://localhost:*", "https://shop.example"])
    assert cors.origin_allowed("http://localhost:5173", stream)
    assert cors.origin_allowed("http://localhost", stream)
    assert cors.origin_allowed("https://shop.example", stream)
    assert not cors.origin_allowed("https://shop.example.evil", stream)
    assert not cors.origin_allowed("http://localhost:80x", stream)
    assert not cors.origin_allowed("http://localhost.evil:1", stream)
    assert not cors.origin_allowed("null", stream)


def request_from(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope: dict[str, Any] = {"type": "http", "headers": headers, "client": (peer, 1234), "method": "POST", "path": "/"}
    return Request(scope)


def test_client_address_trusts_the_header_only_from_proxies() -> None:
    address = enrich.ClientAddress(Edge(trusted_proxies=["127.0.0.1", "10.0.0.0/8"]))
    assert address(request_from("203.0.113.9", "1.2.3.4")) == "203.0.113.9"
    assert address(request_from("127.0.0.1", "1.2.3.4")) == "1.2.3.4"
    assert address(request_from("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1")) == "1.2.3.4"
    assert address(request_from("127.0.0.1", "garbage")) == "127.0.0.1"
    assert address(request_from("127.0.0.1")) == "127.0.0.1"


def test_enrichment_overrides_client_claims_and_adds_the_device_id() -> None:
    xdm: dict[str, Any] = {"environment": {"ipV4": "9.9.9.9", "browserDetails": {"viewportWidth": 5}},
                           "identityMap": {"Email": [{"id": "a@b.c", "primary": True}]}}
    enrich.enrich(xdm, SAFARI_IPHONE, user_agent.parse(SAFARI_IPHONE), "2001:db8::1")
    enrich.add_device_id(xdm, "1" * 38)
    enrich.add_device_id(xdm, "1" * 38)
    assert xdm["environment"]["ipV6"] == "2001:db8::1" and "ipV4" not in xdm["environment"]
    assert xdm["environment"]["browserDetails"]["viewportWidth"] == 5
    assert xdm["environment"]["browserDetails"]["name"] == "Safari"
    assert xdm["device"]["type"] == "mobile"
    assert xdm["identityMap"]["ECID"] == [{"id": "1" * 38, "authenticatedState": "ambiguous", "primary": False}]


def test_consent_standards() -> None:
    adobe2 = decode(b'{"consent": [{"standard": "Adobe", "version": "2.0", "value": {"collect": {"val": "n"}}}]}')
    adobe1 = decode(b'{"consent": [{"standard": "Adobe", "version": "1.0", "value": {"general": "in"}}]}')
    assert consent_choice(adobe2) == "out" and consent_choice(adobe1) == "in"
    assert consent_choice(EdgeRequest()) is None


def test_v2_single_event_and_bad_bodies() -> None:
    v2 = decode(b'{"event": {"xdm": {"eventType": "x"}}}')
    assert len(v2.all_events) == 1 and isinstance(v2.all_events[0], EdgeEvent)
    assert decode(b"").all_events == []
    for bad in [b"{", b'{"events": {}}', b'{"events": [{"xdm": []}]}']:
        with pytest.raises(Rejected):
            decode(bad)


def test_request_level_xdm_merges_into_each_event_and_the_event_wins() -> None:
    """Mobile SDKs send the app's identityMap and implementationDetails at the request level
    (aepsdk-edge-android EdgeFunctionalTests: request `xdm`); the Edge merges it into events."""
    request_xdm = {"identityMap": {"ECID": [{"id": "1" * 38, "primary": False}]},
                   "implementationDetails": {"environment": "app", "name": "mobilesdk"}, "shared": {"a": 1, "b": 2}}
    event_xdm = {"identityMap": {"ECID": [{"id": "1" * 38, "primary": True}], "Email": [{"id": "a@b.c"}]},
                 "shared": {"b": 3}, "eventType": "x"}
    merged = merge_request_xdm(request_xdm, event_xdm)
    assert merged["implementationDetails"] == {"environment": "app", "name": "mobilesdk"}
    assert merged["shared"] == {"a": 1, "b": 3} and merged["eventType"] == "x"
    assert merged["identityMap"] == {"ECID": [{"id": "1" * 38, "primary": True}], "Email": [{"id": "a@b.c"}]}
    combined = merge_request_xdm(request_xdm, {"identityMap": {"ECID": [{"id": "2" * 38}]}})
    assert [e["id"] for e in combined["identityMap"]["ECID"]] == ["2" * 38, "1" * 38]
    assert request_xdm["shared"] == {"a": 1, "b": 2}  # the request's own XDM is untouched


def test_data_is_any_json_and_streaming_is_read_from_meta() -> None:
    for data in (b'{"a": {"b": [1, "x", true]}}', b'["arrayElem1", 2, true]', b'"text"', b"3.5", b"null"):
        (event,) = decode(b'{"events": [{"xdm": {}, "data": ' + data + b"}]}").all_events
        assert msgspec.json.decode(event.data) == msgspec.json.decode(data)
    assert decode(b'{"events": [{"xdm": {}}]}').all_events[0].data == NO_DATA
    streamed = decode(b'{"meta": {"konductorConfig": {"streaming": {"enabled": true, "recordSeparator": "\\u0000", "lineFeed": "\\n"}}}}')
    assert streamed.streaming is not None and (streamed.streaming.recordSeparator, streamed.streaming.lineFeed) == ("\0", "\n")
    assert decode(b'{"meta": {"konductorConfig": {"streaming": {"enabled": false, "lineFeed": "\\n"}}}}').streaming is None
    assert decode(b"{}").streaming is None


def test_claimed_device_ids_come_from_the_request_xdm_the_consent_map_or_an_event() -> None:
    ecid = "0" + "7" * 37
    assert claimed_device_id(decode(b'{"xdm": {"identityMap": {"ECID": [{"id": "%s"}]}}}' % ecid.encode())) == ecid
    assert claimed_device_id(decode(b'{"identityMap": {"ECID": [{"id": "%s"}]}}' % ecid.encode())) == ecid
    assert claimed_device_id(decode(b'{"events": [{"xdm": {"identityMap": {"ECID": [{"id": "%s"}]}}}]}' % ecid.encode())) == ecid
    assert claimed_device_id(decode(b'{"xdm": {"identityMap": {"ECID": [{"id": "not-an-ecid"}]}}}')) is None


def test_merging_odd_identity_entries_never_raises() -> None:
    odd = {"identityMap": {"ECID": [{"id": {}}, "x", {"id": ["a"]}]}}
    merged = merge_request_xdm(odd, {"identityMap": {"ECID": [{"id": {"k": 1}}, 3]}})
    assert len(merged["identityMap"]["ECID"]) == 5
