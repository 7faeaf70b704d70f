"""Request bodies: AEP streaming messages (the shape of `tests/harness.py`), unique per event.

The gateway publishes each event with `Nats-Msg-Id` = its XDM `_id`, and JetStream stores an
id once per dedupe window (10 minutes). A load that repeats an `_id` therefore measures
JetStream's dedupe answer, not a stored event; `Bodies` never repeats one within a run (ids
carry a per-run prefix and a counter). Encoding is a byte template, a few µs per event, so
the client spends its CPU on HTTP/2 rather than on JSON.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

ORG = "DEMO@AdobeOrg"
PEOPLE = 10_000  # events are spread over this many people (Email identities)


def message(event_id: str, email: str | None = None) -> dict[str, Any]:
    """One ExperienceEvent for dataset `demo-events` (enabled for profile), ~600 bytes."""
    return {
        "header": {"schemaRef": {"id": "https://ns.adobe.com/demo/schemas/event"}, "imsOrgId": ORG,
                   "datasetId": "demo-events", "source": {"name": "bench"}},
        "body": {"xdmEntity": {"_id": event_id, "timestamp": "2026-11-23T10:00:00Z",
                               "eventType": "commerce.purchases",
                               "identityMap": {"Email": [{"id": email or f"{event_id[:6]}@bench.example",
                                                          "primary": True}]},
                               "commerce": {"order": {"priceTotal": 42.5, "currencyCode": "EUR"}},
                               "web": {"webPageDetails": {"URL": "https://shop.example/checkout", "name": "checkout"}}}},
    }


def path(batch: int) -> str:
    """One event per request goes to the single endpoint; more to the batch endpoint."""
    return "/collection/demo" if batch == 1 else "/collection/batch/demo"


class Bodies:
    """`Bodies(batch)()` → the next request body: `batch` events never sent before in this run."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.prefix = uuid.uuid4().hex[:12].encode()
        self.counter = itertools.count()
        template = msgspec.json.encode(message("@ID@", "@EMAIL@")).replace(b"%", b"%%")
        self.template = template.replace(b"@ID@", b"%(id)b").replace(b"@EMAIL@", b"%(email)b")

    def event(self) -> bytes:
        n = next(self.counter)
        return self.template % {b"id": b"%b-%d" % (self.prefix, n), b"email": b"p%d@bench.example" % (n % PEOPLE)}

    def __call__(self) -> bytes:
        if self.batch == 1:
            return self.event()
        return b'{"messages":[' + b",".join([self.event() for _ in range(self.batch)]) + b"]}"


def fixed(batch: int) -> bytes:
    """One body for h2load, which repeats it: after the first request, every event is a duplicate."""
    bodies = Bodies(batch)
    bodies.prefix = b"bench-fixed"
    return bodies()


def accepted(batch: int) -> Callable[[int, bytes], int]:
    """Events accepted by one response: entries with an `xactionId` in a 207, else all on 2xx.

    (The baseline answers 200 without per-message entries: it decoded all `batch` events.)
    """
    def count(status: int, body: bytes) -> int:
        if status == 207:
            return body.count(b'"xactionId"')
        return batch if 200 <= status < 300 else 0
    return count
