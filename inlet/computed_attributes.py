"""Computed attribute definitions: the contract shared by the config file, the API and workers.

A definition says which events count (`filter`), what is read from them (`field`), how they
combine (`function`) and how far back (`duration`). The same Struct is read from the TOML
file, accepted by `POST /data/core/ca/attributes` and stored in the definitions bucket, so a
definition means one thing everywhere:

    {"name": "purchases30d", "function": "SUM", "field": "commerce.order.priceTotal",
     "filter": {"eventType": ["commerce.purchases"],
                "conditions": [{"field": "commerce.order.priceTotal", "op": "gt", "value": 10}]},
     "duration": {"count": 30, "unit": "DAYS"}}

The worker keeps time-bucketed partial aggregates per definition; `granularity_ms` and
`lookback_start` below decide the buckets and which of them a read combines, and
`fingerprint` names the state, so an edit that changes what is counted starts fresh state
(rebuilt by a backfill) instead of mixing two meanings in one number.
"""

from __future__ import annotations

import calendar
import hashlib
from datetime import datetime, timezone
from typing import Annotated, Literal

import msgspec

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

AttributeName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
# A dotted path into the XDM document (`commerce.order.priceTotal`, `_tenant.loyalty.points`).
FieldPath = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_@$][\w@$\-]*(\.[A-Za-z_@$][\w@$\-]*)*$", max_length=512)]
Function = Literal["SUM", "COUNT", "MIN", "MAX", "MOST_RECENT", "FIRST"]
Unit = Literal["HOURS", "DAYS", "WEEKS", "MONTHS"]
Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"]
Scalar = str | int | float | bool
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]

# The longest lookback, six months, in each unit (AEP's limit for computed attributes).
MAX_COUNT: dict[str, int] = {"HOURS": 183 * 24, "DAYS": 183, "WEEKS": 26, "MONTHS": 6}
# Bucket size per unit: an event leaves a value at most one bucket after it left the window.
GRANULARITY_MS: dict[str, int] = {"HOURS": 60_000, "DAYS": HOUR_MS, "WEEKS": HOUR_MS, "MONTHS": DAY_MS}
_UNIT_MS = {"HOURS": HOUR_MS, "DAYS": DAY_MS, "WEEKS": 7 * DAY_MS}


class Condition(msgspec.Struct, forbid_unknown_fields=True):
    """`field op value`; a condition on a field the event lacks is false (but `exists: false`)."""

    field: FieldPath
    op: Op
    value: Scalar | list[Scalar] | None = None


class Filter(msgspec.Struct, forbid_unknown_fields=True):
    # Empty: every event type.
    eventType: list[EventType] = []
    # All must hold.
    conditions: list[Condition] = []
    # Each list is a choice: at least one of its conditions must hold (how a PQL `or` across
    # fields compiles; see `inlet.pql`).
    anyOf: list[list[Condition]] = []


class Expression(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """AEP's `expression`: PQL text (`inlet.pql` compiles it to the fields above)."""

    type: str = "PQL"
    format: str = "pql/text"
    value: str
    meta: str | None = None


# AEP's lifecycle: DRAFT and DISABLED are not counted; NEW is shown as NEW, PROCESSING or
# PROCESSED by the backfill's progress.
Status = Literal["DRAFT", "NEW", "DISABLED"]


class Duration(msgspec.Struct, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=1)]
    unit: Unit


class Definition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One computed attribute. Unknown keys are refused (a typo must not silently count
    everything); `version`, `createEpoch` and `updateEpoch` are kept by the API."""

    name: AttributeName
    function: Function
    duration: Duration
    field: FieldPath | None = None
    filter: Filter = msgspec.field(default_factory=Filter)
    sandbox: str = "prod"
    displayName: str = ""
    description: str = ""
    expression: Expression | None = None
    status: Status = "NEW"
    keepCurrent: bool = False  # AEP's fast refresh; inlet's values are always current
    imsOrgId: str = ""
    version: int = 1
    createEpoch: int = 0
    updateEpoch: int = 0


encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(Definition).decode


def problem(definition: Definition) -> str | None:
    """What is wrong with a well-typed definition, in one sentence (None: nothing)."""
    if definition.function != "COUNT" and not definition.field:
        return f"function {definition.function} needs a field to read"
    limit = MAX_COUNT[definition.duration.unit]
    if definition.duration.count > limit:
        return f"duration may be at most 6 months: {limit} {definition.duration.unit}"
    choices = definition.filter.anyOf
    if len(definition.filter.eventType) > 100 or len(definition.filter.conditions) + sum(map(len, choices)) > 40:
        return "filter takes at most 100 event types and 40 conditions"
    for index, condition in enumerate(definition.filter.conditions):
        wrong = _condition_problem(condition)
        if wrong:
            return f"filter.conditions[{index}]: {wrong}"
    for index, choice in enumerate(choices):
        if not choice:
            return f"filter.anyOf[{index}] is empty"
        for inner, condition in enumerate(choice):
            wrong = _condition_problem(condition)
            if wrong:
                return f"filter.anyOf[{index}][{inner}]: {wrong}"
    return None


def counted(definition: Definition) -> bool:
    """Whether workers count it: drafts and disabled definitions are kept but not counted."""
    return definition.status == "NEW"


def _condition_problem(condition: Condition) -> str | None:
    value = condition.value
    if condition.op == "exists":
        return None if value is None or isinstance(value, bool) else "exists takes true, false or no value"
    if condition.op == "in":
        if not isinstance(value, list) or not value or len(value) > 100:
            return "in takes a list of 1 to 100 values"
        return None
    if value is None or isinstance(value, list):
        return f"{condition.op} takes one value"
    if condition.op in ("gt", "gte", "lt", "lte") and isinstance(value, bool):
        return f"{condition.op} compares numbers or strings"
    return None


def fingerprint(definition: Definition) -> bytes:
    """8 bytes naming what a definition counts: changes to any of these need new state.
    (Display fields and metadata do not change it.)"""
    what = definition.filter
    # The filter as it was encoded before `anyOf` existed, so existing state keeps its name.
    filter_meaning: dict[str, object] = {"eventType": what.eventType, "conditions": what.conditions}
    if what.anyOf:
        filter_meaning["anyOf"] = what.anyOf
    meaning = encode([definition.sandbox, definition.name, definition.function, definition.field,
                      filter_meaning, definition.duration])
    return hashlib.blake2b(meaning, digest_size=8, person=b"inlet-ca").digest()


def granularity_ms(duration: Duration) -> int:
    return GRANULARITY_MS[duration.unit]


def lookback_start(duration: Duration, now_ms: int) -> int:
    """The first bucket a read at `now_ms` combines: now minus the duration (calendar months
    for MONTHS), rounded down to the bucket size. Reads and the write-time cut-off share it."""
    if duration.unit == "MONTHS":
        start = _months_before(now_ms, duration.count)
    else:
        start = now_ms - duration.count * _UNIT_MS[duration.unit]
    step = granularity_ms(duration)
    return start - start % step


def _months_before(now_ms: int, months: int) -> int:
    moment = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return int(moment.replace(year=year, month=month + 1, day=day).timestamp() * 1000)
