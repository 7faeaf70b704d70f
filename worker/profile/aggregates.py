"""Partial aggregates: what one time bucket remembers of the events it counted.

Every function a computed attribute offers is mergeable, so a bucket keeps only a fixed-size
summary and any set of buckets (several time slices, several identities of one profile)
combines into the value without looking at an event again:

| function      | kept per bucket                       | combined                     |
| ------------- | ------------------------------------- | ---------------------------- |
| `SUM`         | exact decimal sum                     | sum                          |
| `COUNT`       | count                                 | sum                          |
| `MIN`, `MAX`  | smallest, largest                     | min, max                     |
| `MOST_RECENT` | (timestamp, message id, value) newest | the newest                   |
| `FIRST`       | (timestamp, message id, value) oldest | the oldest                   |

Sums are exact decimals (kept as strings), not floats: float addition depends on order, and a
value must not depend on the order events arrived in (a backfill must equal the streaming
value). Ties in time break by message id for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec

MISSING: Any = object()


class Partial(msgspec.Struct, array_like=True, gc=False):
    count: int = 0
    total: str = "0"
    low: int | float | None = None
    high: int | float | None = None
    # (event timestamp ms, message id, value)
    recent: tuple[int, str, Any] | None = None
    first: tuple[int, str, Any] | None = None
    # Receive time of the newest event counted here: when the value last changed because of
    # an event (the same on replay and in a backfill, unlike the worker's clock).
    updated_ms: int = 0


encode = msgspec.msgpack.Encoder().encode
decode = msgspec.msgpack.Decoder(Partial).decode


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def add(partial: Partial, function: str, value: Any, ts: int, message_id: str, received_ms: int) -> bool:
    """Count one event's `value` (MISSING when the field is absent); False if it does not
    count (a SUM of a string, a MOST_RECENT of nothing)."""
    if function == "COUNT":
        if value is MISSING or value is None:
            return False
        partial.count += 1
    elif function == "SUM":
        if not _number(value):
            return False
        partial.total = str(Decimal(partial.total) + Decimal(repr(value) if isinstance(value, float) else value))
    elif function in ("MIN", "MAX"):
        if not _number(value):
            return False
        partial.low = value if partial.low is None else min(partial.low, value)
        partial.high = value if partial.high is None else max(partial.high, value)
    elif value is MISSING or value is None:
        return False
    elif function == "MOST_RECENT":
        if partial.recent is None or (ts, message_id) > (partial.recent[0], partial.recent[1]):
            partial.recent = (ts, message_id, value)
    elif partial.first is None or (ts, message_id) < (partial.first[0], partial.first[1]):
        partial.first = (ts, message_id, value)
    if function != "COUNT":
        partial.count += 1
    partial.updated_ms = max(partial.updated_ms, received_ms)
    return True


def combine(partials: Iterable[Partial], function: str) -> tuple[Any, int] | None:
    """(value, last updated ms) of the buckets together; None when they counted nothing."""
    parts = [p for p in partials if p.count]
    if not parts:
        return None
    updated = max(p.updated_ms for p in parts)
    if function == "COUNT":
        return sum(p.count for p in parts), updated
    if function == "SUM":
        return _plain(sum((Decimal(p.total) for p in parts), Decimal(0))), updated
    if function == "MIN":
        return min(p.low for p in parts if p.low is not None), updated
    if function == "MAX":
        return max(p.high for p in parts if p.high is not None), updated
    if function == "MOST_RECENT":
        return max((p.recent for p in parts if p.recent), key=lambda r: (r[0], r[1]))[2], updated
    return min((p.first for p in parts if p.first), key=lambda r: (r[0], r[1]))[2], updated


def _plain(total: Decimal) -> int | float:
    """An integral sum of integers stays an integer; anything with a fraction is a float."""
    exponent = total.as_tuple().exponent
    return int(total) if isinstance(exponent, int) and exponent >= 0 else float(total)
