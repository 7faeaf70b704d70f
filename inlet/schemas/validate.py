"""Validating an XDM document against a resolved schema, fast when it is valid.

Two compiled forms of one schema (chosen by measurement, BENCHMARKS.md: schema validation):

- `typed`: the schema compiled to msgspec Struct types (closed objects forbid unknown fields,
  `Meta` constraints for lengths, ranges and patterns, `Literal` for enums, `datetime` with
  `tz=True` for `date-time`). Decoding the raw bytes with it *is* the validation, and it runs
  in C without building a dict: the cost of a valid message.
- `walk`: a plain recursive checker over the decoded document that collects *every* violation
  with its path. msgspec stops at the first error, and AEP's report lists them all, so this
  runs only for messages the typed decode refused (never for a valid one).

The schema is the Registry's resolved form (`xed-full`): `type`, `properties`, `required`,
`additionalProperties` (false, or the schema of a map's values), `items`, `enum`, `format`
(`date-time`, `date`, `email`, `uri`, `uri-reference`), `minLength`, `maxLength`, `pattern`,
`minimum`, `maximum`, `maxItems`.
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
URI = r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$"
_patterns: dict[str, re.Pattern[str]] = {}


class Violation(msgspec.Struct, frozen=True):
    """One way a document breaks its schema: where (`path`, JSON-pointer-like, `/` for the
    root) and why (`code`: type, required, enum, format, minLength, maxLength, pattern,
    minimum, maximum, maxItems, undeclared)."""

    path: str
    code: str
    message: str


class Validator:
    """A schema compiled once; `check(raw)` → [] when valid, else every violation."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        counter = itertools.count()
        self._decode: Callable[[bytes], Any] = msgspec.json.Decoder(_typed(schema, "Xdm", counter)).decode

    def check(self, raw: bytes) -> list[Violation]:
        try:
            self._decode(raw)
            return []
        except msgspec.ValidationError:
            pass
        return walk(self.schema, msgspec.json.decode(raw), "")

    def check_value(self, value: Any) -> list[Violation]:
        return walk(self.schema, value, "")


# Fast path: msgspec types ---------------------------------------------------------------------

_DATE_TIME = Annotated[datetime.datetime, msgspec.Meta(tz=True)]


def _typed(schema: dict[str, Any], name: str, counter: itertools.count[int]) -> Any:
    kind = schema.get("type")
    if kind == "object":
        values = schema.get("additionalProperties", False)
        properties: dict[str, Any] = schema.get("properties", {})
        if isinstance(values, dict) and not properties:
            return dict[str, _typed(values, name + "V", counter)]  # type: ignore[misc]
        required = set(schema.get("required", []))
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        for key, sub in properties.items():
            attr = f"f{next(counter)}"
            rename[attr] = key
            typ = _typed(sub, name + "_" + attr, counter)
            # An optional field may be absent or null (null is absent, as for AEP's ingestion).
            fields.append((attr, typ) if key in required else (attr, typ | None | msgspec.UnsetType, msgspec.UNSET))
        fields.sort(key=lambda f: len(f) == 3)  # required fields first
        return msgspec.defstruct(f"{name}{next(counter)}", fields, rename=rename, kw_only=True,
                                 forbid_unknown_fields=values is False)
    if kind == "array":
        item_type: Any = _typed(schema.get("items", {}), name + "I", counter)
        inner: Any = list[item_type]
        return Annotated[inner, msgspec.Meta(max_length=schema["maxItems"])] if "maxItems" in schema else inner
    if kind == "string":
        if "enum" in schema:
            return Literal[tuple(schema["enum"])]
        fmt = schema.get("format")
        if fmt == "date-time":
            return _DATE_TIME
        if fmt == "date":
            return datetime.date
        meta: dict[str, Any] = {}
        patterns = [p for p in (schema.get("pattern"), {"email": EMAIL, "uri": URI}.get(fmt or "")) if p]
        if patterns:
            meta["pattern"] = patterns[0] if len(patterns) == 1 else "".join(f"(?={p})" for p in patterns)
        if "minLength" in schema:
            meta["min_length"] = schema["minLength"]
        if "maxLength" in schema:
            meta["max_length"] = schema["maxLength"]
        return Annotated[str, msgspec.Meta(**meta)] if meta else str
    if kind in ("number", "integer"):
        meta = {}  # noqa: F841
        if "minimum" in schema:
            meta["ge"] = schema["minimum"]
        if "maximum" in schema:
            meta["le"] = schema["maximum"]
        base: Any = float if kind == "number" else int
        return Annotated[base, msgspec.Meta(**meta)] if meta else base
    if kind == "boolean":
        return bool
    return Any


