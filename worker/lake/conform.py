"""Conforming a batch to its dataset: what becomes columns, what is kept as JSON text.

A batch of one partition is parsed by Polars in Rust from the joined XDM bytes. Polars on its
own would make any column whose values disagree (a number here, a string there) a string
column, quietly, or fail the whole batch; neither may happen to a row. So, before a row joins:

1. Against the dataset's files (fast, every row): the row is decoded in C by a msgspec type
   built from the dataset's schema; a value the columns cannot hold fails with its path.
2. Only when that fails for a row, or when what Polars infers for the batch could hide a
   problem (a new field that could be a mix of kinds, a field name no column may have, nesting
   past `MAX_DEPTH`, the dataset past `MAX_FIELDS`), or Polars cannot infer one type: rows are
   walked in order, and the first value seen at a new path decides its kind.

A member of a document that no column can hold (a value of another kind than its column, an
array mixing kinds, a name with a quote, backslash or control character, a subtree nested too
deep, a field past the dataset's budget, a top-level name reserved for lineage or partitions)
is taken out of the columns and kept, as sent, in the row's `_inlet_overflow` column: a JSON
object shaped like the document that holds only those members. Inside an array there is no
place to cut, so the outermost array member goes whole. Only a row that is not a JSON object
at all (invalid UTF-8, a number no double holds, an array) goes to quarantine.

The first comer wins, so what is already in the lake never changes meaning. The rows that
pass are parsed into the dataset's schema extended by what they add (`schema.merged`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import msgspec
import polars as pl

from worker.lake.frames import Row, infer, parse
from worker.lake.schema import (
    LINEAGE_PREFIX,
    MAX_DEPTH,
    MAX_FIELDS,
    PARTITION_KEYS,
    DatasetSchema,
    DType,
    Schema,
    bad_name,
    count_fields,
    depth,
    has_bad_name,
    merged,
    readable,
    storable_schema,
)

log = logging.getLogger("inlet.worker.lake")

_decode = msgspec.json.Decoder().decode
_INT128 = 2**127  # Polars reads integers up to 128 bits (as floats: `schema.storable`), no further
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Conformed:
    xdm: pl.DataFrame | None  # the XDM columns of `rows`, in `columns`' types
    rows: list[Row]
    rejected: list[tuple[Row, str]]
    columns: Schema  # the dataset's schema once `xdm` is written
    overflowed: int = 0  # rows with members kept in `_inlet_overflow`
    first_overflow: str = ""  # why, for the first of them (for the log)


def conform(rows: list[Row], dataset: DatasetSchema) -> Conformed:
    known = dataset.columns
    keep: list[Row] = []
    rejected: list[tuple[Row, str]] = []
    walk = False
    for row in rows:
        try:
            # Also refuses what Polars would read quietly as something else: a lone
            # surrogate (`\\ud800`), even in a member it does not check.
            dataset.validate(row.xdm)
            keep.append(row)
        except msgspec.ValidationError:
            keep.append(row)  # some member does not fit: the walk finds which
            walk = True
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            rejected.append((row, f"the XDM document is not valid JSON: {exc}"))
    if not keep:
        return Conformed(None, [], rejected, known)
    inferred = None if walk else infer(keep)
    overflowed, why = 0, ""
    if inferred is None or _suspect(known, dict(inferred.schema)):
        fitted = fit(keep, known)
        keep, overflowed, why = fitted.rows, fitted.overflowed, fitted.first_reason
        rejected.extend(fitted.rejected)
        if not keep:
            return Conformed(None, [], rejected, known, overflowed, why)
        inferred = infer(keep)
        if inferred is None:
            raise ValueError("Polars cannot infer one schema for rows that agree on their kinds")
    columns = readable(merged(known, storable_schema(dict(inferred.schema))))
    if not columns:  # every document was `{}`
        return Conformed(None, keep, rejected, known, overflowed, why)
    if list(inferred.schema.items()) == list(columns.items()):  # the usual case: parsed once
        return Conformed(inferred, keep, rejected, columns, overflowed, why)
    return Conformed(parse(keep, columns), keep, rejected, columns, overflowed, why)


def _has_string(dtype: DType) -> bool:
    if isinstance(dtype, pl.Struct):
        return any(_has_string(f.dtype) for f in dtype.fields)
    if isinstance(dtype, pl.List):
        return _has_string(dtype.inner)
    return dtype == pl.String


def _suspect(known: Schema, batch: Schema) -> bool:
    """Whether the batch may hide what no column can hold, so rows need the walk: Polars
    infers a string column for a mix of kinds, so a new string field needs it (known paths
    were checked by the validator); so do names no column may take, nesting past
    `MAX_DEPTH` and a schema past `MAX_FIELDS`."""
    for name, dtype in batch.items():
        if _reserved(name) or bad_name(name) or _new_string(known.get(name), dtype):
            return True
        if depth(dtype) > MAX_DEPTH or has_bad_name(dtype):
            return True
    # Past the budget only if the batch adds fields: a dataset already past it (files an older
    # inlet wrote) would otherwise walk every batch.
    total = count_fields(merged(known, storable_schema(batch)))
    return total > MAX_FIELDS and total > count_fields(known)


def _reserved(name: str) -> bool:
    return name.startswith(LINEAGE_PREFIX) or name in PARTITION_KEYS


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


class _Walk:
    """One row's walk: the undo log of what it added to the kinds, and the field budget."""

    __slots__ = ("undo", "fields", "first_reason")

    def __init__(self, fields: int) -> None:
        self.undo: list[tuple[Any, ...]] = []
        self.fields = fields
        self.first_reason = ""


