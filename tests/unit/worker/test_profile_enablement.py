"""Which messages reach the profile: the decision the gateway stamped on each message when it
accepted it (its dataset's Profile switch then), else the worker's current view of the dataset
(messages from before the stamp existed). docs/catalog.md: enabling applies to data ingested
from then on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from inlet import lookups
from inlet.xdm import Identity
from tests.unit.worker.world import World
from worker.profile.store import Store


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    w = World(store)
    w.applier.profile_datasets = {("prod", "enabled-now")}
    yield w
    store.close()


def _in_profile(world: World, email: str) -> bool:
    view = world.ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=Identity("Email", email)))
    return isinstance(view, lookups.ProfileView)


def test_the_stamp_of_acceptance_decides_whatever_the_dataset_is_now(world: World) -> None:
    accepted_lake_only = world.record(Identity("Email", "a@x.example"), dataset="enabled-now", name="a")
    accepted_enabled = world.record(Identity("Email", "b@x.example"), dataset="disabled-now", name="b")
    world.apply(msgspec.structs.replace(accepted_lake_only, profile=False),
                msgspec.structs.replace(accepted_enabled, profile=True))
    assert not _in_profile(world, "a@x.example")
    assert _in_profile(world, "b@x.example")


def test_unstamped_messages_follow_the_workers_current_view(world: World) -> None:
    world.apply(world.record(Identity("Email", "c@x.example"), dataset="enabled-now", name="c"),
                world.record(Identity("Email", "d@x.example"), dataset="disabled-now", name="d"))
    assert _in_profile(world, "c@x.example")
    assert not _in_profile(world, "d@x.example")
