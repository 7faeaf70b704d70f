"""Limits on what one client may send: document shape and request rate.

Shape: nesting depth and string length are checked on the raw bytes before anything is
decoded, in time linear in the body, so a hostile document costs little more than reading it.
One regular expression tokenizes strings left to right and always matches from an opening
quote (an unterminated string runs to the end of the body), so a quote inside a string is
never taken for the start of another. (A pattern that can fail from a quote, and is then
retried from the next one, is quadratic: a 256 KiB body of backslash-quote pairs would hold
the event loop for minutes.) The brackets left once strings are removed give the depth; the
walk over them stops at the first level past the limit. Most documents skip both scans: no
string is longer than the document, and no nesting deeper than its count of open brackets.

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

# A JSON string token: the "unrolled loop" form, which never backtracks, ending at the closing
# quote, else at the end of the input (with a dangling backslash), so it matches from any quote.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
_OPEN = frozenset(b"{[")


class Shape:
    def __init__(self, limits: Limits) -> None:
        self.max_depth = limits.max_depth
        self.max_string = limits.max_string_bytes

    def check(self, raw: bytes) -> None:
        if len(raw) > self.max_string + 2 and self._longest_string(raw) > self.max_string:
            raise Rejected(Reason.string_too_long, f"a string is longer than {self.max_string} bytes")
        if raw.count(b"[") + raw.count(b"{") > self.max_depth and self._deeper_than_limit(raw):
            raise Rejected(Reason.too_deep, f"the document nests deeper than {self.max_depth} levels")

    @staticmethod
    def _longest_string(raw: bytes) -> int:
        """Bytes between the quotes of the longest string token, as sent (escapes unexpanded)."""
        return max(map(len, _STRING.findall(raw)), default=2) - 2

    def _deeper_than_limit(self, raw: bytes) -> bool:
        """Walk the brackets left once strings are removed, stopping at the first too deep."""
        depth, limit = 0, self.max_depth
        for byte in _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
            if byte in _OPEN:
                depth += 1
                if depth > limit:
                    return True
            else:
                depth -= 1
        return False


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