def _visit(value: Any, node: _Kind, path: str, level: int, walk: _Walk) -> str:
    """Check `value` (nested `level` containers deep, if it is one) against `node`, extending
    the tree with what is new; returns why no column can hold it ('' when one can).
    Extensions are logged in `walk.undo`."""
    kind = _json_kind(value)
    if kind == "null":
        return ""
    if kind in ("object", "array") and level > MAX_DEPTH:
        return f"field {path!r} nests deeper than {MAX_DEPTH} levels"
    if kind == "number" and isinstance(value, int) and not -_INT128 <= value < _INT128:
        return f"field {path!r} is an integer no column type holds"
    if node.kind == "unknown":
        walk.undo.append(("kind", node))
        node.kind = kind
    elif node.kind != kind:
        return f"field {path!r} is {_a(kind)} here but {_a(node.kind)} in the dataset's files or earlier rows"
    if kind == "object":
        for key, child_value in value.items():
            where = f"{path}.{key}" if path else key
            child, reason = _field(node, key, where, walk)
            if not reason and child is not None:
                reason = _visit(child_value, child, where, level + 1, walk)
            if reason:
                return reason
    elif kind == "array":
        if node.item is None:
            node.item = _Kind()
            walk.undo.append(("item", node))
        for item in value:
            reason = _visit(item, node.item, f"{path}[]", level + 1, walk)
            if reason:
                return reason
    return ""


def _field(node: _Kind, key: str, where: str, walk: _Walk) -> tuple[_Kind | None, str]:
    """The kind node of member `key` of an object (added if new), or why it cannot be a column."""
    if bad_name(key):
        return None, f"field {where!r} has a name no column can have (a quote, backslash or control character)"
    child = node.fields.get(key)
    if child is None:
        if walk.fields >= MAX_FIELDS:
            return None, f"field {where!r} is past the dataset's {MAX_FIELDS} fields"
        child = node.fields[key] = _Kind()
        walk.undo.append(("field", node, key))
        walk.fields += 1
    return child, ""


def _fit_object(document: dict[str, Any], node: _Kind, path: str, level: int, walk: _Walk) -> dict[str, Any]:
    """Take out of `document` (in place) the members no column can hold; returns them,
    shaped like the document. Objects are cut member by member; arrays go whole."""
    moved: dict[str, Any] = {}
    for key in list(document):
        value = document[key]
        where = f"{path}.{key}" if path else key
        mark = len(walk.undo)
        if level == 0 and _reserved(key):
            reason = f"field {key!r} is a name reserved for lineage or partition columns"
        else:
            child, reason = _field(node, key, where, walk)
            if child is not None and isinstance(value, dict) and child.kind in ("unknown", "object") \
                    and level + 1 <= MAX_DEPTH:
                if child.kind == "unknown":
                    walk.undo.append(("kind", child))
                    child.kind = "object"
                inner = _fit_object(value, child, where, level + 1, walk)
                if inner:
                    moved[key] = inner
                continue
            if child is not None:
                reason = _visit(value, child, where, level + 1, walk)
        if reason:
            _rollback(walk, mark)
            moved[key] = document.pop(key)
            walk.first_reason = walk.first_reason or reason
    return moved


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _rollback(walk: _Walk, mark: int = 0) -> None:
    undo = walk.undo
    while len(undo) > mark:
        entry = undo.pop()
        if entry[0] == "kind":
            entry[1].kind = "unknown"
        elif entry[0] == "field":
            del entry[1].fields[entry[2]]
            walk.fields -= 1
        else:
            entry[1].item = None


@dataclass(slots=True)
class Fitted:
    rows: list[Row]  # every row that can be written, rewritten where members moved to overflow
    rejected: list[tuple[Row, str]]  # rows that are not JSON objects: quarantine
    overflowed: int
    first_reason: str


def fit(rows: list[Row], known: Schema) -> Fitted:
    """Walk `rows` in order against the dataset's kinds and those the rows before them set;
    members no column can hold move to the row's overflow."""
    root = _Kind.of(pl.Struct(known)) if known else _Kind("object")
    fields = count_fields(known)
    keep: list[Row] = []
    rejected: list[tuple[Row, str]] = []
    overflowed, first = 0, ""
    for row in rows:
        try:
            document = _decode(row.xdm)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            rejected.append((row, f"the XDM document is not valid JSON: {exc}"))
            continue
        if not isinstance(document, dict):
            rejected.append((row, f"the XDM document is {_a(_json_kind(document))}, not an object"))
            continue
        walk = _Walk(fields)
        moved = _fit_object(document, root, "", 0, walk)
        fields = walk.fields
        if not moved:
            keep.append(row)
            continue
        overflowed += 1
        first = first or walk.first_reason
        keep.append(dataclasses.replace(row, xdm=_encode(document), overflow=_encode(moved)))
    return Fitted(keep, rejected, overflowed, first)
