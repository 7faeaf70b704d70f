"""`inlet lake ls | query | compact` on a lake of real files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from inlet.config import Config
from worker.lake import rolls
from worker.lake.commit import Committer
from worker.lake.cli import main
from worker.lake.frames import Row
from worker.lake.writer import partition_dir

OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def fill(lake: Path) -> None:
    committer = Committer(lake)
    batches: list[list[tuple[str, str, Any]]] = [
        [("demo-events", "a", {"_id": "a", "eventType": "view", "commerce": {"order": {"priceTotal": 10}}}),
         ("demo-events", "b", {"_id": "b", "eventType": "buy", "commerce": {"order": {"priceTotal": 2.5}}})],
        [("demo-events", "a", {"_id": "a", "eventType": "view", "commerce": {"order": {"priceTotal": 10}}}),  # a duplicate
         ("demo-events", "c", {"_id": "c", "eventType": "buy", "commerce": {"order": {"priceTotal": 7}}}),
         ("demo-events", "d", {"_id": "d", "eventType": "buy", "commerce": {"order": {"priceTotal": "free"}}}),
         ("demo-events", "e", ["not", "an", "object"]),  # quarantined
         ("demo-profiles", "p", {"person": {"name": {"firstName": "Ada"}}})],
    ]
    for n, batch in enumerate(batches):
        committer = Committer(lake) if n else committer  # another worker: no in-batch dedupe between them
        parts: dict[tuple[str, str, Path], list[Row]] = {}
        for i, (dataset, mid, xdm) in enumerate(batch):
            row = Row(xdm=json.dumps(xdm).encode(), data=None, org="O", sandbox="prod", dataset=dataset, source="s",
                      kind="event", message_id=mid, received_ms=OLD, stream_seq=10 * n + i)
            parts.setdefault(("prod", dataset, partition_dir(lake, "prod", dataset, OLD)), []).append(row)
        committer.commit(parts)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    fill(tmp_path / "lake")
    return Config(data_dir=str(tmp_path))


def test_ls_shows_datasets_partitions_files_rows_and_quarantine(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls"], config) == 0
    out = capsys.readouterr().out
    events = next(line for line in out.splitlines() if line.startswith("demo-events"))
    assert events.split()[:4] == ["demo-events", "1", "2", "5"]  # partitions, files, rows
    assert "inlet_date=2023-11-14/inlet_hour=22" in out and "demo-profiles" in out
    assert "quarantine: 1 rows" in out


def test_query_runs_sql_over_datasets_by_id_without_duplicates(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    sql = ('SELECT eventType, count(*) AS n, sum(commerce.order.priceTotal) AS total '
           'FROM "demo-events" GROUP BY eventType ORDER BY eventType')
    assert main(["query", sql, "--format", "csv"], config) == 0
    assert capsys.readouterr().out.splitlines() == ["eventType,n,total", "buy,3,9.5", "view,1,10.0"]
    assert main(["query", "SELECT _id, inlet_hour FROM demo_events ORDER BY _id", "--format", "json"], config) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"_id": x, "inlet_hour": "22"} for x in "abcd"]
    assert main(["query", 'SELECT person.name.firstName AS name FROM "demo-profiles"'], config) == 0
    assert "Ada" in capsys.readouterr().out  # a table by default


def test_a_bad_query_is_an_error_message_not_a_traceback(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "SELECT nope FROM nowhere"], config) == 2
    assert capsys.readouterr().err.startswith("inlet lake: ")


def test_compact_merges_closed_hours(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compact"], config) == 0
    assert "compacted 1 partitions" in capsys.readouterr().out
    assert main(["ls"], config) == 0
    events = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("demo-events"))
    assert events.split()[:4] == ["demo-events", "1", "1", "4"]


def test_csv_writes_nested_values_as_json_text(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: `--format csv "SELECT * ..."` failed on XDM's nested columns ("CSV format
    does not support nested data")."""
    sql = 'SELECT _id, commerce, eventType FROM "demo-events" WHERE _id IN (\'a\', \'d\') ORDER BY _id'
    assert main(["query", sql, "--format", "csv"], config) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "_id,commerce,eventType"
    assert lines[1] == 'a,"{""order"":{""priceTotal"":10.0}}",view'  # JSON text, CSV-quoted
    assert lines[2] == 'd,"{""order"":{""priceTotal"":null}}",buy'
    assert main(["query", 'SELECT * FROM "demo-events"', "--format", "csv"], config) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5  # a header and four rows


def test_a_dataset_without_files_yet_says_so(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: querying a dataset before its first roll said `relation 'demo-events' was not found`."""
    assert main(["query", 'SELECT count(*) FROM "demo-accounts"'], config) == 2  # configured, nothing rolled yet
    err = capsys.readouterr().err
    assert "dataset 'demo-accounts' has no files yet" in err and "at most 60 s" in err and "not found" not in err
    assert main(["query", "SELECT count(*) FROM demo_accounts"], config) == 2  # the alias too
    assert "has no files yet" in capsys.readouterr().err
    assert main(["query", "SELECT count(*) FROM nowhere"], config) == 2  # not a dataset: Polars' own answer
    assert "not found" in capsys.readouterr().err
    # A lake worker holds rows of it: when its roll is due (`worker.lake.rolls`).
    rolls.record(config.data_path / "lake", "w1", time.time() + 42.4, ["prod/demo-accounts", "prod/demo-events"])
    assert main(["query", "SELECT count(*) FROM demo_accounts"], config) == 2
    err = capsys.readouterr().err
    assert "has no files yet: a lake worker holds rows of it; its next roll is due in 42 s (at " in err, err
