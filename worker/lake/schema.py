"""A dataset's schema in the lake, and the only ways it may evolve.

The rule every file of a dataset follows: it carries the dataset's whole schema as it stood
when the file was written. Columns, and fields inside structs, are only ever added (at the
end), and a number column is only ever widened from integer to float. So the newest file's
schema reads every older file, and any engine that combines files by name (DuckDB
`union_by_name`, Spark `mergeSchema`, pyarrow's unified schema, Polars with `missing_columns`)
sees one table. A value that would break the rule (a string where the files hold numbers, an
object where they hold a list) is not written as a column: `worker.lake.conform` keeps it in
the row's `_inlet_overflow` JSON column. The one exception to the rule: a column nested past
`MAX_DEPTH` (which files of an older inlet may hold) is not carried into new files
(`readable`), since no file holding it can be opened by pyarrow.

`DatasetSchema` is a worker's view of that schema: learned from the newest files when the
worker first writes to the dataset, updated from every file it writes and from new files
other workers wrote into the partitions it writes to.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
from polars.datatypes import DataTypeClass

log = logging.getLogger("inlet.worker.lake")

DType = pl.DataType | DataTypeClass  # Polars hands out either
Schema = dict[str, DType]

LINEAGE_PREFIX = "_inlet_"
# The hive partition keys of the layout (`worker.lake.writer`). Engines read a partition key
# in place of a column of the same name, so no column may take these names: a top-level XDM
# field named so is kept in the row's overflow instead (`worker.lake.conform`). They cannot
# start with `_`, which pyarrow and Spark skip when they list a dataset.
PARTITION_KEYS = ("inlet_date", "inlet_hour")
# Past these, a member of a document is kept in the row's overflow column as JSON text, not as
# columns. Depth: containers (objects, arrays) below the document; Parquet spends two levels
# on each list and pyarrow refuses files nested past 100 levels, so 32 keeps every reader
# (Polars, pyarrow, DuckDB) well inside its limits. Fields: named fields of the dataset's
# schema, top-level columns and struct fields alike; every file carries them all, so one
# event with thousands of keys would otherwise widen every later file of the dataset.
MAX_DEPTH = 32
MAX_FIELDS = 2_000
# A field name Parquet and every engine hold, but that msgspec (our validator) and SQL
# quoting cannot: a quote, a backslash or a control character.
_BAD_NAME = re.compile(r'["\\\x00-\x1f]')


def bad_name(name: str) -> bool:
    """Whether `name` may never be a column name (see `_BAD_NAME`); "" neither."""
    return not name or _BAD_NAME.search(name) is not None


def depth(dtype: DType) -> int:
    """Containers nested in a column of `dtype`, itself included (a scalar: 0)."""
    if isinstance(dtype, pl.Struct):
        return 1 + max((depth(f.dtype) for f in dtype.fields), default=0)
    if isinstance(dtype, (pl.List, pl.Array)):
        return 1 + depth(dtype.inner)
    return 0


def readable(schema: Schema) -> Schema:
    """`schema` without what nests past `MAX_DEPTH` (columns an older inlet let in): every
    file carries the dataset's whole schema, so such a column would make every later file
    one that pyarrow cannot open. New rows never bring one (`conform` keeps it as JSON)."""
    out: Schema = {}
    for name, dtype in schema.items():
        kept = _within(dtype, 1)
        if kept is not None:
            out[name] = kept
    return out


def _within(dtype: DType, level: int) -> DType | None:
    """`dtype` (a value at `level`) cut like `conform` cuts documents: structs field by
    field, lists whole."""
    if level + depth(dtype) - 1 <= MAX_DEPTH:
        return dtype
    if isinstance(dtype, pl.Struct) and level <= MAX_DEPTH:
        fields = [pl.Field(f.name, t) for f in dtype.fields if (t := _within(f.dtype, level + 1)) is not None]
        return pl.Struct(fields) if fields else None
    return None


def count_fields(schema: Schema) -> int:
    """Named fields of `schema`: its columns and every struct field inside them."""
    return sum(1 + _inner_fields(dtype) for dtype in schema.values())


def _inner_fields(dtype: DType) -> int:
    if isinstance(dtype, pl.Struct):
        return sum(1 + _inner_fields(f.dtype) for f in dtype.fields)
    if isinstance(dtype, (pl.List, pl.Array)):
        return _inner_fields(dtype.inner)
    return 0


def has_bad_name(dtype: DType) -> bool:
    if isinstance(dtype, pl.Struct):
        return any(bad_name(f.name) or has_bad_name(f.dtype) for f in dtype.fields)
    if isinstance(dtype, (pl.List, pl.Array)):
        return has_bad_name(dtype.inner)
    return False
# Every file carries the whole schema, so a few of the newest files hold all of it; more
# are read only to converge after races between workers.
NEWEST_FILES = 16


def storable(dtype: DType) -> DType | None:
    """What Parquet can hold for a type Polars inferred from JSON; None: nothing to store.

    An object that is `{}` in every row has no fields, and Parquet has no struct without
    fields: it is left out (read back as null) until a row gives it fields. Integers past
    64 bits, which no Parquet reader reads back, widen to float like any number column.
    """
    if isinstance(dtype, pl.Struct):
        fields = {f.name: storable(f.dtype) for f in dtype.fields}
        kept = [pl.Field(name, t) for name, t in fields.items() if t is not None]
        return pl.Struct(kept) if kept else None
    if isinstance(dtype, (pl.List, pl.Array)):
        inner = storable(dtype.inner)
        return pl.List(inner) if inner is not None else None
    if dtype in (pl.Int128, pl.UInt64, pl.UInt128):
        return pl.Float64()
    return dtype


def storable_schema(schema: Schema) -> Schema:
    out: Schema = {}
    for name, dtype in schema.items():
        kept = storable(dtype)
        if kept is not None:
            out[name] = kept
    return out


def merge(old: DType, new: DType) -> DType | None:
    """The type that reads both `old` and `new` values, or None when no widening does."""
    if old == new or new == pl.Null:
        return old
    if old == pl.Null:
        return new
    if old.is_numeric() and new.is_numeric():
        return pl.Float64() if old.is_float() or new.is_float() else old
    if isinstance(old, pl.Struct) and isinstance(new, pl.Struct):
        fields = {f.name: f.dtype for f in old.fields}
        for f in new.fields:
            if f.name in fields:
                merged = merge(fields[f.name], f.dtype)
                if merged is None:
                    return None
                fields[f.name] = merged
            else:
                fields[f.name] = f.dtype
        return pl.Struct(fields)
    if isinstance(old, pl.List) and isinstance(new, pl.List):
        inner = merge(old.inner, new.inner)
        return pl.List(inner) if inner is not None else None
    return None


def merged(known: Schema, batch: Schema) -> Schema:
    """`known` extended by `batch`: known columns first, in their order, new ones after.
    Where a batch type cannot widen the known one, the known type stays (the caller has
    already quarantined the rows that disagree)."""
    out = dict(known)
    for name, dtype in batch.items():
        if name not in out:
            out[name] = dtype
        else:
            widened = merge(out[name], dtype)
            if widened is not None:
                out[name] = widened
    return out


def _python_type(dtype: DType, names: list[int]) -> Any:
    """The msgspec type that accepts exactly the JSON values a column of `dtype` can hold
    (or null). Numbers accept ints and floats alike: that is the allowed widening."""
    if isinstance(dtype, pl.Struct):
        return _struct({f.name: f.dtype for f in dtype.fields}, names) | None
    if isinstance(dtype, pl.List):
        return list[_python_type(dtype.inner, names)] | None  # type: ignore[misc]
    if dtype == pl.String:
        return str | None
    if dtype == pl.Boolean:
        return bool | None
    if dtype.is_numeric():
        return float | None
    return Any


def _struct(fields: Schema, names: list[int]) -> Any:
    # Field names in XDM are not Python identifiers (`@id`, `xdm:foo`, `class`): positional
    # names, renamed to the JSON keys. Unknown keys are skipped: new fields are allowed.
    # msgspec cannot rename to a name with a quote, backslash or control character; such a
    # column (in files an older inlet wrote) is left out here, so it goes unchecked, and
    # `conform` keeps any value under that name in the row's overflow, never in the column.
    names.append(len(names))
    python = {f"f{i}": name for i, name in enumerate(fields) if not bad_name(name)}
    return msgspec.defstruct(
        f"Doc{names[-1]}",
        [(p, _python_type(fields[key], names), None) for p, key in python.items()],
        rename=python,
        gc=False,
    )


def validator(schema: Schema) -> Callable[[bytes], object]:
    """A decoder that fails, naming the path, on a document whose values the columns of
    `schema` cannot hold; it runs in C, so every row can afford it."""
    return msgspec.json.Decoder(_struct(schema, [])).decode


def xdm_columns(schema: dict[str, Any]) -> Schema:
    """A file's schema without its lineage columns."""
    return {k: v for k, v in schema.items() if not k.startswith(LINEAGE_PREFIX)}


