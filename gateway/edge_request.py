"""The Edge Network request (`/ee/v1/interact` and friends) as Structs, and its bus events.

Browser events arrive without `_id` (Adobe's edge assigns it), so we derive one from the
request id and the event's position: a retried request yields the same ids and JetStream's
dedupe stores it once. XDM from browsers is decoded to a mapping because the gateway must add
to it (request-level XDM, ECID, enrichment); the result is encoded once and travels as raw
bytes from then on. An event's free-form `data` is never decoded: its bytes ride beside the
XDM to the bus (`Event.data`), the lake and the profile timeline.
"""

from __future__ import annotations

import copy
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from gateway import enrich
from gateway.decode import decode_json, event_id, parse_timestamp_ms
from gateway.device_id import is_ecid
from gateway.schema_check import check_schema, descriptor_identities
from gateway.user_agent import UserAgent
from inlet.config import Config, Dataset
from inlet.dataprep.edge import map_data
from inlet.messages import Event
from inlet.outcomes import Reason, Rejected
from inlet.schemas.failures import SchemaFailure
from inlet.xdm import IdentityItem, XdmHead, identities, namespaces

_ID_NAMESPACE = uuid.UUID("6f1d4d0c-7a57-4b8e-9a8e-1e7c0de1e7ad")


class StateEntry(msgspec.Struct, kw_only=True):
    key: str
    value: str = ""


class State(msgspec.Struct, kw_only=True):
    domain: str = ""
    cookiesEnabled: bool = True
    entries: list[StateEntry] = []


class Streaming(msgspec.Struct, kw_only=True):
    """How the mobile SDKs ask for the answer: each JSON record framed by `recordSeparator`
    before and `lineFeed` after (aepsdk-edge-android `RequestBuilder`, `EdgeNetworkService`)."""

    enabled: bool = False
    recordSeparator: str = ""
    lineFeed: str = ""


class KonductorConfig(msgspec.Struct, kw_only=True):
    streaming: Streaming | None = None


class Meta(msgspec.Struct, kw_only=True):
    state: State | None = None
    konductorConfig: KonductorConfig | None = None


# msgspec cannot decode `Raw | None` (a Raw inside a union only matches `null`), so "no data"
# is the JSON `null` itself: absent and `"data": null` mean the same, as at Adobe's edge.
NO_DATA = msgspec.Raw(b"null")


class EdgeEvent(msgspec.Struct, kw_only=True):
    xdm: dict[str, Any] = {}
    data: msgspec.Raw = NO_DATA


class ConsentItem(msgspec.Struct, kw_only=True):
    standard: str = "Adobe"
    version: str = "2.0"
    value: Any = None


class EdgeRequest(msgspec.Struct, kw_only=True):
    events: list[EdgeEvent] = []
    event: EdgeEvent | None = None  # v2 (server-side Edge API) sends one event
    meta: Meta | None = None
    consent: list[ConsentItem] = []
    # set-consent (mobile SDKs): the device's identities at the top level.
    identityMap: dict[str, Any] | None = None
    # Request-level XDM (mobile SDKs: the app's identityMap and implementationDetails): the
    # Edge merges it into every event.
    xdm: dict[str, Any] = {}

    @property
    def all_events(self) -> list[EdgeEvent]:
        return self.events + ([self.event] if self.event is not None else [])

    @property
    def state(self) -> State:
        return self.meta.state if self.meta and self.meta.state else State()

    @property
    def streaming(self) -> Streaming | None:
        """The framing the client asked for, when it asked for one it can parse."""
        config = self.meta.konductorConfig if self.meta else None
        streaming = config.streaming if config else None
        if streaming is None or not streaming.enabled or not streaming.lineFeed:
            return None
        return streaming


_decode = msgspec.json.Decoder(EdgeRequest).decode
_encode = msgspec.json.Encoder().encode
_IdentityMap = dict[str, list[IdentityItem]]


def decode(data: bytes) -> EdgeRequest:
    if not data.strip():
        return EdgeRequest()
    request: EdgeRequest = decode_json(_decode, data)
    return request


def consent_choice(request: EdgeRequest) -> Literal["in", "out"] | None:
    """The collect choice of a set-consent request (Adobe 1.0 or 2.0 standard)."""
    for item in request.consent:
        value = item.value if isinstance(item.value, dict) else {}
        if item.standard == "Adobe" and item.version == "1.0" and value.get("general") in ("in", "out"):
            return "in" if value["general"] == "in" else "out"
        collect = value.get("collect")
        if isinstance(collect, dict) and collect.get("val") in ("y", "n"):
            return "in" if collect["val"] == "y" else "out"
    return None


