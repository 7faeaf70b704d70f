from pathlib import Path

import pytest

from gateway import spool as spool_module
from gateway.spool import Spool, SpooledMessage


def msgs(*names: str) -> list[SpooledMessage]:
    return [SpooledMessage("inlet.prod.event.0", n, n.encode(), 1) for n in names]


async def test_append_replay_in_order_and_delete(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10_000_000, 3600)
    assert not spool.active
    await spool.append(msgs("a", "b"))
    await spool.append(msgs("c"))
    assert spool.active and spool.bytes > 0
    seen: list[str] = []

    async def publish(run: list[SpooledMessage]) -> int:
        seen.extend(m.message_id for m in run)
        return len(run)

    assert await spool.replay(publish)
    assert seen == ["a", "b", "c"] and not spool.active and spool.bytes == 0
    assert list(tmp_path.iterdir()) == []


async def test_a_partial_replay_keeps_the_segment_and_resumes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10_000_000, 3600)
    await spool.append(msgs("a", "b", "c"))

    async def flaky(run: list[SpooledMessage]) -> int:
        return 1

    assert not await spool.replay(flaky)
    assert spool.active
    seen: list[str] = []

    async def publish(run: list[SpooledMessage]) -> int:
        seen.extend(m.message_id for m in run)
        return len(run)

    assert await spool.replay(publish)
    assert seen == ["a", "b", "c"]  # replayed from the start: JetStream dedupes "a"


async def test_a_restarted_gateway_finds_its_spool_and_ignores_a_torn_tail(tmp_path: Path) -> None:
    first = Spool(tmp_path, 10_000_000, 3600)
    await first.append(msgs("a", "b"))
    (segment,) = tmp_path.glob("*.spool")
    with open(segment, "ab") as out:
        out.write(b"\x00\x00\x01\x00partial")  # a write that never finished (never answered 2xx)
    second = Spool(tmp_path, 10_000_000, 3600)
    assert second.active
    seen: list[str] = []

    async def publish(run: list[SpooledMessage]) -> int:
        seen.extend(m.message_id for m in run)
        return len(run)

    assert await second.replay(publish)
    assert seen == ["a", "b"]


async def test_limits_refuse_new_messages(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 100, 3600)
    assert spool.refusal(50) == ""
    await spool.append(msgs("x" * 80))
    assert "full" in spool.refusal(50)
    old = Spool(tmp_path / "old", 10_000, 0.001)
    await old.append(msgs("a"))  # spooled_ms=1: long ago
    assert "age" in old.refusal(1)


async def test_replay_keeps_the_order_across_many_segments_and_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Order across segment files: with a tiny segment size every append opens a new file,
    and segment 10 must replay after segment 9 (a name sort would put `10.spool` before
    `2.spool`). The ids are not in sorted order, so only the true order passes."""
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 0)
    names = [f"m{n}" for n in (7, 3, 11, 0, 42, 5, 9, 1, 30, 8, 2, 6, 4, 10)]
    first = Spool(tmp_path, 10_000_000, 3600)
    for name in names:
        await first.append(msgs(name))
    assert len(list(tmp_path.glob("*.spool"))) == len(names)
    seen: list[str] = []

    async def publish(run: list[SpooledMessage]) -> int:
        seen.extend(m.message_id for m in run)
        return len(run)

    restarted = Spool(tmp_path, 10_000_000, 3600)  # order rebuilt from the directory
    assert await restarted.replay(publish)
    assert seen == names
