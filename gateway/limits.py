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

Storable: what the gateway accepts must be storable as it was sent, so it refuses (400) what
no store can hold: bytes that are not UTF-8 (JSON is UTF-8; msgspec does not look inside
what it only passes along, so the XDM of a streaming message is checked here), numbers that
overflow a double (`1e400` would read as infinity, which JSON cannot say), strings whose
escapes are not Unicode (a lone surrogate, `\ud800`, which Polars would quietly store as
another character) and field names holding a quote, backslash or control character (no XDM
field is named so; such a name cannot be a Parquet column that every engine reads, or be
quoted in SQL). Each has a cheap test on the raw bytes that almost every body passes (ASCII
or one UTF-8 decode in C; no exponent of three digits and no 309-digit run; no escape that
can make such a name or text);
only a body that fails it is tokenized (the same string tokenizer as above). A typical event
costs about a microsecond more; a megabyte, about two milliseconds.

Rate: a token bucket per streaming connection and per datastream (requests per second, burst
of two seconds' worth), answered with 429 and the `Retry-After` that would succeed. Buckets
are per gateway process; nginx's per-address limit sits in front of them (nginx/).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import msgspec

from inlet.config import Limits
from inlet.outcomes import Reason, Rejected

# A JSON string token: the "unrolled loop" form, which never backtracks, ending at the closing
# quote, else at the end of the input (with a dangling backslash), so it matches from any quote.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
_OPEN = frozenset(b"{[")
# Storable. Numbers: digits mapped to "0" and "E" to "e" (one `translate`, in C), a number
# that may overflow a double shows as an exponent of three digits or a run of 309 digits.
_DIGITS = bytes.maketrans(b"123456789E", b"000000000e")
_NUMBER_TOKEN = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# Escapes that can make a field name no column can have (a quote, backslash or control
# character) or a string that is no Unicode text (a lone surrogate); `\/` and `\u00e9` cannot.
_RISKY_ESCAPE = re.compile(rb'\\(?:["\\bfnrt]|u00[01]|u[dD][89a-fA-F])')
# A string token, whether it is closed, and whether a `:` follows it (a field name).
_STRING_PARTS = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)("|\\?\Z)(\s*:)?', re.DOTALL)
_BAD_NAME = re.compile(r'["\\\x00-\x1f]')
_decode_string = msgspec.json.Decoder(str).decode


class Shape:
    def __init__(self, limits: Limits) -> None:
        self.max_depth = limits.max_depth
        self.max_string = limits.max_string_bytes

    def check(self, raw: bytes) -> None:
        if len(raw) > self.max_string + 2 and self._longest_string(raw) > self.max_string:
            raise Rejected(Reason.string_too_long, f"a string is longer than {self.max_string} bytes")
        if raw.count(b"[") + raw.count(b"{") > self.max_depth and self._deeper_than_limit(raw):
            raise Rejected(Reason.too_deep, f"the document nests deeper than {self.max_depth} levels")
        storable(raw)

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


def storable(raw: bytes) -> None:
    """Refuse what no store can hold as sent (see the module docstring)."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(Reason.malformed_json, f"body is not valid UTF-8 JSON (byte {exc.start}: {exc.reason})") from None
    shapes = raw.translate(_DIGITS)
    if b"0e000" in shapes or b"0e+000" in shapes or b"0" * 309 in shapes:
        for token in _NUMBER_TOKEN.findall(_STRING.sub(b'""', raw)):
            if math.isinf(float(token)):
                shown = token if len(token) <= 40 else token[:37] + b"..."
                raise Rejected(Reason.invalid_message, f"number {shown.decode()} is out of the range of a double")
    if b"\\" in raw and _RISKY_ESCAPE.search(raw):
        for text, end, colon in _STRING_PARTS.findall(raw):
            if not end or b"\\" not in text:  # unterminated: the parser's to refuse
                continue
            try:
                value = _decode_string(b'"' + text + b'"')
            except msgspec.DecodeError:
                raise Rejected(Reason.malformed_json, "a string is not valid JSON text (an escape that is no Unicode "
                                                      f"character, such as a lone surrogate?): {text[:60]!r}") from None
            if colon and _BAD_NAME.search(value):
                raise Rejected(Reason.invalid_message,
                               f"field name {value!r} holds a quote, backslash or control character; "
                               "XDM field names cannot (they could not be stored as columns)")


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
