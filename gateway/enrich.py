"""Server-side enrichment of browser and app events: facts the client is never trusted with.

The client address comes from the proxy header only when the TCP peer is a configured trusted
proxy (otherwise anyone could claim any address), and replaces any address the event claims;
the device id joins `identityMap` as `ECID`.

The user agent becomes the XDM fields Adobe's Edge fills with its datastream "device lookup"
option (Experience League, datastreams/configure: device lookup): `device.manufacturer`,
`device.model`, `device.type`, `environment.browserDetails.{name,version,vendor}`,
`environment.operatingSystem`, `operatingSystemVersion` and `operatingSystemVendor`; the
agent itself goes to `environment.browserDetails.userAgent` (the "keep user agent" option).
`environment.type` is filled as Adobe's own clients send it (`browser` from the Web SDK,
`application` from the mobile SDKs). These fields are only ever filled where the event left
them out: a value the client sent (the mobile SDKs' Lifecycle extension sends exact device
facts; a server forwarding a browser's event sends that browser's agent) is never replaced.
An event that carries its own `browserDetails.userAgent` is described from that agent, not from
the request's `User-Agent` header (which, for a server sending on a browser's behalf, names
the server's HTTP library).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.requests import Request

from gateway import user_agent
from gateway.user_agent import UserAgent
from inlet.config import Edge

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClientAddress:
    def __init__(self, edge: Edge) -> None:
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in edge.trusted_proxies]
        self.header = edge.client_address_header.lower()

    def _is_trusted(self, address: Address) -> bool:
        return any(address in network for network in self.trusted)

    def __call__(self, request: Request) -> str:
        """The client's address: walk the forwarded chain from the right while it is ours."""
        peer = _parse(request.client.host if request.client else "")
        if peer is None:
            return ""
        if not self._is_trusted(peer):
            return str(peer)
        chain = [_parse(a.strip()) for a in request.headers.get(self.header, "").split(",") if a.strip()]
        for hop in reversed(chain):
            if hop is None:
                break  # a garbled hop: trust nothing further left
            if not self._is_trusted(hop):
                return str(hop)
        return str(peer)


def _parse(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    child = parent.get(key)
    if not isinstance(child, dict):
        child = parent[key] = {}
    return child


def _fill(xdm: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    """Set `path` to `value` unless the client set it (or set a parent to something else than
    an object: the event is kept as sent, not reshaped)."""
    if not value:
        return
    node = xdm
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            return
        node = child
    if node.get(path[-1]) is None:
        node[path[-1]] = value


def enrich(xdm: dict[str, Any], agent: str, parsed: UserAgent, address: str) -> None:
    environment = xdm.get("environment")
    details = environment.get("browserDetails") if isinstance(environment, dict) else None
    claimed = details.get("userAgent") if isinstance(details, dict) else None
    if isinstance(claimed, str) and claimed and claimed != agent:
        parsed = user_agent.parse(claimed)  # the event describes its own device
    else:
        _fill(xdm, ("environment", "browserDetails", "userAgent"), agent)
    _fill(xdm, ("environment", "browserDetails", "name"), parsed.browser)
    _fill(xdm, ("environment", "browserDetails", "version"), parsed.browser_version)
    _fill(xdm, ("environment", "browserDetails", "vendor"), parsed.browser_vendor)
    _fill(xdm, ("environment", "operatingSystem"), parsed.os)
    _fill(xdm, ("environment", "operatingSystemVersion"), parsed.os_version)
    _fill(xdm, ("environment", "operatingSystemVendor"), parsed.os_vendor)
    kind = "application" if parsed.app else "browser" if parsed.browser and parsed.device_type else ""
    _fill(xdm, ("environment", "type"), kind)
    _fill(xdm, ("device", "manufacturer"), parsed.manufacturer)
    _fill(xdm, ("device", "model"), parsed.model)
    _fill(xdm, ("device", "type"), parsed.device_type)
    if not address:
        return
    environment = xdm.get("environment")
    if environment is None:
        environment = xdm["environment"] = {}
    if isinstance(environment, dict):
        environment.pop("ipV4", None)
        environment.pop("ipV6", None)
        environment["ipV6" if ":" in address else "ipV4"] = address


def add_device_id(xdm: dict[str, Any], ecid: str) -> None:
    """Add the device's ECID to `identityMap`; primary only if nothing else is."""
    identity_map = _object(xdm, "identityMap")
    entries = identity_map.get("ECID")
    if not isinstance(entries, list):
        entries = identity_map["ECID"] = []
    if any(isinstance(e, dict) and e.get("id") == ecid for e in entries):
        return
    has_primary = any(
        isinstance(e, dict) and e.get("primary") is True
        for items in identity_map.values() if isinstance(items, list) for e in items
    )
    entries.append({"id": ecid, "authenticatedState": "ambiguous", "primary": not has_primary})
