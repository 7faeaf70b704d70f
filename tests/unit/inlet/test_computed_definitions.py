"""Computed attribute definitions: what is accepted, what is refused, and the window math."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from inlet.computed_attributes import (
    Definition,
    Duration,
    fingerprint,
    lookback_start,
    problem,
)
from inlet.config import ConfigError, load

ISSUE_SHAPE = {"name": "purchases30d", "function": "SUM", "field": "commerce.order.priceTotal",
               "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 30, "unit": "DAYS"}}


def convert(**changes: Any) -> Definition:
    return msgspec.convert({**ISSUE_SHAPE, **changes}, Definition)


def test_the_issue_shape_is_accepted() -> None:
    definition = convert()
    assert problem(definition) is None and definition.sandbox == "prod"


@pytest.mark.parametrize("changes, wrong", [
    ({"function": "AVG"}, "Invalid enum value 'AVG'"),
    ({"duration": {"count": 30, "unit": "YEARS"}}, "Invalid enum value 'YEARS'"),
    ({"duration": {"count": 0, "unit": "DAYS"}}, ">= 1"),
    ({"name": "has.dot"}, "matching regex"),
    ({"fliter": {}}, "unknown field"),
    ({"filter": {"conditions": [{"field": "a", "op": "like", "value": "x"}]}}, "conditions\\[0\\].op"),
])
def test_badly_typed_definitions_are_refused(changes: dict[str, Any], wrong: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=wrong):
        convert(**changes)


@pytest.mark.parametrize("changes, wrong", [
    ({"field": None}, "needs a field"),
    ({"duration": {"count": 7, "unit": "MONTHS"}}, "at most 6 months"),
    ({"duration": {"count": 184, "unit": "DAYS"}}, "at most 6 months"),
    ({"duration": {"count": 27, "unit": "WEEKS"}}, "at most 6 months"),
    ({"filter": {"conditions": [{"field": "a", "op": "in", "value": 3}]}}, "list of 1 to 100"),
    ({"filter": {"conditions": [{"field": "a", "op": "gt", "value": True}]}}, "compares numbers or strings"),
    ({"filter": {"conditions": [{"field": "a", "op": "eq"}]}}, "takes one value"),
    ({"filter": {"conditions": [{"field": "a", "op": "exists", "value": 3}]}}, "exists takes"),
])
def test_senseless_definitions_are_refused(changes: dict[str, Any], wrong: str) -> None:
    assert wrong in (problem(convert(**changes)) or "")


def test_count_needs_no_field_and_six_months_is_the_limit() -> None:
    assert problem(convert(function="COUNT", field=None, duration={"count": 6, "unit": "MONTHS"})) is None
    assert problem(convert(duration={"count": 183 * 24, "unit": "HOURS"})) is None


def test_lookback_starts_are_aligned_to_buckets() -> None:
    now = 1_795_400_123_456
    assert lookback_start(Duration(30, "DAYS"), now) == (now - 30 * 86_400_000) // 3_600_000 * 3_600_000
    assert lookback_start(Duration(2, "HOURS"), now) == (now - 7_200_000) // 60_000 * 60_000
    # 2026-03-31T12:00Z minus one month is 2026-02-28 (clamped), aligned to the day.
    assert lookback_start(Duration(1, "MONTHS"), 1_774_958_400_000) == 1_772_236_800_000


def test_the_fingerprint_follows_meaning_not_display() -> None:
    base = fingerprint(convert())
    assert fingerprint(convert(description="shown in the UI", version=7)) == base
    assert fingerprint(convert(duration={"count": 31, "unit": "DAYS"})) != base
    assert fingerprint(convert(filter={"eventType": []})) != base


def test_config_seeds_are_validated_by_key(tmp_path: Path) -> None:
    path = tmp_path / "inlet.toml"
    entry = '[[computed_attributes]]\nname = "x"\nfunction = "MAX"\nduration = {count = 1, unit = "DAYS"}\n'
    path.write_text(entry)
    with pytest.raises(ConfigError, match="computed_attributes.x: function MAX needs a field"):
        load({"INLET_CONFIG": str(path)})
    path.write_text(entry.replace('"MAX"', '"COUNT"') * 2)
    with pytest.raises(ConfigError, match="duplicate computed attribute"):
        load({"INLET_CONFIG": str(path)})
    path.write_text(entry.replace('"MAX"', '"COUNT"'))
    assert load({"INLET_CONFIG": str(path)}).computed_attributes[0].name == "x"
