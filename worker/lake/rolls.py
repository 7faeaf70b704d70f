"""When each lake worker's next roll is due, so `inlet lake query` can tell a user why a
dataset has no files yet and when it will.

A worker's rows live in its buffer until the next roll (`worker.lake.handler`); until then a
new dataset has no file, and a query of it finds nothing. Each worker records, while its
buffer holds rows, when its next roll is due and which datasets it holds rows of, in
`<lake>/.rolls/<writer>.json`, replaced atomically (temp name, rename) when a dataset joins the
buffer and removed when the buffer is written. The record is advisory (no fsync: a crash loses
nothing but a hint); a record whose roll is long past is a crashed worker's, and is ignored,
then removed at the next start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

ROLLS = ".rolls"


class Roll(msgspec.Struct):
    due: float  # epoch seconds
    datasets: list[str]  # "<sandbox>/<dataset>"


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Roll).decode


def record(lake: Path, writer: str, due: float, datasets: list[str]) -> None:
    directory = lake / ROLLS
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".{writer}.tmp"
    temp.write_bytes(_encode(Roll(due, sorted(datasets))))
    os.replace(temp, directory / f"{writer}.json")


def clear(lake: Path, writer: str) -> None:
    (lake / ROLLS / f"{writer}.json").unlink(missing_ok=True)


def remove_stale(lake: Path, older_than: float) -> None:
    """At start-up: records of workers that stopped without clearing theirs."""
    cutoff = time.time() - older_than
    for path in (lake / ROLLS).glob("*.json"):
        try:
            if _decode(path.read_bytes()).due < cutoff:
                path.unlink()
        except (FileNotFoundError, msgspec.DecodeError):
            continue


def next_due(lake: Path, sandbox: str, dataset: str, stale_after: float) -> float | None:
    """The earliest roll due (epoch seconds) of a worker holding rows of the dataset; None
    when no running worker does."""
    cutoff = time.time() - stale_after
    due: list[float] = []
    for path in (lake / ROLLS).glob("*.json"):
        try:
            roll = _decode(path.read_bytes())
        except (FileNotFoundError, msgspec.DecodeError):
            continue
        if f"{sandbox}/{dataset}" in roll.datasets and roll.due >= cutoff:
            due.append(roll.due)
    return min(due) if due else None