# Slow path: every violation -------------------------------------------------------------------

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def walk(schema: dict[str, Any], value: Any, path: str) -> list[Violation]:
    """Every violation of `value` against `schema`, depth first, in document order."""
    kind = schema.get("type")
    where = path or "/"
    if kind in _TYPES and not _TYPES[kind](value):
        return [Violation(where, "type", f"expected {kind}, got {_json_type(value)}")]
    out: list[Violation] = []
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", False)
        for key in schema.get("required", []):
            if key not in value:
                out.append(Violation(f"{path}/{key}", "required", f"required field {key!r} is missing"))
        for key, item in value.items():
            sub = properties.get(key)
            if item is None and sub is not None and key not in schema.get("required", ()):
                continue  # a declared optional field: null is absent (a map value must be a value)
            if sub is not None:
                out.extend(walk(sub, item, f"{path}/{key}"))
            elif isinstance(extra, dict):
                out.extend(walk(extra, item, f"{path}/{key}"))
            elif extra is False:
                out.append(Violation(f"{path}/{key}", "undeclared",
                                     f"field {key!r} is not declared in the schema"))
    elif kind == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(Violation(where, "maxItems", f"more than {schema['maxItems']} items"))
        items = schema.get("items", {})
        for index, item in enumerate(value):
            out.extend(walk(items, item, f"{path}/{index}"))
    elif kind == "string":
        out.extend(_string(schema, value, where))
    elif kind in ("number", "integer"):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(Violation(where, "minimum", f"{value} is less than the minimum {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            out.append(Violation(where, "maximum", f"{value} is greater than the maximum {schema['maximum']}"))
    return out


def _string(schema: dict[str, Any], value: str, where: str) -> list[Violation]:
    out: list[Violation] = []
    if "enum" in schema and value not in schema["enum"]:
        return [Violation(where, "enum", f"{value!r} is not one of {schema['enum']}")]
    if "minLength" in schema and len(value) < schema["minLength"]:
        out.append(Violation(where, "minLength", f"shorter than {schema['minLength']} characters"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        out.append(Violation(where, "maxLength", f"longer than {schema['maxLength']} characters"))
    if "pattern" in schema and not _search(schema["pattern"], value):
        out.append(Violation(where, "pattern", f"{value!r} does not match {schema['pattern']!r}"))
    fmt = schema.get("format")
    if fmt and not _format_ok(fmt, value):
        out.append(Violation(where, "format", f"{value!r} is not a valid {fmt}"))
    return out


def _format_ok(fmt: str, value: str) -> bool:
    if fmt == "date-time":
        try:
            msgspec.convert(value, _DATE_TIME)
            return True
        except msgspec.ValidationError:
            return False
    if fmt == "date":
        try:
            msgspec.convert(value, datetime.date)
            return True
        except msgspec.ValidationError:
            return False
    pattern = {"email": EMAIL, "uri": URI}.get(fmt)
    return pattern is None or _search(pattern, value)


def _search(pattern: str, value: str) -> bool:
    compiled = _patterns.get(pattern)
    if compiled is None:
        compiled = _patterns[pattern] = re.compile(pattern)
    return compiled.search(value) is not None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)
