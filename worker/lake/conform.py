"""Conforming a batch to its dataset: which rows become columns, which go to quarantine.

A batch of one partition is parsed by Polars in Rust from the joined XDM bytes. Polars on its
own would make any column whose values disagree (a number here, a string there) a string
column, quietly, or fail the whole batch; neither may happen to a row. So, before a row joins:

1. Against the dataset's files (fast, every row): the row is decoded in C by a msgspec type
   built from the dataset's schema; a value the columns cannot hold fails with its path.
2. Within the batch (only when the batch brings new fields that could hide a disagreement,
   or Polars cannot infer one type): rows are walked in order, and the first value seen at a
   new path decides its kind; a later row that disagrees goes to quarantine.

The first comer wins, so what is already in the lake never changes meaning. The rows that
pass are parsed into the dataset's schema extended by what they add (`schema.merged`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import polars as pl

from worker.lake.frames import Row, infer, parse
from worker.lake.schema import LINEAGE_PREFIX, DatasetSchema, DType, Schema, merged, storable_schema

_decode = msgspec.json.Decoder().decode


@dataclass(slots=True)
class Conformed:
    xdm: pl.DataFrame | None  # the XDM columns of `rows`, in `columns`' types
    rows: list[Row]
    rejected: list[tuple[Row, str]]
    columns: Schema  # the dataset's schema once `xdm` is written


def conform(rows: list[Row], dataset: DatasetSchema) -> Conformed:
    known = dataset.columns
    keep: list[Row] = []
    rejected: list[tuple[Row, str]] = []
    for row in rows:
        try:
            dataset.validate(row.xdm)
            keep.append(row)
        except msgspec.ValidationError as exc:
            rejected.append((row, f"type conflict with the dataset's files: {exc}"))
        except msgspec.DecodeError as exc:
            rejected.append((row, f"the XDM document is not valid JSON: {exc}"))
    if not keep:
        return Conformed(None, [], rejected, known)
    inferred = infer(keep)
    if inferred is None or _suspect(known, dict(inferred.schema)):
        keep, disagreeing = first_kind_wins(keep, known)
        rejected.extend(disagreeing)
        if not keep:
            return Conformed(None, [], rejected, known)
        inferred = infer(keep)
        if inferred is None:
            raise ValueError("Polars cannot infer one schema for rows that agree on their kinds")
    columns = merged(known, storable_schema(dict(inferred.schema)))
    if not columns:  # every document was `{}`
        return Conformed(None, keep, rejected, known)
    if list(inferred.schema.items()) == list(columns.items()):  # the usual case: parsed once
        return Conformed(inferred, keep, rejected, columns)
    return Conformed(parse(keep, columns), keep, rejected, columns)


def _has_string(dtype: DType) -> bool:
    if isinstance(dtype, pl.Struct):
        return any(_has_string(f.dtype) for f in dtype.fields)
    if isinstance(dtype, pl.List):
        return _has_string(dtype.inner)
    return dtype == pl.String


def _suspect(known: Schema, batch: Schema) -> bool:
    """Whether a new path of the batch may hide disagreeing rows: Polars infers a string
    column for a mix of kinds, so a new string field needs the row-by-row walk. Known paths
    were checked by the validator; a reserved lineage name needs the walk to find its rows."""
    for name, dtype in batch.items():
        if name.startswith(LINEAGE_PREFIX) or _new_string(known.get(name), dtype):
            return True
    return False


def _new_string(old: DType | None, new: DType) -> bool:
    if old is None or old == pl.Null:
        return _has_string(new)
    if isinstance(old, pl.Struct) and isinstance(new, pl.Struct):
        fields = {f.name: f.dtype for f in old.fields}
        return any(_new_string(fields.get(f.name), f.dtype) for f in new.fields)
    if isinstance(old, pl.List) and isinstance(new, pl.List):
        return _new_string(old.inner, new.inner)
    return False


class _Kind:
    """What JSON kind a path holds: the dataset's, or the first row's that set it."""

    __slots__ = ("kind", "fields", "item")

    def __init__(self, kind: str = "unknown") -> None:
        self.kind = kind
        self.fields: dict[str, _Kind] = {}
        self.item: _Kind | None = None

    @classmethod
    def of(cls, dtype: DType) -> _Kind:
        if isinstance(dtype, pl.Struct):
            node = cls("object")
            node.fields = {f.name: cls.of(f.dtype) for f in dtype.fields}
            return node
        if isinstance(dtype, pl.List):
            node = cls("array")
            node.item = cls.of(dtype.inner)
            return node
        if dtype == pl.String:
            return cls("string")
        if dtype == pl.Boolean:
            return cls("boolean")
        if dtype.is_numeric():
            return cls("number")
        return cls()


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _visit(value: Any, node: _Kind, path: str, undo: list[tuple[Any, ...]]) -> str:
    """Check `value` against `node`, extending the tree with what is new; returns why the
    value disagrees ('' when it does not). Extensions are logged in `undo`."""
    kind = _json_kind(value)
    if kind == "null":
        return ""
    if node.kind == "unknown":
        undo.append(("kind", node))
        node.kind = kind
    elif node.kind != kind:
        return f"field {path!r} is {_a(kind)} here but {_a(node.kind)} in the dataset's files or earlier rows"
    if kind == "object":
        for key, child_value in value.items():
            child = node.fields.get(key)
            if child is None:
                child = node.fields[key] = _Kind()
                undo.append(("field", node, key))
            reason = _visit(child_value, child, f"{path}.{key}" if path else key, undo)
            if reason:
                return reason
    elif kind == "array":
        if node.item is None:
            node.item = _Kind()
            undo.append(("item", node))
        for item in value:
            reason = _visit(item, node.item, f"{path}[]", undo)
            if reason:
                return reason
    return ""


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _rollback(undo: list[tuple[Any, ...]]) -> None:
    for entry in reversed(undo):
        if entry[0] == "kind":
            entry[1].kind = "unknown"
        elif entry[0] == "field":
            del entry[1].fields[entry[2]]
        else:
            entry[1].item = None


def first_kind_wins(rows: list[Row], known: Schema) -> tuple[list[Row], list[tuple[Row, str]]]:
    """Split `rows` into those whose values agree, path by path, with the dataset and with
    the rows before them, and the others with the reason."""
    root = _Kind.of(pl.Struct(known)) if known else _Kind("object")
    keep: list[Row] = []
    rejected: list[tuple[Row, str]] = []
    for row in rows:
        document = _decode(row.xdm)
        if not isinstance(document, dict):
            rejected.append((row, f"the XDM document is {_a(_json_kind(document))}, not an object"))
            continue
        reserved = [key for key in document if key.startswith(LINEAGE_PREFIX)]
        if reserved:
            rejected.append((row, f"field {reserved[0]!r} uses the prefix reserved for lineage columns"))
            continue
        undo: list[tuple[Any, ...]] = []
        reason = _visit(document, root, "", undo)
        if reason:
            _rollback(undo)
            rejected.append((row, reason))
        else:
            keep.append(row)
    return keep, rejected
