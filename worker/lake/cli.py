"""`inlet lake ls | query "<SQL>" | compact`: look into and maintain the Parquet lake.

`query` runs Polars SQL with one table per dataset of the sandbox, named by dataset id (quote
ids with dashes: `SELECT count(*) FROM "demo-events"`; an alias with underscores,
`demo_events`, is registered too). Files of one dataset may differ in schema (a new field, a
widened type): they are combined by name with relaxed types, and rows are deduplicated on
message id, so a query never sees a message twice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

from inlet.config import Config
from worker.lake import ack_wait
from worker.lake.compact import CompactionBusy, compact
from worker.lake.quarantine import QUARANTINE


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
    """One dataset's files as one frame: by column name, relaxed types, hive columns, deduplicated."""
    frames = [pl.scan_parquet(f, hive_partitioning=True, hive_schema={"date": pl.String, "hour": pl.String})
              for f in files]
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


def query(lake: Path, sandbox: str, sql: str, fmt: str) -> str:
    context = pl.SQLContext()
    for name, files in datasets(lake, sandbox).items():
        if files:
            frame = table(files)
            context.register(name, frame)
            context.register(name.replace("-", "_").replace(".", "_"), frame)
    result = context.execute(sql, eager=True)
    if fmt == "csv":
        return result.write_csv()
    if fmt == "json":
        return result.write_ndjson()
    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60):
        return str(result)


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
            sys.stdout.write(query(lake, args.sandbox, args.sql, args.format).rstrip("\n") + "\n")
        else:
            done = compact(lake, args.sandbox, ack_wait(config), args.min_files)
            print(f"compacted {len(done)} partitions" + "".join(f"\n  {p}" for p in done))
    except (pl.exceptions.PolarsError, ValueError, CompactionBusy) as exc:
        print(f"inlet lake: {exc}", file=sys.stderr)
        return 2
    return 0
