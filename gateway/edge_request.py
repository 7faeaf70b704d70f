"""The Edge Network request (`/ee/v1/interact` and friends) as Structs, and its bus events.

Browser events arrive without `_id` (Adobe's edge assigns it), so we derive one from the
request id and the event's position: a retried request yields the same ids and JetStream's
dedupe stores it once. XDM from browsers is decoded to a mapping because the gateway must add
to it (ECID, enrichment); the result is encoded once and travels as raw bytes from then on.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from gateway import enrich
from gateway.decode import decode_json, event_id, parse_timestamp_ms
from gateway.device_id import is_ecid
from gateway.user_agent import UserAgent
from inlet.config import Config, Dataset
from inlet.messages import Event
from inlet.outcomes import Reason, Rejected
from inlet.xdm import IdentityItem, XdmHead, identities, namespaces

_ID_NAMESPACE = uuid.UUID("6f1d4d0c-7a57-4b8e-9a8e-1e7c0de1e7ad")


class StateEntry(msgspec.Struct, kw_only=True):
    key: str
    value: str = ""


class State(msgspec.Struct, kw_only=True):
    domain: str = ""
    cookiesEnabled: bool = True
    entries: list[StateEntry] = []


class Meta(msgspec.Struct, kw_only=True):
    state: State | None = None


class EdgeEvent(msgspec.Struct, kw_only=True):
    xdm: dict[str, Any] = {}
    data: msgspec.Raw | None = None


class ConsentItem(msgspec.Struct, kw_only=True):
    standard: str = "Adobe"
    version: str = "2.0"
    value: Any = None


class EdgeRequest(msgspec.Struct, kw_only=True):
    events: list[EdgeEvent] = []
    event: EdgeEvent | None = None  # v2 (server-side Edge API) sends one event
    meta: Meta | None = None
    consent: list[ConsentItem] = []
    identityMap: dict[str, list[IdentityItem]] | None = None

    @property
    def all_events(self) -> list[EdgeEvent]:
        return self.events + ([self.event] if self.event is not None else [])

    @property
    def state(self) -> State:
        return self.meta.state if self.meta and self.meta.state else State()


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


def app_device_id(request: EdgeRequest) -> str | None:
    """An ECID the app already holds (mobile SDKs put it in identityMap)."""
    for event in request.all_events:
        identity_map = event.xdm.get("identityMap")
        entries = identity_map.get("ECID") if isinstance(identity_map, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and is_ecid(entry["id"]):
                return str(entry["id"])
    return None


def build_events(
    request: EdgeRequest,
    request_id: str,
    config: Config,
    dataset: Dataset,
    org: str,
    source: str,
    ecid: str,
    agent: str,
    parsed: UserAgent,
    address: str,
    received_ms: int,
) -> list[Event]:
    out: list[Event] = []
    known = namespaces(tuple(config.identity.namespaces))
    for index, edge_event in enumerate(request.all_events):
        xdm = edge_event.xdm
        xdm_id = xdm.get("_id")
        if not isinstance(xdm_id, str) or not xdm_id:
            xdm_id = xdm["_id"] = str(uuid.uuid5(_ID_NAMESPACE, f"{request_id}:{index}"))
        timestamp = xdm.get("timestamp")
        if timestamp is None:
            timestamp = xdm["timestamp"] = _iso(received_ms)
        if not isinstance(timestamp, str):
            raise Rejected(Reason.invalid_timestamp, f"events[{index}].xdm.timestamp must be a string")
        enrich.enrich(xdm, agent, parsed, address)
        enrich.add_device_id(xdm, ecid)
        try:
            identity_map = msgspec.convert(xdm["identityMap"], _IdentityMap)
        except msgspec.ValidationError as exc:
            raise Rejected(Reason.invalid_message, f"events[{index}].xdm.identityMap: {exc}") from None
        event_type = xdm.get("eventType")
        out.append(
            Event(
                org=org,
                sandbox=dataset.sandbox,
                dataset=dataset.id,
                source=source,
                message_id=event_id(dataset.sandbox, dataset.id, xdm_id),
                received_ms=received_ms,
                timestamp_ms=parse_timestamp_ms(timestamp),
                event_type=event_type if isinstance(event_type, str) else "",
                identities=identities(XdmHead(identityMap=identity_map), known),
                xdm=msgspec.Raw(_encode(xdm)),
                data=edge_event.data,
            )
        )
    return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_request_id() -> str:
    return str(uuid.uuid4())


def now_ms() -> int:
    return int(time.time() * 1000)
