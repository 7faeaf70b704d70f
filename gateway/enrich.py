"""Server-side enrichment of browser and app events: facts the client is never trusted with.

The client address comes from the proxy header only when the TCP peer is a configured trusted
proxy (otherwise anyone could claim any address); the user agent is parsed into XDM `device`
and `environment` fields; the device id joins `identityMap` as `ECID`. Values computed here
overwrite whatever the client sent in the same fields.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.requests import Request

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


def enrich(xdm: dict[str, Any], agent: str, parsed: UserAgent, address: str) -> None:
    environment = _object(xdm, "environment")
    browser = _object(environment, "browserDetails")
    if agent:
        browser["userAgent"] = agent
    if parsed.browser:
        browser["name"], browser["version"] = parsed.browser, parsed.browser_version
    if parsed.os:
        environment["operatingSystem"] = parsed.os
        environment["operatingSystemVersion"] = parsed.os_version
    if parsed.device_type:
        _object(xdm, "device")["type"] = parsed.device_type
    environment.pop("ipV4", None)
    environment.pop("ipV6", None)
    if address:
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
