"""Data Prep: every function with good and with bad input, the expression syntax, mapping sets.

Function names, argument order and examples follow Adobe's "Data Prep mapping functions"
page, https://experienceleague.adobe.com/en/docs/experience-platform/data-prep/functions
(e.g. `concat("Hi, ", "there", "!")` → "Hi, there!", `explode("Hi, there!", " ")` →
["Hi,", "there!"], `date("2019-10-23 11:24", "yyyy-MM-dd HH:mm")`, `iif(cond, a, b)`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest

from inlet.dataprep import Mapper, MappingFailure, decode_mapping_set
from inlet.dataprep.expression import ExpressionError, compile_expression

ROW = {"email": "  Ada@Shop.Example ", "first": "Ada", "last": "Lovelace", "age": "36", "tags": "a|b|c",
       "dob": "10/12/1815", "when": "2019-10-23 11:24", "blank": "", "obj": {"k": 1}, "First Name": "Ada",
       "name": {"first": "Ada"}, "flag": "yes", "price": "12.3456", "n": 3}


def run(expression: str, row: dict[str, Any] | None = None) -> Any:
    return compile_expression(expression)(ROW if row is None else row)


GOOD = [
    ('concat("Hi, ", "there", "!")', "Hi, there!"),
    ("concat(first, \" \", last)", "Ada Lovelace"),
    ('explode("Hi, there!", " ")', ["Hi,", "there!"]),
    ('split(tags, "|")', ["a", "b", "c"]),
    ('join("-", split(tags, "|"))', "a-b-c"),
    ('replacestr("This is a string re test", "re", "replace")', "This is a string replace test"),
    ('substr("adobe.com", 0, 5)', "adobe"),
    ("lower(email)", "  ada@shop.example "),
    ("lcase(first)", "ada"),
    ("upper(first)", "ADA"),
    ("ucase(first)", "ADA"),
    ("trim(email)", "Ada@Shop.Example"),
    ("ltrim(email)", "Ada@Shop.Example "),
    ("rtrim(email)", "  Ada@Shop.Example"),
    ("lower(trim(email))", "ada@shop.example"),
    ("length(first)", 3),
    ("sha256(lower(trim(email)))", hashlib.sha256(b"ada@shop.example").hexdigest()),
    ('sha256("abc", "UTF-8")', hashlib.sha256(b"abc").hexdigest()),
    ("sha1(first)", hashlib.sha1(b"Ada").hexdigest()),
    ("md5(first)", hashlib.md5(b"Ada").hexdigest()),
    ("to_integer(age)", 36),
    ('to_integer("36.9")', 36),
    ("to_bigint(age)", 36),
    ("to_float(price)", 12.3456),
    ("to_decimal(price, 2)", 12.35),
    ("to_boolean(flag)", True),
    ('format(date(when, "yyyy-MM-dd HH:mm"), "dd/MM/yyyy")', "23/10/2019"),
    ('format(date(dob, "dd/MM/yyyy"), "yyyy-MM-dd")', "1815-12-10"),
    ('format(date("2019-10-23T11:24:00Z"), "HH:mm")', "11:24"),
    ('format(date("nonsense", "yyyy", "2020-01-01T00:00:00Z"), "yyyy")', "2020"),
    ('iif(to_integer(age) >= 18, "adult", "minor")', "adult"),
    ('iif(age > 40, "old", "young")', "young"),
    ('iif(first == "Ada" && !is_empty(last), "yes", "no")', "yes"),
    ('iif(first != "Ada" || n < 2, "yes", "no")', "no"),
    ('coalesce(blank, missing, "default")', "default"),
    ("coalesce(first, \"x\")", "Ada"),
    ("is_empty(blank)", True),
    ("is_null(missing)", True),
    ('decode(first, "Ada", "A", "Bob", "B", "?")', "A"),
    ('decode("Zed", "Ada", "A", "?")', "?"),
    ("${First Name}", "Ada"),
    ("name.first", "Ada"),
    ("lower(missing)", None),
]


@pytest.mark.parametrize(("expression", "expected"), GOOD)
def test_function_with_good_input(expression: str, expected: Any) -> None:
    assert run(expression) == expected


BAD = [
    ("concat(first, obj)", "concat", {"k": 1}),
    ('explode(first, "[")', "explode", "["),
    ('split(first, "")', "split", ""),
    ('join("-", obj)', "join", {"k": 1}),
    ('replacestr(obj, "a", "b")', "replacestr", {"k": 1}),
    ("substr(first, -1)", "substr", -1),
    ("lower(obj)", "lower", {"k": 1}),
    ("upper(obj)", "upper", {"k": 1}),
    ("trim(obj)", "trim", {"k": 1}),
    ('sha256(first, "no-such-charset")', "sha256", "Ada"),
    ("to_integer(first)", "to_integer", "Ada"),
    ("to_integer(blank)", "to_integer", ""),
    ("to_bigint(first)", "to_bigint", "Ada"),
    ('to_float("NaN")', "to_float", "NaN"),
    ("to_float(first)", "to_float", "Ada"),
    ("to_decimal(first, 2)", "to_float", "Ada"),
    ("to_boolean(first)", "to_boolean", "Ada"),
    ('date(when, "dd/MM/yyyy")', "date", "2019-10-23 11:24"),
    ("date(first)", "date", "Ada"),
    ('date(when, "yyyy-QQ")', "date", "yyyy-QQ"),
    ('format(first, "yyyy")', "format", "Ada"),
    ('iif(first, "a", "b")', "iif", "Ada"),
    ('iif(first > 3, "a", "b")', ">", "Ada"),
    ('iif(first && true, "a", "b")', "and", "Ada"),
    ("length(obj, 1)", "length", [{"k": 1}, 1]),
]


@pytest.mark.parametrize(("expression", "function", "value"), BAD)
def test_function_with_bad_input_names_the_function_and_value(expression: str, function: str, value: Any) -> None:
    with pytest.raises(MappingFailure) as failed:
        run(expression)
    assert failed.value.function == function
    assert failed.value.value == value


@pytest.mark.parametrize("expression", ["lower(", "nosuch(first)", 'concat("a" "b")', "first ==", "@"])
def test_a_broken_expression_is_refused_when_compiled(expression: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(expression)


def mapper(*mappings: dict[str, Any]) -> Mapper:
    return Mapper(decode_mapping_set(msgspec.json.encode({"mappings": list(mappings)})))


def test_a_mapping_set_builds_xdm_with_arrays_defaults_and_constants() -> None:
    m = mapper(
        {"sourceType": "EXPRESSION", "source": "lower(trim(email))", "destination": "identityMap.Email[0].id"},
        {"sourceType": "CONSTANT", "source": "true", "destination": "identityMap.Email[0].primary"},
        {"sourceType": "ATTRIBUTE", "source": "first", "destination": "person.name.firstName"},
        {"sourceType": "ATTRIBUTE", "source": "city", "destination": "homeAddress.city", "default": "unknown"},
        {"sourceType": "EXPRESSION", "source": "to_integer(age)", "destination": "_tenant.age"},
        {"sourceType": "ATTRIBUTE", "source": "missing", "destination": "left.out"},
    )
    assert m.apply(ROW) == {
        "identityMap": {"Email": [{"id": "ada@shop.example", "primary": True}]},
        "person": {"name": {"firstName": "Ada"}},
        "homeAddress": {"city": "unknown"},
        "_tenant": {"age": 36},
    }


def test_a_row_failing_mapping_names_the_destination() -> None:
    m = mapper({"sourceType": "EXPRESSION", "source": "to_integer(first)", "destination": "loyalty.points"})
    with pytest.raises(MappingFailure) as failed:
        m.apply(ROW)
    assert failed.value.report() == {"destination": "loyalty.points", "function": "to_integer", "value": "Ada",
                                     "message": "is not a number"}


@pytest.mark.parametrize("document", [
    b'{"mappings": []}',
    b'{"mappings": [{"source": "a", "destination": "b..c"}]}',
    b'{"mappings": [{"sourceType": "EXPRESSION", "source": "lower(", "destination": "b"}]}',
    b'{"mappings": [{"sourceType": "SQL", "source": "a", "destination": "b"}]}',
    b"not json",
])
def test_a_bad_mapping_set_is_refused(document: bytes) -> None:
    with pytest.raises(ExpressionError):
        decode_mapping_set(document)
