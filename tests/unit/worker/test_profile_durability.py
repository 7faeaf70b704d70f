"""What the gateway accepts, the profile store can store; what the store cannot take now is not
the message's fault (issue 12, items 1, 7 and 9), against real LMDB files."""

from pathlib import Path
from typing import Any

import lmdb
import msgspec
import pytest

from inlet import lookups
from inlet.config import load
from inlet.messages import Event, Record
from inlet.xdm import Identity
from worker.profile import apply
from worker.profile.identity_graph import Rules
from worker.profile.lookup import Lookups
from worker.profile.store import MAX_KEY_PART, Store, applied_key, bounded, event_key, identity_key

CONFIG = load({})


def applier(store: Store) -> apply.Applier:
    return apply.Applier(store, Rules(CONFIG.identity), 10**9)


def ev(mid: str, ids: list[Identity], ts: int = 1000, pad: int = 0) -> Event:
    return Event(org="O", sandbox="prod", dataset="demo-events", source="demo", message_id=mid,
                 received_ms=1, timestamp_ms=ts, identities=ids,
                 xdm=msgspec.Raw(msgspec.json.encode({"_id": mid.rsplit("/", 1)[-1], "pad": "x" * pad})))


def rec(mid: str, ids: list[Identity], doc: dict[str, Any], received: int) -> Record:
    return Record(org="O", sandbox="prod", dataset="demo-profiles", source="demo", message_id=mid,
                  received_ms=received, identities=ids, xdm=msgspec.Raw(msgspec.json.encode(doc)))


def ask(store: Store, query: lookups.Lookup) -> lookups.Answer:
    return lookups.decode_answer(Lookups(store, CONFIG).answer(lookups.encode(query)))


def test_long_identity_values_and_event_ids_are_stored_and_found(tmp_path: Path) -> None:
    """The largest identity (1,024 four-byte characters) and event `_id` (1,024 characters) the
    gateway accepts: LMDB keys are at most 511 bytes (MDB_BAD_VALSIZE before the fix)."""
    store = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    long_email = Identity("Email", "\U0001f600" * 1020 + "@x.io", True)
    long_id = "O/prod/demo-events/" + "e" * 1024
    failures = applier(store).apply_batch([ev(long_id, [long_email]), ev("O/prod/demo-events/short", [long_email], ts=2000)])
    assert failures == []
    view = ask(store, lookups.EventsLookup(org="O", sandbox="prod", identity=long_email, newest_first=False))
    assert isinstance(view, lookups.EventsView)
    assert [e.event_id for e in view.events] == ["e" * 1024, "short"]
    profile = ask(store, lookups.ProfileLookup(org="O", sandbox="prod", identity=long_email))
    assert isinstance(profile, lookups.ProfileView) and profile.identities == [long_email.key]
    # A redelivery of the long-id message changes nothing: its (bounded) id is in `applied`.
    assert applier(store).apply_batch([ev(long_id, [long_email])]) == []
    view = ask(store, lookups.EventsLookup(org="O", sandbox="prod", identity=long_email))
    assert isinstance(view, lookups.EventsView) and len(view.events) == 2
    store.close()


def test_bounded_keys_stay_short_readable_and_distinct() -> None:
    short = "Email:ada@shop.example"
    assert identity_key("prod", short) == b"prod\0" + short.encode()
    assert applied_key("O/prod/d/e1") == b"O/prod/d/e1"
    long_a, long_b = "a" * 5000, "a" * 4999 + "b"
    assert len(identity_key("prod", long_a)) < 100 and identity_key("prod", long_a) != identity_key("prod", long_b)
    assert len(event_key(b"\0" * 16, 0, long_a)) <= 16 + 8 + 33
    assert bounded(b"x" * MAX_KEY_PART) == b"x" * MAX_KEY_PART and bounded(b"x" * (MAX_KEY_PART + 1))[:1] == b"\xff"


