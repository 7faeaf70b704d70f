"""Schema evolution: what a dataset's files may change, and what goes to quarantine.

Each dataset has an established schema: the union of what its files hold (read from its newest
file when a worker first writes to it, then kept up to date). A new batch may add fields, miss
fields, or widen an integer to a float; readers combine files by name and apply that widening.
Anything else (a string where numbers were, an object where a string was) cannot be read back
as one column: the rows that carry such a value are quarantined with the reason, the rest are
written. Polars alone would quietly turn the whole column into strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import polars as pl

NUMERIC = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Float32, pl.Float64)
_decode = msgspec.json.Decoder().decode


def established(dataset_dir: Path) -> dict[str, Any]:
    """The schema of the dataset's newest file, or {} for a new dataset."""
    files = sorted(dataset_dir.rglob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    return dict(pl.read_parquet_schema(files[-1])) if files else {}


def _compatible(old: Any, new: Any) -> bool:
    if old == new or new == pl.Null or old == pl.Null:
        return True
    if isinstance(old, pl.DataType) and old.is_numeric() and isinstance(new, pl.DataType) and new.is_numeric():
        return True  # integer ↔ float: readers widen
    if isinstance(old, pl.Struct) and isinstance(new, pl.Struct):
        fields = {f.name: f.dtype for f in old.fields}
        return all(_compatible(fields[f.name], f.dtype) for f in new.fields if f.name in fields)
    if isinstance(old, pl.List) and isinstance(new, pl.List):
        return _compatible(old.inner, new.inner)
    return False


def conflicts(known: dict[str, Any], batch: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(path, established dtype) for every field whose new type cannot be read with the old."""
    out: list[tuple[str, Any]] = []
    for name, dtype in batch.items():
        if name not in known or _compatible(known[name], dtype):
            continue
        if isinstance(known[name], pl.Struct) and isinstance(dtype, pl.Struct):
            inner = {f.name: f.dtype for f in known[name].fields}
            out.extend(conflicts(inner, {f.name: f.dtype for f in dtype.fields}, f"{prefix}{name}."))
        else:
            out.append((prefix + name, known[name]))
    return out


def _fits(value: Any, dtype: Any) -> bool:
    if value is None:
        return True
    if isinstance(dtype, pl.Struct):
        return isinstance(value, dict)
    if isinstance(dtype, pl.List):
        return isinstance(value, list)
    if dtype == pl.Boolean:
        return isinstance(value, bool)
    if dtype in NUMERIC:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype == pl.String:
        return isinstance(value, str)
    return True


def misfits(xdm: bytes, paths: list[tuple[str, Any]]) -> str:
    """Why this document cannot join the dataset's columns ('' when it can)."""
    document = _decode(xdm)
    for path, dtype in paths:
        value: Any = document
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not _fits(value, dtype):
            return f"field {path!r} is {type(value).__name__} here but {dtype} in the dataset's files"
    return ""


def widen(known: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """The established schema after a file with `written` joined it."""
    merged = dict(known)
    for name, dtype in written.items():
        if name not in merged or merged[name] == pl.Null:
            merged[name] = dtype
        elif isinstance(merged[name], pl.DataType) and merged[name].is_integer() and dtype.is_float():
            merged[name] = dtype
    return merged
