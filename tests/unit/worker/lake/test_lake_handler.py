"""The lake handler with fake messages and real files: what is acked when, flush triggers,
dead letters, commands, retries and redelivery dedupe."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgspec
import polars as pl
import pytest
from nats.aio.msg import Msg

from inlet.config import Lake
from inlet.messages import DeleteProfile, Event, Record, encode
from inlet.xdm import Identity
from worker.lake import rolls
from worker.lake.handler import LakeHandler
from worker.lake.writer import TEMP_DIR, Writer

OLD = 1_700_000_000_000  # 2023-11-14T22:13:20Z
HOUR_MS = 3_600_000


@dataclass
class Sequence:
    stream: int


@dataclass
class Metadata:
    sequence: Sequence
    num_delivered: int = 1


@dataclass
class FakeMsg:
    data: bytes
    subject: str
    metadata: Metadata
    naks: list[float | None] = field(default_factory=list)
    terms: int = 0
    headers: dict[str, str] | None = None

    async def nak(self, delay: float | None = None) -> None:
        self.naks.append(delay)

    async def term(self) -> None:
        self.terms += 1


class FakeJetStream:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        self.published.append((subject, payload, headers))


def event(seq: int, xdm: dict[str, Any] | None = None, *, dataset: str = "events", received_ms: int = OLD,
          delivered: int = 1, message_id: str | None = None) -> FakeMsg:
    body = Event(org="O", sandbox="prod", dataset=dataset, source="web", message_id=message_id or f"m{seq}",
                 received_ms=received_ms, timestamp_ms=received_ms,
                 xdm=msgspec.Raw(json.dumps(xdm or {"_id": f"e{seq}"}).encode()))
    return FakeMsg(encode(body), "inlet.prod.event.3", Metadata(Sequence(seq), delivered))


def record(seq: int) -> FakeMsg:
    body = Record(org="O", sandbox="prod", dataset="profiles", source="crm", message_id=f"r{seq}", received_ms=OLD,
                  xdm=msgspec.Raw(b'{"person":{"name":{"firstName":"Ada"}}}'))
    return FakeMsg(encode(body), "inlet.prod.record.3", Metadata(Sequence(seq)))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def handler(tmp_path: Path, clock: Clock | None = None, **lake: Any) -> tuple[LakeHandler, FakeJetStream]:
    js = FakeJetStream()
    config = Lake(**{"roll_interval": 60.0, "max_rows": 1000, **lake})
    return LakeHandler(js, tmp_path, config, clock=clock or Clock()), js


async def apply(lake: LakeHandler, *fake: FakeMsg) -> list[Any]:
    """`apply` with fake messages (they have what the handler reads: data, subject, metadata)."""
    return list(await lake.apply(cast(list[Msg], list(fake))))


def rows(tmp_path: Path) -> pl.DataFrame:
    files = sorted(tmp_path.glob("prod/*/*/*/part-*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else pl.DataFrame()


async def test_messages_are_returned_only_once_their_file_is_in_place(tmp_path: Path) -> None:
    lake, _ = handler(tmp_path, max_rows=3)
    first = [event(1), event(2)]
    assert await apply(lake, *first) == []
    assert rows(tmp_path).height == 0  # buffered, not written, not acked
    third = event(3)
    acked = await apply(lake, third)
    assert acked == [*first, third]
    (path,) = tmp_path.glob("prod/events/inlet_date=2023-11-14/inlet_hour=22/part-*.parquet")  # renamed into place
    assert pl.read_parquet(path)["_inlet_message_id"].to_list() == ["m1", "m2", "m3"]
    assert list((tmp_path / TEMP_DIR).iterdir()) == []


async def test_flush_when_the_buffered_bytes_reach_max_bytes(tmp_path: Path) -> None:
    lake, _ = handler(tmp_path, max_bytes=100)
    assert await apply(lake, event(1)) == []
    big = event(2, {"_id": "e2", "text": "x" * 100})
    assert len(await apply(lake, big)) == 2


async def test_flush_when_the_oldest_row_is_older_than_the_roll_interval(tmp_path: Path) -> None:
    clock = Clock()
    lake, _ = handler(tmp_path, clock, roll_interval=5.0)
    assert await apply(lake, event(1)) == []
    clock.now += 4.9
    assert await lake.tick() == []
    assert await apply(lake, event(2)) == []
    clock.now += 0.1  # the oldest row is 5 s old, the newest 0.1 s
    assert [m.metadata.sequence.stream for m in await lake.tick()] == [1, 2]  # on an idle tick
    assert await apply(lake, event(3)) == []
    clock.now += 5
    assert [m.metadata.sequence.stream for m in await apply(lake, event(4))] == [3, 4]  # on a batch
    assert rows(tmp_path).height == 4


async def test_close_writes_whatever_is_buffered(tmp_path: Path) -> None:
    lake, _ = handler(tmp_path)
    msgs = [event(1), event(2, dataset="other"), event(3, received_ms=OLD + HOUR_MS), record(4)]
    assert await apply(lake, *msgs) == []
    assert await lake.close() == msgs
    assert await lake.close() == []
    files = sorted(str(p.relative_to(tmp_path).parent) for p in tmp_path.glob("prod/*/*/*/part-*.parquet"))
    assert files == ["prod/events/inlet_date=2023-11-14/inlet_hour=22", "prod/events/inlet_date=2023-11-14/inlet_hour=23",
                     "prod/other/inlet_date=2023-11-14/inlet_hour=22", "prod/profiles/inlet_date=2023-11-14/inlet_hour=22"]
    profiles = pl.read_parquet(next(tmp_path.glob("prod/profiles/*/*/*.parquet")))
    assert profiles["_inlet_kind"].to_list() == ["record"]
    assert profiles["person"].struct.field("name").struct.field("firstName").to_list() == ["Ada"]


async def test_commands_are_acked_at_once_and_never_reach_the_lake(tmp_path: Path) -> None:
    lake, _ = handler(tmp_path)
    delete = FakeMsg(encode(DeleteProfile(org="O", sandbox="prod", message_id="d1", received_ms=OLD,
                                          identity=Identity(ns="Email", id="a@b.example"))),
                     "inlet.prod.command.1", Metadata(Sequence(9)))
    buffered = event(1)
    assert await apply(lake, buffered, delete) == [delete]
    assert await lake.close() == [buffered]
    assert rows(tmp_path)["_inlet_message_id"].to_list() == ["m1"]


async def test_an_undecodable_message_is_dead_lettered_and_the_rest_go_on(tmp_path: Path) -> None:
    lake, js = handler(tmp_path)
    poison = FakeMsg(b'{"kind":"event","org":', "inlet.prod.event.0", Metadata(Sequence(5)))
    good = event(6)
    assert await apply(lake, poison, good) == []
    assert poison.terms == 1
    ((subject, payload, headers),) = js.published
    assert subject == "inlet.prod.dead.lake" and payload == poison.data
    assert headers["Inlet-Reason"] == "undecodable" and headers["Inlet-Stream-Seq"] == "5"
    assert await lake.close() == [good]


async def test_a_partition_that_cannot_be_written_is_retried_not_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, _ = handler(tmp_path, roll_interval=7.0)
    real = Writer.write

    def full_disk(self: Writer, frame: pl.DataFrame, directory: Path) -> Path:
        if "other" in str(directory):
            raise pl.exceptions.ComputeError("parquet: underlying IO error: No space left on device (os error 28)")
        return real(self, frame, directory)

    monkeypatch.setattr(Writer, "write", full_disk)
    fine, failing = event(1), event(2, dataset="other")
    assert await apply(lake, fine, failing) == []
    assert await lake.close() == [fine]
    assert failing.naks == [7.0] and fine.naks == []
    assert not (tmp_path / "_quarantine").exists()
    monkeypatch.setattr(Writer, "write", real)
    again = event(2, dataset="other", delivered=2)
    await apply(lake, again)
    assert await lake.close() == [again]
    assert sorted(rows(tmp_path)["_inlet_message_id"]) == ["m1", "m2"]


async def test_an_unreadable_file_in_a_partition_holds_that_partition_back_not_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lake, _ = handler(tmp_path)
    broken = tmp_path / "prod/other/inlet_date=2023-11-14/inlet_hour=22/part-foreign-000001.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not parquet at all")
    fine, held = event(1), event(2, dataset="other")
    await apply(lake, fine, held)
    assert await lake.close() == [fine]
    assert held.naks == [60.0]
    assert "Could not write 1 rows" in caplog.text  # logged as an ERROR: an operator has to act
    broken.unlink()
    again = event(2, dataset="other", delivered=2)
    await apply(lake, again)
    assert await lake.close() == [again]


async def test_a_redelivered_message_already_in_a_file_is_acked_not_written_again(tmp_path: Path) -> None:
    lake, _ = handler(tmp_path)
    await apply(lake, event(1), event(2))
    await lake.close()  # file renamed; then the worker "crashed" before acking
    restarted, _ = handler(tmp_path)
    # m2 comes back as a first delivery: a killed nats-server can forget that it delivered it.
    redelivered = [event(1, delivered=2), event(2, delivered=1), event(3, delivered=2)]  # m3: never written
    assert await apply(restarted, *redelivered) == []
    assert await restarted.close() == redelivered
    assert sorted(rows(tmp_path)["_inlet_message_id"]) == ["m1", "m2", "m3"]


async def test_the_same_stream_sequence_with_another_message_id_is_not_a_duplicate(tmp_path: Path) -> None:
    """A recreated stream counts sequences from one again; its messages are new."""
    lake, _ = handler(tmp_path)
    await apply(lake, event(1))
    await lake.close()
    await apply(lake, event(1, message_id="other"))
    await lake.close()
    assert sorted(rows(tmp_path)["_inlet_message_id"]) == ["m1", "other"]


async def test_a_message_twice_in_one_buffer_is_written_once(tmp_path: Path) -> None:
    lake, _ = handler(tmp_path)
    msgs = [event(1), event(1, delivered=2)]
    await apply(lake, *msgs)
    assert await lake.close() == msgs
    assert rows(tmp_path)["_inlet_message_id"].to_list() == ["m1"]


async def test_a_worker_does_not_read_its_own_files_back_to_dedupe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own files end below its next batch: in the normal case, dedupe reads nothing."""
    lake, _ = handler(tmp_path)
    await apply(lake, event(1), event(2))
    await lake.close()
    scans: list[Any] = []
    real = pl.scan_parquet

    def counting(*args: Any, **kwargs: Any) -> pl.LazyFrame:
        scans.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(pl, "scan_parquet", counting)
    await apply(lake, event(3), event(4))
    await lake.close()
    assert scans == []
    assert rows(tmp_path).height == 4


async def test_the_next_roll_is_recorded_while_rows_wait_and_cleared_once_written(tmp_path: Path) -> None:
    """`inlet lake query` of a dataset without files says when its first file is due (`worker.lake.rolls`)."""
    clock = Clock()
    lake, _ = handler(tmp_path, clock=clock, roll_interval=60.0)
    before = time.time()
    assert await apply(lake, event(1)) == []
    clock.now += 20
    assert await apply(lake, event(2, dataset="other")) == []  # a dataset joins: recorded again
    due = rolls.next_due(tmp_path, "prod", "other", stale_after=600)
    assert due is not None and before + 60 - 20 - 1 <= due <= time.time() + 40
    assert rolls.next_due(tmp_path, "prod", "events", stale_after=600) == due  # one roll for the buffer
    assert rolls.next_due(tmp_path, "prod", "profiles", stale_after=600) is None
    await lake.close()
    assert rolls.next_due(tmp_path, "prod", "events", stale_after=600) is None
