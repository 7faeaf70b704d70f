"""Limits on what one client may send: document shape and request rate.

Shape: nesting depth and string length are checked on the raw bytes before anything is
decoded, at C speed (a regex finds any string longer than the limit; the brackets left after
removing strings give the depth), so a hostile document costs no more than reading it.

Rate: a token bucket per streaming connection and per datastream (requests per second, burst
of two seconds' worth), answered with 429 and the `Retry-After` that would succeed. Buckets
are per gateway process; nginx's per-address limit sits in front of them (nginx/).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

from inlet.config import Limits
from inlet.outcomes import Reason, Rejected

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
_OPEN = frozenset(b"{[")


class Shape:
    def __init__(self, limits: Limits) -> None:
        self.max_depth = limits.max_depth
        self.max_string = limits.max_string_bytes
        # A string token longer than the limit (plus its two quotes).
        self._long = re.compile(rb'"(?:[^"\\]|\\.){%d,}"' % (self.max_string + 1), re.DOTALL)

    def check(self, raw: bytes) -> None:
        if len(raw) > self.max_string and self._long.search(raw):
            raise Rejected(Reason.string_too_long, f"a string is longer than {self.max_string} bytes")
        depth = deepest = 0
        for byte in _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
            if byte in _OPEN:
                depth += 1
                if depth > deepest:
                    deepest = depth
            else:
                depth -= 1
        if deepest > self.max_depth:
            raise Rejected(Reason.too_deep, f"the document nests {deepest} levels; the limit is {self.max_depth}")


class RateLimiter:
    """Token buckets by key; `rate` requests per second, bursts up to twice that."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, last refill)
        self.clock = clock

    def take(self, key: str, rate: float) -> None:
        if rate <= 0:
            return
        now = self.clock()
        burst = max(1.0, 2 * rate)
        tokens, last = self.buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            wait = math.ceil((1 - tokens) / rate)
            raise Rejected(Reason.rate_limited, f"more than {rate:g} requests/s for {key}", retry_after=wait)
        self.buckets[key] = (tokens - 1, now)
