"""A mapping set: source fields → XDM paths, compiled once, applied to each row.

The document follows Adobe's mapping set shape (`mappings[]` of `sourceType`, `source`,
`destination`); inlet adds an optional `default` per mapping, used when the source is null
or empty. Destinations are dotted XDM paths, with `[n]` for array items, e.g.
`identityMap.Email[0].id`. A source that evaluates to null leaves its destination out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import msgspec

from inlet.dataprep.expression import ExpressionError, compile_expression, field_path, lookup
from inlet.dataprep.functions import MappingFailure, iso

SourceType = Literal["ATTRIBUTE", "EXPRESSION", "CONSTANT"]


class Mapping(msgspec.Struct, kw_only=True):
    source: str
    destination: str
    sourceType: SourceType = "ATTRIBUTE"
    # inlet: the value when the source is null or empty (a string, number or boolean).
    default: str | int | float | bool | None = None


class MappingSet(msgspec.Struct, kw_only=True):
    mappings: list[Mapping]


_decode = msgspec.json.Decoder(MappingSet).decode
_SEGMENT = re.compile(r"^([^\[\]]+)((?:\[\d+\])*)$")


def decode_mapping_set(data: bytes) -> MappingSet:
    """Decode and check a mapping set; raises `ExpressionError` with the first problem."""
    try:
        mapping_set = _decode(data)
    except msgspec.DecodeError as exc:
        raise ExpressionError(f"not a mapping set: {exc}") from None
    Mapper(mapping_set)  # compiles every expression and destination, or raises
    return mapping_set


Step = tuple[str, list[int]]  # an object key and the array indexes after it


def destination_steps(destination: str) -> list[Step]:
    steps: list[Step] = []
    for part in destination.split("."):
        match = _SEGMENT.match(part)
        if match is None:
            raise ExpressionError(f"destination {destination!r} is not a dotted path (with [n] for items)")
        indexes = [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
        if any(i > 1000 for i in indexes):
            raise ExpressionError(f"destination {destination!r}: array index too large")
        steps.append((match.group(1), indexes))
    return steps


def place(target: dict[str, Any], steps: list[Step], value: Any) -> None:
    """Set `value` at `steps` in `target`, creating objects and arrays on the way."""
    node: Any = target
    for depth, (key, indexes) in enumerate(steps):
        last = depth == len(steps) - 1
        if not indexes:
            if last:
                node[key] = value
                return
            node = node.setdefault(key, {})
            continue
        array = node.setdefault(key, [])
        for n, index in enumerate(indexes):
            while len(array) <= index:
                array.append(None)
            final = n == len(indexes) - 1
            if final and last:
                array[index] = value
                return
            if array[index] is None:
                array[index] = {} if final else []
            array = array[index]
        node = array


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return value


def _constant(value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda row: value


def _field(path: list[str]) -> Callable[[dict[str, Any]], Any]:
    return lambda row: lookup(row, path)


def _typed_constant(text: str) -> Any:
    """A CONSTANT source is text; `true`, `false` and numbers become JSON values (XDM
    booleans and numbers), anything else stays a string."""
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if number == number and number not in (float("inf"), float("-inf")) else text


class Mapper:
    """A compiled mapping set."""

    def __init__(self, mapping_set: MappingSet) -> None:
        if not mapping_set.mappings:
            raise ExpressionError("a mapping set needs at least one mapping")
        self.steps: list[tuple[Mapping, Callable[[dict[str, Any]], Any], list[Step]]] = []
        for mapping in mapping_set.mappings:
            if mapping.sourceType == "EXPRESSION":
                compiled = compile_expression(mapping.source)
            elif mapping.sourceType == "CONSTANT":
                compiled = _constant(_typed_constant(mapping.source))
            else:
                compiled = _field(field_path(mapping.source))
            self.steps.append((mapping, compiled, destination_steps(mapping.destination)))

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        """The XDM document of one source row; raises `MappingFailure` naming the mapping."""
        out: dict[str, Any] = {}
        for mapping, compiled, steps in self.steps:
            try:
                value = compiled(row)
            except MappingFailure as failure:
                failure.destination = mapping.destination
                raise
            except RecursionError:
                raise MappingFailure("expression", mapping.source, "nests too deeply", mapping.destination) from None
            if (value is None or value == "") and mapping.default is not None:
                value = mapping.default
            if value is None:
                continue
            place(out, steps, _plain(value))
        return out
