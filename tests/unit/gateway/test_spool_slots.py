"""Spool slots for gateway processes sharing a port (`gateway.spool.claim_directory`): each
process owns one directory through a lock, a dead process's slot (and what it spooled) is taken
by the next gateway, and slots holding messages are taken first."""

from __future__ import annotations

import os
from pathlib import Path

from gateway import spool


def release_last() -> None:
    """What the kernel does when the process holding the newest slot dies."""
    os.close(spool._claimed.pop())


def test_each_claim_gets_its_own_slot_and_a_released_one_is_taken_again(tmp_path: Path) -> None:
    base = tmp_path / "spool" / "gateway-8080"
    first = spool.claim_directory(base)
    second = spool.claim_directory(base)
    assert (first, second) == (base, tmp_path / "spool" / "gateway-8080-2")
    release_last()
    assert spool.claim_directory(base) == second
    release_last()
    release_last()


def test_a_slot_holding_spooled_messages_is_taken_first(tmp_path: Path) -> None:
    base = tmp_path / "gateway-8080"
    orphan = tmp_path / "gateway-8080-3"
    orphan.mkdir(parents=True)
    (orphan / "0.spool").write_bytes(b"\0\0\0\0")
    base.mkdir()
    claimed = [spool.claim_directory(base) for _ in range(3)]
    assert claimed == [orphan, base, tmp_path / "gateway-8080-2"]
    for _ in claimed:
        release_last()
