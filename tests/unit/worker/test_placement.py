"""Where an owner identity's data lives with N shards (docs/scaling.md)."""

from __future__ import annotations

import pytest

from inlet.reshard import plan
from worker.profile.placement import Placement, slot
from worker.profile.store import owner_id


def test_every_owner_has_exactly_one_shard_and_slots_are_stable() -> None:
    owners = [owner_id("prod", f"Email:p{i}@shop.example") for i in range(500)]
    for shards in (1, 2, 4):
        placements = [Placement(s, shards, 16) for s in range(shards)]
        for owner in owners:
            holders = [p.shard for p in placements if p.owns(owner)]
            assert holders == [placements[0].shard_of(owner)]
    # Spread: with 4 shards every shard holds some of 500 owners.
    assert {Placement(0, 4, 16).shard_of(o) for o in owners} == {0, 1, 2, 3}
    assert slot(owners[0], 16) == slot(owner_id("prod", "Email:p0@shop.example"), 16)


def test_resharding_maps_each_new_shard_into_one_old_shard() -> None:
    """New shard j's slots lie inside old shard plan[j]'s slots, so its copied store already
    holds their data."""
    for old, new in ((1, 4), (2, 4), (2, 8), (4, 16)):
        sources = plan(old, new, 16)
        for j, k in enumerate(sources):
            assert Placement(j, new, 16).slots <= Placement(k, old, 16).slots


def test_resharding_refuses_counts_whose_slots_straddle_old_shards() -> None:
    for old, new in ((2, 3), (4, 2), (3, 6)):
        with pytest.raises(ValueError):
            plan(old, new, 16)
