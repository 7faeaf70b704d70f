from inlet import subjects


def test_partition_is_stable_and_in_range() -> None:
    assert subjects.partition("Email:a@b.c", 16) == subjects.partition("Email:a@b.c", 16)
    assert all(0 <= subjects.partition(f"k{i}", 7) < 7 for i in range(100))


def test_shards_cover_every_partition_exactly_once() -> None:
    for shards in (1, 3, 4, 16):
        owned = [p for s in range(shards) for p in subjects.shard_partitions(s, shards, 16)]
        assert sorted(owned) == list(range(16))
    assert subjects.shard_filters(0, 1, 16) == []
    # Every shard reads the whole stream in one order (docs/scaling.md).
    assert subjects.shard_filters(1, 4, 16) == []


def test_subject_spelling() -> None:
    assert subjects.ingest("prod", "event", 3) == "inlet.prod.event.3"
    assert subjects.dead_letter("prod", "profile-0") == "inlet.prod.dead.profile-0"
