"""`inlet lake ls | query | compact` on a lake of real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inlet.config import Config
from worker.lake.commit import Committer
from worker.lake.cli import main
from worker.lake.frames import Row
from worker.lake.writer import partition_dir

OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def fill(lake: Path) -> None:
    committer = Committer(lake)
    batches = [
        [("demo-events", "a", {"_id": "a", "eventType": "view", "commerce": {"order": {"priceTotal": 10}}}),
         ("demo-events", "b", {"_id": "b", "eventType": "buy", "commerce": {"order": {"priceTotal": 2.5}}})],
        [("demo-events", "a", {"_id": "a", "eventType": "view", "commerce": {"order": {"priceTotal": 10}}}),  # a duplicate
         ("demo-events", "c", {"_id": "c", "eventType": "buy", "commerce": {"order": {"priceTotal": 7}}}),
         ("demo-events", "d", {"_id": "d", "eventType": "buy", "commerce": {"order": {"priceTotal": "free"}}}),
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
    assert events.split()[:4] == ["demo-events", "1", "2", "4"]  # partitions, files, rows
    assert "date=2023-11-14/hour=22" in out and "demo-profiles" in out
    assert "quarantine: 1 rows" in out


def test_query_runs_sql_over_datasets_by_id_without_duplicates(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    sql = ('SELECT eventType, count(*) AS n, sum(commerce.order.priceTotal) AS total '
           'FROM "demo-events" GROUP BY eventType ORDER BY eventType')
    assert main(["query", sql, "--format", "csv"], config) == 0
    assert capsys.readouterr().out.splitlines() == ["eventType,n,total", "buy,2,9.5", "view,1,10.0"]
    assert main(["query", "SELECT _id, hour FROM demo_events ORDER BY _id", "--format", "json"], config) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"_id": "a", "hour": "22"}, {"_id": "b", "hour": "22"}, {"_id": "c", "hour": "22"}]
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
    assert events.split()[:4] == ["demo-events", "1", "1", "3"]
