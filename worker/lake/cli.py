"""`inlet lake ls | query "<SQL>" | compact`: look into and maintain the Parquet lake.

`query` runs Polars SQL with one table per dataset of the sandbox, named by dataset id (quote
ids with dashes: `SELECT count(*) FROM "demo-events"`; an alias with underscores,
`demo_events`, is registered too). Files of one dataset may differ in schema (a new field, a
widened type): they are combined by name with relaxed types, and rows are deduplicated on
message id, so a query never sees a message twice. The partition keys are columns
(`inlet_date`, `inlet_hour`). `--format csv` writes nested values (structs, lists) as JSON
text, since CSV has no nesting. A dataset that has no files yet (nothing was rolled since
its first event) is named as such, with when its first file is due.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import polars as pl

from inlet.config import Config
from worker.lake import ack_wait
from worker.lake import rolls
from worker.lake.compact import CompactionBusy, compact
from worker.lake.quarantine import QUARANTINE
from worker.lake.writer import DATE_KEY, HOUR_KEY


def datasets(lake: Path, sandbox: str) -> dict[str, list[Path]]:
    root = lake / sandbox
    if not root.is_dir():
        return {}
    return {
        d.name: sorted(d.rglob("part-*.parquet"))
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith((".", "_"))
    }


def table(files: list[Path]) -> pl.LazyFrame:
    """One dataset's files as one frame: by column name, relaxed types, the partition keys as
    columns, deduplicated. The keys are read from the path here (either layout: files written
    before the keys were renamed sit under `date=`/`hour=`)."""
    frames = []
    for f in files:
        date, hour = (part.split("=", 1)[-1] for part in (f.parent.parent.name, f.parent.name))
        frames.append(pl.scan_parquet(f, hive_partitioning=False).with_columns(
            pl.lit(date).alias(DATE_KEY), pl.lit(hour).alias(HOUR_KEY)))
    return pl.concat(frames, how="diagonal_relaxed").unique(subset=["_inlet_message_id"], keep="first")


def ls(lake: Path, sandbox: str) -> str:
    lines = [f"{'dataset':<24}{'partitions':>11}{'files':>8}{'rows':>12}{'bytes':>14}"]
    for name, files in datasets(lake, sandbox).items():
        partitions = {f.parent for f in files}
        rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
        size = sum(f.stat().st_size for f in files)
        lines.append(f"{name:<24}{len(partitions):>11}{len(files):>8}{rows:>12}{size:>14}")
        for partition in sorted(partitions):
            in_partition = [f for f in files if f.parent == partition]
            lines.append(f"  {partition.parent.name}/{partition.name}  {len(in_partition)} files")
    quarantined = list((lake / QUARANTINE / sandbox).rglob("*.jsonl"))
    if quarantined:
        rows = sum(f.read_bytes().count(b"\n") for f in quarantined)
        lines.append(f"quarantine: {rows} rows in {len(quarantined)} files under {lake / QUARANTINE / sandbox}")
    return "\n".join(lines)


class NoFilesYet(Exception):
    """The query names a dataset that exists but has no Parquet file yet."""


def query(lake: Path, sandbox: str, sql: str, fmt: str, config: Config | None = None) -> str:
    context = pl.SQLContext()
    found = datasets(lake, sandbox)
    for name, files in found.items():
        if files:
            frame = table(files)
            context.register(name, frame)
            context.register(_alias(name), frame)
    try:
        result = context.execute(sql, eager=True)
    except pl.exceptions.SQLInterfaceError as exc:
        missing = re.search(r"relation '([^']+)' was not found", str(exc))
        dataset = _dataset_named(missing.group(1), found, sandbox, config) if missing else None
        if dataset is not None:
            raise NoFilesYet(_no_files_yet(lake, sandbox, dataset, config)) from None
        raise
    if fmt == "csv":
        return _flat(result).write_csv()
    if fmt == "json":
        return result.write_ndjson()
    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60):
        return str(result)


def _alias(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


def _dataset_named(relation: str, found: dict[str, list[Path]], sandbox: str, config: Config | None) -> str | None:
    """The dataset of the sandbox (configured, or with a directory) that `relation` names."""
    names = set(found)
    if config is not None:
        names |= {d.id for d in config.datasets if d.sandbox == sandbox}
    return next((n for n in sorted(names) if relation in (n, _alias(n))), None)


def _no_files_yet(lake: Path, sandbox: str, dataset: str, config: Config | None) -> str:
    head = f"dataset {dataset!r} has no files yet"
    stale = ack_wait(config) if config is not None else 3600.0
    due = rolls.next_due(lake, sandbox, dataset, stale_after=stale)
    if due is not None:
        moment = datetime.fromtimestamp(due, timezone.utc)
        wait = max(0.0, due - time.time())
        return (f"{head}: a lake worker holds rows of it; its next roll is due in {wait:.0f} s "
                f"(at {moment:%H:%M:%S} UTC). Query again then")
    roll = f"{config.lake.roll_interval:g} s" if config is not None else "the roll interval"
    return (f"{head}, and no running lake worker holds rows of it: its first file is written at most "
            f"{roll} ([lake] roll_interval) after a lake worker takes its first event")


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its nested columns (structs, lists) as JSON text, for CSV."""
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    if not nested:
        return frame
    encode = msgspec.json.Encoder().encode
    return frame.with_columns(
        pl.Series(name, [None if v is None else encode(v).decode() for v in frame[name].to_list()], pl.String)
        for name in nested
    )


def main(argv: list[str], config: Config) -> int:
    parser = argparse.ArgumentParser(prog="inlet lake")
    parser.add_argument("--sandbox", default="prod")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ls", help="datasets, partitions, files, rows and bytes")
    q = sub.add_parser("query", help="run Polars SQL over the lake")
    q.add_argument("sql")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table")
    c = sub.add_parser("compact", help="merge the small files of closed hours")
    c.add_argument("--min-files", type=int, default=2, help="compact a partition with at least this many files")
    args = parser.parse_args(argv)
    lake = config.data_path / "lake"
    try:
        if args.command == "ls":
            print(ls(lake, args.sandbox))
        elif args.command == "query":
            sys.stdout.write(query(lake, args.sandbox, args.sql, args.format, config).rstrip("\n") + "\n")
        else:
            done = compact(lake, args.sandbox, ack_wait(config), args.min_files)
            print(f"compacted {len(done)} partitions" + "".join(f"\n  {p}" for p in done))
    except (pl.exceptions.PolarsError, ValueError, CompactionBusy, NoFilesYet) as exc:
        print(f"inlet lake: {exc}", file=sys.stderr)
        return 2
    return 0
