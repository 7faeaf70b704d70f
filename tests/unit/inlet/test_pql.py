"""inlet.pql: the PQL subset of computed attributes, compiled to the definition model.

Expressions from https://experienceleague.adobe.com/en/docs/experience-platform/profile/computed-attributes/api
(AdobeDocs/experience-platform.en, help/profile/computed-attributes/api.md)."""

from __future__ import annotations

import msgspec
import pytest

from inlet.pql import PqlError, compile_expression


def compiled(text: str) -> dict[str, object]:
    result = compile_expression(text)
    return {"function": result.function, "field": result.field, "filter": msgspec.to_builtins(result.filter),
            "duration": msgspec.to_builtins(result.duration) if result.duration else None}


def test_the_documented_sum_with_an_or_across_fields_and_a_lookback() -> None:
    result = compiled("xEvent[(commerce.checkouts.value > 0.0 or commerce.purchases.value > 1.0 or "
                      "commerce.order.priceTotal >= 10.0) and (timestamp occurs <= 7 days before now)]"
                      ".sum(commerce.order.priceTotal)")
    assert result["function"] == "SUM" and result["field"] == "commerce.order.priceTotal"
    assert result["duration"] == {"count": 7, "unit": "DAYS"}
    assert result["filter"] == {"eventType": [], "conditions": [], "anyOf": [[
        {"field": "commerce.checkouts.value", "op": "gt", "value": 0.0},
        {"field": "commerce.purchases.value", "op": "gt", "value": 1.0},
        {"field": "commerce.order.priceTotal", "op": "gte", "value": 10.0}]]}


def test_the_documented_most_recent_and_its_first_counterpart() -> None:
    most_recent = compiled('xEvent[eventType.equals("commerce.backofficeOrderPlaced", false)].topN(timestamp, 1)'
                           '.map({"timestamp": timestamp, "value": producedBy}).head()')
    assert most_recent == {"function": "MOST_RECENT", "field": "producedBy", "duration": None,
                           "filter": {"eventType": ["commerce.backofficeOrderPlaced"], "conditions": [], "anyOf": []}}
    first = compiled("xEvent.bottomN(timestamp, 1).head().web.webPageDetails.name")
    assert first["function"] == "FIRST" and first["field"] == "web.webPageDetails.name"


def test_not_is_pushed_into_the_conditions_and_or_is_distributed() -> None:
    result = compiled('xEvent[not (a in [1, "x"] or b.isNull()) and (eventType = "p" or eventType = "q")].count()')
    assert result["function"] == "COUNT" and result["field"] is None
    assert result["filter"] == {"eventType": ["p", "q"], "anyOf": [], "conditions": [
        {"field": "a", "op": "ne", "value": 1}, {"field": "a", "op": "ne", "value": "x"},
        {"field": "b", "op": "exists", "value": True}]}
    distributed = compiled("xEvent[(a = 1 and b = 2) or c = 3].min(d)")
    assert distributed["filter"]["anyOf"] == [  # type: ignore[index]
        [{"field": "a", "op": "eq", "value": 1}, {"field": "c", "op": "eq", "value": 3}],
        [{"field": "b", "op": "eq", "value": 2}, {"field": "c", "op": "eq", "value": 3}]]


@pytest.mark.parametrize(("text", "named"), [
    ("person.birthDate.getMonth() = currentMonth()", "xEvent"),
    ("xEvent.average(x)", "average"),
    ("xEvent[a.contains(\"b\")].count()", "contains()"),
    ("xEvent[a = 1 or timestamp occurs <= 2 days before now].count()", "or / not"),
    ("xEvent[shipDate occurs <= 1 days before now].count()", "occurs is supported on timestamp only"),
    ("xEvent.topN(timestamp, 3).head().x", "topN(timestamp, 3)"),
    ("xEvent[a = ].count()", "expected a number"),
    ("xEvent.count() 1", "unexpected '1' after the aggregation"),
    ("xEvent.count() + 1", "unexpected character '+'"),
    ("xEvent[a = 'x'].count()", "unexpected character"),
    ("xEvent[timestamp occurs <= 2 years before now].count()", "hours, days, weeks or months"),
    ("xEvent[" + " or ".join(f"(a{i} = 1 and b{i} = 2)" for i in range(6)) + "].count()", "clauses"),
])
def test_what_is_outside_the_subset_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(PqlError) as refused:
        compile_expression(text)
    assert named in str(refused.value)
