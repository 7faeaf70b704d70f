"""A typed lake: the Parquet column types a dataset's XDM schema declares.

The lake worker (`worker.lake`) infers a column's type from the first value it sees, so two
senders that disagree (an integer price here, a float there; a number as a string) could give
a dataset a column type the schema never meant. With a schema, the dataset's lake schema
starts from the declared types instead: every declared field is a column of its XDM type from
the first file on (`string` → String, whatever its format, as XDM's JSON carries dates as
strings; `number` → Float64; `integer` → Int64; `boolean`; objects → Struct; arrays → List).
Maps (`identityMap`) have data for keys and stay inferred.

A new schema version widens the lake as the lake's own rule allows (docs/lake.md): new fields
become new columns at the end, an integer column may become Float64; a declared type the
dataset's files cannot widen to (a field that was a string and is now a number) keeps the
files' type, and values of the new type go to the row's overflow, never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from inlet.config import Config
from inlet.schemas.registry import Registry

Columns = dict[str, Any]


def columns(schema: dict[str, Any]) -> Columns:
    """Column name → Polars type for a resolved schema's declared fields."""
    return _fields(schema.get("properties", {}))


def _fields(properties: dict[str, Any]) -> Columns:
    out: Columns = {}
    for name, field in properties.items():
        dtype = _dtype(field) if isinstance(field, dict) else None
        if dtype is not None:
            out[name] = dtype
    return out


def _dtype(field: dict[str, Any]) -> Any:
    kind = field.get("type")
    if kind == "object":
        inner = _fields(field.get("properties", {}))
        return pl.Struct(inner) if inner else None  # a map, or an object with nothing declared
    if kind == "array":
        items = field.get("items")
        inner_type = _dtype(items) if isinstance(items, dict) else None
        return pl.List(inner_type) if inner_type is not None else None
    return {"string": pl.String, "number": pl.Float64, "integer": pl.Int64, "boolean": pl.Boolean}.get(str(kind))


def declared_columns(config: Config, registry: Registry) -> Callable[[str, str], Columns]:
    """For the lake worker: (sandbox, dataset) → the declared columns of the dataset's schema
    ({} without one), compiled once per schema version (the registry follows its bucket)."""
    cache: dict[tuple[str, str], tuple[object, Columns]] = {}

    def lookup(sandbox: str, dataset_id: str) -> Columns:
        dataset = config.dataset(sandbox, dataset_id)
        if dataset is None:
            return {}
        ref = registry.dataset_schema(dataset)
        found = registry.compiled(sandbox, ref) if ref else None
        if found is None:
            return {}
        validator = found[1]
        key = (sandbox, dataset_id)
        cached = cache.get(key)
        if cached is None or cached[0] is not validator:  # a new compiled form: the schema changed
            cached = cache[key] = (validator, columns(validator.schema))
        return cached[1]

    return lookup