class DatasetSchema:
    """One worker's view of a dataset's schema, kept in step with the dataset's files."""

    def __init__(self, dataset_dir: Path) -> None:
        self.dataset_dir = dataset_dir
        self.columns: Schema = {}
        self.files: set[Path] = set()
        self._validate: Callable[[bytes], object] | None = None

    def load(self) -> None:
        """Learn the schema from the newest files (each carries the whole schema)."""
        found = []
        # Any two-level partition layout: files written before the partition keys were
        # renamed (`date=`/`hour=`) still carry the dataset's schema.
        for path in self.dataset_dir.glob("*=*/*=*/part-*.parquet"):
            try:
                found.append((path.stat().st_mtime, path))
            except FileNotFoundError:  # compacted away meanwhile
                continue
        self.files.update(path for _, path in found)
        for _, path in sorted(found)[-NEWEST_FILES:]:
            self._learn_file(path)

    def refresh(self, directory: Path) -> None:
        """Learn from files in `directory` that this worker has not seen (another worker's
        files, which may have added fields)."""
        for path in sorted(directory.glob("part-*.parquet")):
            if path not in self.files:
                self.files.add(path)
                self._learn_file(path)

    def learn(self, path: Path, columns: Schema) -> None:
        """A file this worker wrote."""
        self.files.add(path)
        self._merge(columns)

    def validate(self, xdm: bytes) -> None:
        if self._validate is None:
            self._validate = validator(self.columns)
        self._validate(xdm)

    def _learn_file(self, path: Path) -> None:
        try:
            self._merge(xdm_columns(pl.read_parquet_schema(path)))
        except FileNotFoundError:
            return

    def _merge(self, columns: Schema) -> None:
        new = merged(self.columns, columns)
        if new != self.columns:
            self.columns = new
            self._validate = None
