"""How Adobe's clients read an Edge answer, and the request shapes they send.

Each reader does what that client's source does, so a test that parses our answer through it
fails exactly when the client would:

- Android, adobe/aepsdk-edge-android `code/edge/src/main/java/com/adobe/marketing/mobile/
  EdgeNetworkService.java` (`handleStreamingResponse`): a `Scanner` delimited by the request's
  `lineFeed`; from each chunk it cuts `recordSeparator.length()` characters off the front
  (chunks shorter than that are skipped) and parses the rest as one JSON answer.
- iOS, adobe/aepsdk-edge-ios `Sources/EdgeNetworkHandlers/EdgeNetworkService.swift`
  (`handleStreamingResponse`): splits on the line-feed character and trims the separator's
  characters from both ends of each piece.
- Both read the body as one JSON answer when streaming was not asked for, and an error status
  (`handleError`) as plain JSON.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

# The mobile SDKs' defaults (EdgeConstants.Defaults.REQUEST_CONFIG_RECORD_SEPARATOR / _LINE_FEED).
RECORD_SEPARATOR = "\u0000"
LINE_FEED = "\n"
STREAMING = {"konductorConfig": {"streaming": {"enabled": True, "recordSeparator": RECORD_SEPARATOR, "lineFeed": LINE_FEED}}}
ANDROID_IMPLEMENTATION = {"environment": "app", "name": "https://ns.adobe.com/experience/mobilesdk/android",
                          "version": "3.0.0+3.0.0"}
IOS_IMPLEMENTATION = {"environment": "app", "name": "https://ns.adobe.com/experience/mobilesdk/ios",
                      "version": "5.0.0+5.0.0"}
ANDROID_AGENT = "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP1A.240405.002)"


def android_records(body: str, separator: str = RECORD_SEPARATOR, line_feed: str = LINE_FEED) -> list[dict[str, Any]]:
    """`Scanner(useDelimiter(lineFeed))`, then `substring(recordSeparator.length())` per chunk."""
    records = []
    for chunk in re.split(line_feed, body):
        if chunk == "" or len(chunk) - len(separator) < 0:  # Scanner yields no empty tail token
            continue
        records.append(json.loads(chunk[len(separator):]))
    return records


def ios_records(body: str, separator: str = RECORD_SEPARATOR, line_feed: str = LINE_FEED) -> list[dict[str, Any]]:
    """`split(separator: lineFeedCharacter)` (drops empty pieces), then trim the separator's characters."""
    return [json.loads(piece.strip(separator)) for piece in body.split(line_feed) if piece]


def handles(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Every payload of handles of one type, across records (the SDKs dispatch each handle)."""
    return [p for record in records for h in record.get("handle", []) if h["type"] == kind for p in h["payload"]]


def new_ecid() -> str:
    """What Edge Identity mints on the device (aepsdk-edgeidentity-android `ECID.java`): two
    UUID halves, absolute values, each zero-padded to 19 digits."""
    u = uuid.uuid4()
    most, least = u.int >> 64, u.int & ((1 << 64) - 1)
    signed = [v - (1 << 64) if v >= 1 << 63 else v for v in (most, least)]
    return "".join(f"{abs(v):019d}" for v in signed)


def mobile_identity_map(ecid: str, **logins: tuple[str, str]) -> dict[str, Any]:
    """The request-level `xdm.identityMap` Edge Identity shares: the ECID (ambiguous, not
    primary), plus identities the app set with `updateIdentities` (namespace → (id, state))."""
    identity_map: dict[str, Any] = {"ECID": [{"id": ecid, "authenticatedState": "ambiguous", "primary": False}]}
    for namespace, (value, state) in logins.items():
        identity_map[namespace] = [{"id": value, "authenticatedState": state, "primary": False}]
    return identity_map


class StoreResponsePayloads:
    """The Edge extension's client-side store (aepsdk-edge-android `StoreResponsePayloadManager`):
    keeps each `state:store` payload by key (a maxAge of 0 or less removes it) and sends them
    all back in `meta.state.entries`."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def save(self, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            if payload.get("maxAge", 0) <= 0:
                self.entries.pop(payload["key"], None)
            else:
                self.entries[payload["key"]] = {"key": payload["key"], "value": payload["value"], "maxAge": payload["maxAge"]}

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = dict(STREAMING)
        if self.entries:
            meta["state"] = {"entries": list(self.entries.values())}
        return meta