def test_a_repeated_record_ends_as_the_last_one_sent(tmp_path: Path) -> None:
    """A, then B, then A again (three messages, three ids) ends as A."""
    store = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    email = Identity("Email", "ada@shop.example", True)
    a, b = {"loyalty": {"tier": "gold"}}, {"loyalty": {"tier": "silver"}}
    assert applier(store).apply_batch([rec("r1", [email], a, 1), rec("r2", [email], b, 2), rec("r3", [email], a, 3)]) == []
    profile = ask(store, lookups.ProfileLookup(org="O", sandbox="prod", identity=email))
    assert isinstance(profile, lookups.ProfileView)
    assert msgspec.json.decode(profile.entity)["loyalty"] == {"tier": "gold"}
    store.close()


def test_a_full_map_fails_the_whole_batch_for_a_retry_not_the_message(tmp_path: Path) -> None:
    """MDB_MAP_FULL is the store's failure: the batch is rolled back and raised (the handler
    retries it), never reported as the message's failure (which would dead-letter it). With a
    larger map, the same batch then applies."""
    path = tmp_path / "lmdb"
    email = Identity("Email", "ada@shop.example", True)
    # Small events fit; the last (a 900 KB event, under the gateway's 1 MiB) does not.
    batch: list[Event | Record | None] = [ev(f"O/prod/demo-events/e{i}", [email], ts=i) for i in range(3)]
    batch.append(ev("O/prod/demo-events/big", [email], ts=9, pad=900_000))
    small = Store(path, 512 * 1024)
    with pytest.raises(apply.TRANSIENT):
        applier(small).apply_batch(list(batch))
    with small.env.begin() as txn:
        assert txn.stat(small.event)["entries"] == 0 and txn.stat(small.applied)["entries"] == 0
    small.close()
    larger = Store(path, 64 * 1024 * 1024)
    assert applier(larger).apply_batch(list(batch)) == []
    with larger.env.begin() as txn:
        assert txn.stat(larger.event)["entries"] == 4
    larger.close()


def test_transient_errors_are_the_stores_and_poison_is_the_messages() -> None:
    assert isinstance(lmdb.MapFullError("full"), apply.TRANSIENT)
    assert isinstance(OSError(28, "No space left on device"), apply.TRANSIENT)
    assert not isinstance(lmdb.BadValsizeError("too long"), apply.TRANSIENT)
    assert not isinstance(msgspec.ValidationError("not an object"), apply.TRANSIENT)


class BreaksTheBatch(apply.Applier):
    """Fails outside every message's nested transaction whenever message `bad` is in the
    batch, as a union-schema key too long for LMDB once did (the worker then crashed on it,
    and again after every restart)."""

    def apply_batch(self, batch: list[Event | Record | None], now_ms: int | None = None) -> list[apply.Failure]:  # type: ignore[override]
        if any(m is not None and m.message_id.endswith("/bad") for m in batch):
            raise lmdb.BadValsizeError("mdb_put: MDB_BAD_VALSIZE")
        return super().apply_batch(batch, now_ms)  # type: ignore[arg-type]


async def test_a_batch_that_fails_as_a_whole_is_applied_one_message_at_a_time(tmp_path: Path) -> None:
    from nats.aio.msg import Msg

    from worker.profile.handler import ProfileHandler

    store = Store(tmp_path / "lmdb", 64 * 1024 * 1024)
    email = Identity("Email", "ada@shop.example", True)
    breaking = BreaksTheBatch(store, Rules(CONFIG.identity), 10**9)
    handler = ProfileHandler(None, None, breaking, "profile-0")  # type: ignore[arg-type]
    batch: list[Event | Record | None] = [ev(f"O/prod/demo-events/{n}", [email], ts=i) for i, n in enumerate(["a", "bad", "c"])]
    msgs = [Msg(None, subject="inlet.prod.event.0") for _ in batch]  # type: ignore[arg-type]
    failures = await handler._apply_isolating(msgs, batch)  # type: ignore[arg-type]
    assert failures is not None and [(f.index, f.reason.value) for f in failures] == [(1, "apply_failed")]
    assert "BadValsizeError" in failures[0].detail
    view = ask(store, lookups.EventsLookup(org="O", sandbox="prod", identity=email, newest_first=False))
    assert isinstance(view, lookups.EventsView) and [e.event_id for e in view.events] == ["a", "c"]
    assert breaking.touched  # the good messages' profiles are notified
    store.close()
