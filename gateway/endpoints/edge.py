"""Edge Network endpoints: what Adobe's Web SDK, mobile SDKs and our tag call.

    POST /ee[/<locationHint>]/v1|v2/interact           events, answered with handles
    POST /ee[/<locationHint>]/v1|v2/collect            sendBeacon path: 204 (v2: 202)
    POST /ee[/<locationHint>]/v1|v2/identity/acquire   the device's ECID, no events
    POST /ee[/<locationHint>]/v1|v2/privacy/set-consent

The path of a browser event: CORS check against the datastream → body (JSON or text/plain,
maybe gzip) → device id (ours, from cookie or `meta.state.entries`, an app's own ECID, or a
fresh one) → request-level XDM merged into each event → enrich → publish → answer after
JetStream's ack with `identity:result` and the `state:store` entries the SDK writes as
first-party cookies (framed as records when the mobile SDKs ask for streaming).

Trust: only a device id the gateway minted, or read back from a value it signed, is answered
with a signed `kndctr_<org>_identity` value (and the `inlet_device` cookie). An ECID a client
merely claims (an app's own, in `identityMap`) keys that client's events and is echoed in
`identity:result`, but is never signed: a signed value must not be obtainable for a device
id someone only learned. A server request (`/ee/v2/collect`) has no device at all: each event
routes by its own identities.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import body, cors, device_id, edge_request, user_agent
from gateway.decode import shape
from gateway.edge_request import EdgeRequest, now_ms
from gateway.responses import log
from inlet.config import Config, Datastream, identity_secret
from inlet.outcomes import TITLE, Reason, Rejected
from inlet.telemetry import EVENTS_REJECTED

ACTIONS = ("interact", "collect", "identity/acquire", "privacy/set-consent")
CONSENT_MAX_AGE = 180 * 24 * 3600
CLUSTER_MAX_AGE = 1800
# The hint answered when `edge.location_hint` is empty: the SDKs insert it as a path segment
# (`/ee/inlet/v1/interact`), which any inlet gateway accepts.
DEFAULT_LOCATION_HINT = "inlet"
# Our own device cookie, set by the server (HttpOnly): browsers cap script-set cookies at
# 7 days on some platforms; a server-set one lives its full max-age. The SDK's kndctr_*
# cookie must stay script-readable, so ours has its own name.
SERVER_COOKIE = "inlet_device"


class Handle(msgspec.Struct):
    type: str
    payload: list[Any]


class EdgeError(msgspec.Struct, kw_only=True):
    type: str
    status: int
    title: str
    detail: str
    code: str


class EdgeResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    requestId: str
    handle: list[Handle]
    errors: list[EdgeError] = []
    warnings: list[EdgeError] = []


_encode = msgspec.json.Encoder().encode


def _route(path: str) -> tuple[str, str]:
    """`[hint/]v1/interact` → ("v1", "interact"); any single hint segment is accepted."""
    parts = path.strip("/").split("/")
    if parts and parts[0] not in ("v1", "v2"):
        parts = parts[1:]
    if len(parts) < 2 or parts[0] not in ("v1", "v2") or "/".join(parts[1:]) not in ACTIONS:
        raise Rejected(Reason.not_found, f"no Edge Network endpoint /ee/{path}")
    return parts[0], "/".join(parts[1:])


def _datastream(request: Request, config: Config) -> Datastream:
    # `configId` (the SDKs), `dataStreamId` (the Server API pages), `datastreamId` (its newer pages).
    params = request.query_params
    config_id = params.get("configId") or params.get("dataStreamId") or params.get("datastreamId")
    if not config_id:
        raise Rejected(Reason.invalid_parameter, "configId (or dataStreamId: the datastream id) is required")
    datastream = config.datastream(config_id)
    if datastream is None:
        raise Rejected(Reason.unknown_datastream, f"no datastream {config_id!r}")
    return datastream


def _cors(request: Request, datastream: Datastream) -> dict[str, str]:
    origin = request.headers.get("origin")
    if origin is None:
        return {}  # not a browser cross-origin call (apps, servers, same-origin)
    if not cors.origin_allowed(origin, datastream):
        raise Rejected(Reason.origin_not_allowed, f"origin {origin!r} may not use datastream {datastream.id!r}")
    return cors.headers(origin)


async def preflight(request: Request) -> Response:
    """Answered from config alone: no body, no NATS."""
    config: Config = request.app.state.config
    origin = request.headers.get("origin", "")
    try:
        _route(request.path_params["path"])
        datastream = _datastream(request, config)
        if not cors.origin_allowed(origin, datastream):
            raise Rejected(Reason.origin_not_allowed, f"origin {origin!r} is not allowed")
    except Rejected as rejected:
        return Response(status_code=rejected.status)
    return Response(status_code=204, headers=cors.preflight_headers(origin))


async def edge(request: Request) -> Response:
    state = request.app.state
    config: Config = state.config
    request_id = request.query_params.get("requestId") or edge_request.new_request_id()
    headers: dict[str, str] = {"x-request-id": request_id}
    try:
        version, action = _route(request.path_params["path"])
        datastream = _datastream(request, config)
        headers.update(_cors(request, datastream))
        state.rate_limiter.take(f"datastream:{datastream.id}", datastream.rate_limit)
        data = await body.read(request, config.edge.max_request_bytes)
        shape(config).check(data)
        payload = edge_request.decode(data)
        if len(payload.all_events) > config.edge.max_events:
            raise Rejected(Reason.too_many_messages,
                           f"{len(payload.all_events)} events; the limit is {config.edge.max_events} per request")
        return await _handle(request, config, datastream, version, action, request_id, payload, headers)
    except Rejected as rejected:
        return _error(request_id, rejected, headers)


async def _handle(
    request: Request,
    config: Config,
    datastream: Datastream,
    version: str,
    action: str,
    request_id: str,
    payload: EdgeRequest,
    headers: dict[str, str],
) -> Response:
    state = request.app.state
    secret = identity_secret(config)
    identity_name = device_id.cookie_name(config.org)
    consent_name = device_id.cookie_name(config.org, "consent")
    entries = {e.key: e.value for e in payload.state.entries}
    cookies = request.cookies

    server_batch = version == "v2" and action == "collect"
    device, trusted = _device(cookies, entries, identity_name, secret, payload, version, action)
    received = now_ms()
    consent = edge_request.consent_choice(payload) if action == "privacy/set-consent" else None
    current_consent = consent or _consent(cookies.get(consent_name) or entries.get(consent_name))
    warnings: list[EdgeError] = []

    events = payload.all_events if action in ("interact", "collect") else []
    if events and current_consent == "out":
        warnings.append(_problem(Rejected(Reason.forbidden, "consent is out: events were not collected")))
    elif events:
        dataset = config.dataset(datastream.sandbox, datastream.dataset)
        assert dataset is not None  # checked at start-up
        agent = request.headers.get("user-agent", "")
        messages = edge_request.build_events(
            payload, request_id, config, dataset, config.org, datastream.id,
            None if server_batch or device is None else device.ecid, agent,
            user_agent.parse(agent), state.client_address(request), received,
        )
        for outcome in await state.publisher.publish(list(messages)):
            if isinstance(outcome, Rejected):
                raise outcome

    handles: list[Handle] = []
    if device is not None and not server_batch:
        handles.append(Handle("identity:result", [{"id": device.ecid, "namespace": {"code": "ECID"}}]))
    if device is not None and trusted and not server_batch:
        handles.append(Handle("state:store", [{"key": identity_name, "value": device_id.encode(device, secret),
                                               "maxAge": device_id.IDENTITY_MAX_AGE, "attrs": {"SameSite": "None"}}]))
        cookie = _server_cookie(request, payload, device, secret)
        if cookie:
            headers["set-cookie"] = cookie
    # What the SDKs read: the mobile Edge extension the `locationHint:result` payload of scope
    # "EdgeNetwork" (hint, ttlSeconds), the Web SDK the `kndctr_<org>_cluster` entry.
    hint = config.edge.location_hint or DEFAULT_LOCATION_HINT
    handles.append(Handle("locationHint:result", [{"scope": "EdgeNetwork", "hint": hint, "ttlSeconds": CLUSTER_MAX_AGE}]))
    handles.append(Handle("state:store", [{"key": device_id.cookie_name(config.org, "cluster"), "value": hint,
                                           "maxAge": CLUSTER_MAX_AGE, "attrs": {"SameSite": "None"}}]))
    if consent is not None:
        handles.append(Handle("state:store", [{"key": consent_name, "value": f"general={consent}",
                                               "maxAge": CONSENT_MAX_AGE, "attrs": {"SameSite": "None"}}]))

    if action == "collect":
        silent = request.query_params.get("silent", "").lower() == "true"
        status = 204 if version == "v1" or silent else 202
        return Response(status_code=status, headers=headers)
    body_ = _encode(EdgeResponse(requestId=request_id, handle=handles, warnings=warnings))
    return Response(_framed(body_, payload), 200, headers, media_type="application/json")


def _framed(body_: bytes, payload: EdgeRequest) -> bytes:
    """With `meta.konductorConfig.streaming.enabled`, the mobile SDKs read the answer as
    records: `recordSeparator`, one JSON object, `lineFeed`. Android splits on the line feed
    and cuts the separator's length off the front of each record; iOS splits and trims it.
    Our JSON is compact (no raw line feed inside), so one record holds the whole answer."""
    streaming = payload.streaming
    if streaming is None:
        return body_
    return streaming.recordSeparator.encode() + body_ + streaming.lineFeed.encode()


def _device(
    cookies: dict[str, str], entries: dict[str, str], identity_name: str, secret: bytes, payload: EdgeRequest,
    version: str, action: str,
) -> tuple[device_id.DeviceId | None, bool]:
    """The request's device id, and whether we may sign it (only ids we minted or verified).

    A signed value (our cookie, or the SDK's `kndctr_*` entry) wins. Else an ECID the client
    claims keys its events, unsigned. Else a fresh id, except for the Server API: a v2 collect
    has no device (its events may be different people), and a v2 interact whose event names
    its own identities is routed by them, as Adobe's Edge does for server datastreams."""
    for value in (cookies.get(SERVER_COOKIE), cookies.get(identity_name), entries.get(identity_name)):
        if value:
            found = device_id.decode(value, secret)
            if found is not None:
                return found, True
    claimed = edge_request.claimed_device_id(payload)
    if claimed is not None:
        return device_id.DeviceId(claimed, now_ms() // 1000, False), False
    if version == "v2" and (action == "collect" or any(e.xdm.get("identityMap") for e in payload.all_events)):
        return None, False
    return device_id.mint(now_ms() // 1000), True


def _consent(value: str | None) -> str | None:
    if value and value.startswith("general="):
        return value.split("=", 1)[1]
    return None


def _server_cookie(request: Request, payload: EdgeRequest, device: device_id.DeviceId, secret: bytes) -> str:
    """A first-party, server-set cookie when we are served from the page's own site."""
    domain = payload.state.domain.strip(".").lower()
    host = request.url.hostname or ""
    if not domain or not (host == domain or host.endswith("." + domain)):
        return ""
    return (
        f"{SERVER_COOKIE}={device_id.encode(device, secret)}; Domain={domain}; Path=/; "
        f"Max-Age={device_id.IDENTITY_MAX_AGE}; HttpOnly; Secure; SameSite=Lax"
    )


def _problem(rejected: Rejected) -> EdgeError:
    return EdgeError(
        type=f"https://inlet.dev/errors/{rejected.reason.value}",
        status=rejected.status,
        title=TITLE[rejected.reason],
        detail=rejected.detail,
        code=rejected.reason.value,
    )


def _error(request_id: str, rejected: Rejected, headers: dict[str, str]) -> Response:
    EVENTS_REJECTED.labels(rejected.reason.value).inc()
    if rejected.retry_after is not None:
        headers["Retry-After"] = str(rejected.retry_after)
    if rejected.status >= 500 and rejected.reason is not Reason.unavailable:
        log.error("Edge answered %d %s: %s", rejected.status, rejected.reason.value, rejected.detail)
    if rejected.reason is Reason.origin_not_allowed:
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("access-control")}
    body_ = EdgeResponse(requestId=request_id, handle=[], errors=[_problem(rejected)])
    return Response(_encode(body_), rejected.status, headers, media_type="application/json")
