"""The union schema: fields observed per class, with types and contributing datasets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from inlet import lookups
from inlet.messages import Record
from inlet.xdm import Identity
from tests.unit.worker.world import NOW_MS, World
from worker.profile.store import Store
from worker.profile.union_schema import Observer, fields

ANN = Identity("Email", "ann@shop.example", primary=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    yield s
    s.close()


def schema(world: World, xdm_class: str) -> dict[str, tuple[list[str], list[str]]]:
    view = world.ask(lookups.SchemaLookup(org="O", sandbox="prod", xdm_class=xdm_class))
    assert isinstance(view, lookups.SchemaView)
    return {f.path: (f.types, f.datasets) for f in view.fields}


def entries(store: Store) -> int:
    with store.env.begin() as txn:
        return int(txn.stat(store.schema)["entries"])


def test_leaf_paths_and_types() -> None:
    document = {"a": {"b": 1, "c": 1.5, "d": "x", "e": True, "f": None, "g": {}},
                "identityMap": {"Email": [{"id": "x"}]},
                "items": [{"sku": "1", "n": 2}, {"sku": "2", "price": 3.5}, "odd"]}
    assert fields(document) == {
        ("a.b", "integer"), ("a.c", "number"), ("a.d", "string"), ("a.e", "boolean"), ("a.g", "object"),
        ("identityMap", "map"), ("items", "array"), ("items[].sku", "string"), ("items[].n", "integer"),
        ("items[].price", "number"), ("items[]", "string"),
    }


def test_fields_of_each_class_with_their_types_and_datasets(store: Store) -> None:
    world = World(store)
    world.send(ANN, ts=NOW_MS, commerce={"order": {"priceTotal": 10}})
    world.send(ANN, ts=NOW_MS, dataset="app-events", commerce={"order": {"priceTotal": 10.5}})
    world.apply(world.record(ANN, person={"name": {"firstName": "Ann"}}))
    world.apply(world.record(dataset="accounts", record_class="account", account_key="acme",
                             accountKey={"sourceKey": "acme"}, accountName="Acme"))
    events = schema(world, "experienceevent")
    assert events["commerce.order.priceTotal"] == (["integer", "number"], ["app-events", "demo-events"])
    assert events["eventType"] == (["string"], ["app-events", "demo-events"])
    assert schema(world, "profile") == {"person.name.firstName": (["string"], ["demo-profiles"])}
    assert schema(world, "account") == {"accountKey.sourceKey": (["string"], ["accounts"]),
                                        "accountName": (["string"], ["accounts"])}


def test_nothing_is_written_when_nothing_is_new_and_the_set_survives_a_restart(store: Store) -> None:
    world = World(store)
    world.send(ANN, ts=NOW_MS, web={"name": "home"})
    written = entries(store)
    world.send(ANN, ts=NOW_MS + 1, web={"name": "cart"})
    assert entries(store) == written
    restarted = Observer(store)
    assert restarted.observe("prod", "experienceevent", "demo-events", {"_id": "x", "eventType": "y", "web": {"name": "z"}}) == set()


def test_a_failed_message_records_nothing(store: Store) -> None:
    world = World(store)
    bad = Record(org="O", sandbox="prod", dataset="demo-profiles", source="t", message_id="bad", received_ms=1,
                 identities=[ANN], xdm=msgspec.Raw(b'{"person": {"name": "Ann"}}'), record_class="account-person",
                 account_key="acme")
    world.applier.schema.observe = lambda *a: {("poison", "string")}  # type: ignore[method-assign]
    original = world.applier._apply

    def failing(txn, message):  # type: ignore[no-untyped-def]
        original(txn, message)
        raise RuntimeError("boom")

    world.applier._apply = failing  # type: ignore[method-assign]
    assert len(world.applier.apply_batch([bad])) == 1
    assert entries(store) == 0
