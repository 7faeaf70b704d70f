"""The Catalog's documents and each process's live view of them (no NATS: entries are applied
as the bucket watch would deliver them)."""

from __future__ import annotations

from inlet.catalog import store
from inlet.catalog.live import Live
from inlet.config import Config, Connection, Dataset


def _config() -> Config:
    return Config(datasets=[Dataset(id="events"), Dataset(id="lake", profile=False)],
                  connections=[Connection(id="file", authenticated=True, tokens=["file-secret"])])


def _apply(live: Live, key: str, entry: store.Entry | None) -> None:
    live._apply(key, None if entry is None else store.encode(entry))


def test_config_datasets_are_seeded_with_their_profile_switch_as_aep_tags() -> None:
    on, off = (store.bootstrap_dataset(d) for d in _config().datasets)
    assert on.tags == {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]} and on.profile
    assert off.tags == {} and not off.profile
    assert on.origin == "config" and on.to_dataset() == Dataset(id="events")


def test_a_new_dataset_is_lake_only_until_its_unified_profile_tag_is_enabled() -> None:
    entry = store.StoredDataset(id="new")
    assert not entry.profile and not entry.to_dataset().profile
    assert store.StoredDataset(id="new", tags={"unifiedProfile": ["enabled:false"]}).profile is False
    assert store.StoredDataset(id="new", tags={"unifiedProfile": ["enabled:true"]}).to_dataset().profile


def test_the_live_view_is_installed_into_the_config_lookups() -> None:
    config = _config()
    live = Live(config)
    live._task = object()  # type: ignore[assignment]  # past the initial values: install each change
    _apply(live, store.dataset_key("prod", "events"), store.StoredDataset(id="events", tags={}))
    _apply(live, store.dataset_key("dev", "new"), store.StoredDataset(id="new", sandbox="dev"))
    assert config.dataset("prod", "events") == Dataset(id="events", profile=False)  # the bucket wins
    assert config.dataset("dev", "new") is not None and config.dataset("prod", "new") is None
    assert config.dataset("prod", "lake") is not None  # a file dataset the bucket lacks stays
    _apply(live, store.connection_key("api"), store.StoredConnection(id="api", token_hashes=["h"]))
    _apply(live, store.connection_key("file"), store.StoredConnection(id="file", authenticated=False))
    assert config.connection("api") == Connection(id="api", authenticated=True, token_hashes=["h"])
    assert config.connection("file") == Connection(id="file", authenticated=True, tokens=["file-secret"])  # read-only
    _apply(live, store.connection_key("api"), None)
    assert config.connection("api") is None
    assert "dev" in live.sandboxes() and "prod" in live.sandboxes()


def test_tokens_are_kept_and_compared_as_hashes() -> None:
    token = store.new_token()
    hashed = store.token_hash(token)
    assert token not in hashed and len(hashed) == 64
    assert store.token_matches(token, ["0" * 64, hashed])
    assert not store.token_matches(token + "x", [hashed])
    assert not store.token_matches(token, [])
