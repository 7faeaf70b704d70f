"""A merge policy's `identityGraph` decides which identities' data a profile read combines,
against real LMDB files.

AEP's merge policy field `identityGraph.type` is `pdg` (the private identity graph: the profile
is every identity the graph stitched together) or `none` (no stitching: the profile is the
looked-up identity's own data). Source: Adobe Experience League, "Merge policies endpoint"
(https://experienceleague.adobe.com/docs/experience-platform/profile/api/merge-policies.html),
section "Components of merge policies" (`identityGraph`). The same stitched graph must read as
one profile under the default policy and as separate profiles under a `none` policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inlet import lookups
from inlet.config import MergePolicy, load
from inlet.xdm import Identity
from tests.unit.worker.world import DAY_MS, NOW_MS, World, definition
from worker.profile.store import Store

EMAIL = Identity("Email", "ann@shop.example", primary=True, authenticated=True)
DEVICE = Identity("ECID", "2" * 38)
PURCHASES = definition({"name": "purchases", "function": "COUNT", "filter": {"eventType": ["commerce.purchases"]},
                        "duration": {"count": 30, "unit": "DAYS"}})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    yield s
    s.close()


def read(world: World, identity: Identity, policy: str | None = None) -> dict[str, Any]:
    view = world.ask(lookups.ProfileLookup(org="O", sandbox="prod", identity=identity, merge_policy=policy))
    assert isinstance(view, lookups.ProfileView), view
    assert view.merge_policy == (policy or "default")
    entity: dict[str, Any] = world.profile(identity, merge_policy=policy)
    entity.pop("identityMap", None)
    return entity


def test_a_none_policy_does_not_stitch_what_the_default_policy_stitches(store: Store) -> None:
    config = load({})
    config.merge_policies.append(MergePolicy(id="unstitched", identity_graph="none"))
    world = World(store, [PURCHASES], config)
    day_ago = NOW_MS - DAY_MS
    world.apply(world.record(DEVICE, loyalty={"tier": "gold"}))
    world.send(DEVICE, ts=day_ago)
    world.apply(world.record(EMAIL, person={"name": {"firstName": "Ann"}}))
    world.send(EMAIL, ts=day_ago)
    world.send(EMAIL, ts=day_ago)
    world.send(EMAIL, DEVICE, ts=day_ago, event_type="login")  # the login stitches the two

    stitched = read(world, EMAIL)
    assert stitched["loyalty"] == {"tier": "gold"} and stitched["person"] == {"name": {"firstName": "Ann"}}
    assert stitched["computedAttributes"]["purchases"]["value"] == 3
    assert read(world, DEVICE) == stitched  # one profile, whichever identity asks

    by_email = read(world, EMAIL, "unstitched")
    assert "loyalty" not in by_email and by_email["person"] == {"name": {"firstName": "Ann"}}
    assert by_email["computedAttributes"]["purchases"]["value"] == 2
    by_device = read(world, DEVICE, "unstitched")
    assert "person" not in by_device and by_device["loyalty"] == {"tier": "gold"}
    assert by_device["computedAttributes"]["purchases"]["value"] == 1