def claimed_device_id(request: EdgeRequest) -> str | None:
    """An ECID the client says it holds: the mobile SDKs keep their own (Edge Identity) and
    send it in the request-level `xdm.identityMap` (events), or the top-level `identityMap`
    (set-consent); older apps put it in an event's identityMap. A claim, not a credential."""
    maps = [request.xdm.get("identityMap"), request.identityMap, *(e.xdm.get("identityMap") for e in request.all_events)]
    for identity_map in maps:
        entries = identity_map.get("ECID") if isinstance(identity_map, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and is_ecid(entry["id"]):
                return str(entry["id"])
    return None


def merge_request_xdm(request_xdm: dict[str, Any], event_xdm: dict[str, Any]) -> dict[str, Any]:
    """The event's XDM with the request-level XDM merged in, as Adobe's Edge does: objects
    merge key by key, the event's value wins a conflict, and `identityMap` entries of both are
    combined (the event's first; one entry per namespace and id)."""
    merged = _deep_merge(request_xdm, event_xdm)
    request_map, event_map = request_xdm.get("identityMap"), event_xdm.get("identityMap")
    if isinstance(request_map, dict) and isinstance(event_map, dict):
        combined: dict[str, Any] = {}
        for namespace in {**request_map, **event_map}:
            own, shared = event_map.get(namespace), request_map.get(namespace)
            if not isinstance(own, list) or not isinstance(shared, list):
                combined[namespace] = own if namespace in event_map else shared
                continue
            ids = {str(entry.get("id")) for entry in own if isinstance(entry, dict)}
            combined[namespace] = own + [e for e in shared if not (isinstance(e, dict) and str(e.get("id")) in ids)]
        merged["identityMap"] = combined
    return merged


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        out[key] = _deep_merge(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return out


def _primary_as_boolean(identity_map: dict[str, Any]) -> None:
    """The Server API documents `"primary": "true"`: XDM's boolean, sent as a string. Write it
    back as the boolean it means, so the lake and the profile see one type."""
    for entries in identity_map.values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("primary"), str):
                entry["primary"] = entry["primary"].strip().lower() in ("true", "1")


def build_events(
    request: EdgeRequest,
    request_id: str,
    config: Config,
    dataset: Dataset,
    org: str,
    source: str,
    ecid: str | None,
    agent: str,
    parsed: UserAgent,
    address: str,
    received_ms: int,
) -> list[Event | SchemaFailure]:
    """One bus event per request event (a `SchemaFailure` for one its dataset's schema
    refuses). `ecid` is the device of the request, added to every event; None for a server
    request (v2 collect), whose events may be different people and so each routes by its
    own identities."""
    out: list[Event | SchemaFailure] = []
    known = namespaces(tuple(config.identity.namespaces))
    for index, edge_event in enumerate(request.all_events):
        xdm = merge_request_xdm(copy.deepcopy(request.xdm), edge_event.xdm) if request.xdm else edge_event.xdm
        datastream = config.datastream(source)  # Data Prep: `data` → XDM (inlet.dataprep.edge)
        xdm = map_data(datastream.mapping if datastream is not None else None, edge_event.data, xdm, index)
        xdm_id = xdm.get("_id")
        if not isinstance(xdm_id, str) or not xdm_id:
            xdm_id = xdm["_id"] = str(uuid.uuid5(_ID_NAMESPACE, f"{request_id}:{index}"))
        timestamp = xdm.get("timestamp")
        if timestamp is None:
            timestamp = xdm["timestamp"] = _iso(received_ms)
        if not isinstance(timestamp, str):
            raise Rejected(Reason.invalid_timestamp, f"events[{index}].xdm.timestamp must be a string")
        enrich.enrich(xdm, agent, parsed, address)
        raw_map = xdm.get("identityMap", {})
        try:
            # Lax: the Server API's documented payloads send `"primary": "true"`.
            identity_map = msgspec.convert(raw_map, _IdentityMap, strict=False)
        except msgspec.ValidationError as exc:
            raise Rejected(Reason.invalid_message, f"events[{index}].xdm.identityMap: {exc}") from None
        _primary_as_boolean(raw_map)
        if ecid is not None:
            enrich.add_device_id(xdm, ecid)
            identity_map = msgspec.convert(xdm["identityMap"], _IdentityMap, strict=False)
        elif dataset.profile and not identity_map:
            raise Rejected(Reason.missing_identity,
                           f"events[{index}].xdm.identityMap needs an identity: the events of a server "
                           "request each route by their own identities")
        event_type = xdm.get("eventType")
        out.append(check_schema(
            config, dataset, None, Event(
                org=org,
                sandbox=dataset.sandbox,
                dataset=dataset.id,
                source=source,
                message_id=event_id(org, dataset.sandbox, dataset.id, xdm_id),
                received_ms=received_ms,
                timestamp_ms=parse_timestamp_ms(timestamp),
                event_type=event_type if isinstance(event_type, str) else "",
                identities=descriptor_identities(config, dataset, xdm,
                                                 identities(XdmHead(identityMap=identity_map), known)),
                xdm=msgspec.Raw(_encode(xdm)),
                data=edge_event.data,
                profile=dataset.profile,
            ))
        )
    return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_request_id() -> str:
    return str(uuid.uuid4())


def now_ms() -> int:
    return int(time.time() * 1000)
