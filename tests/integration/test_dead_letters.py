"""Only what can never be applied is parked, with its reason, and can be redriven after a fix;
what the store cannot take for now is retried, not parked (issue 12.9). Real nats-server,
gateway and profile worker processes, and the `inlet dead-letters` command as an operator
runs it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import msgspec
import nats
import polars as pl
import pytest

from inlet import messages, subjects
from inlet.xdm import Identity
from tests.harness import System, event, message


async def _publish_and_read_dead_letters(url: str) -> list[tuple[bytes, dict[str, str]]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.publish(subjects.ingest("prod", "event", 0), b"\xff not a bus message", headers={"Nats-Msg-Id": "poison-1"})
    bad_record = messages.Record(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-profiles", source="t",
                                 message_id="poison-2", received_ms=1, identities=[Identity("Email", "p@shop.example")],
                                 xdm=msgspec.Raw(b"[1, 2, 3]"))
    await js.publish(subjects.ingest("prod", "record", 0), messages.encode(bad_record), headers={"Nats-Msg-Id": "poison-2"})
    sub = await js.pull_subscribe(subjects.dead_letter("prod", "profile-0"), durable="test-dlq", stream=subjects.DEAD_LETTER_STREAM)
    out: list[tuple[bytes, dict[str, str]]] = []
    deadline = asyncio.get_running_loop().time() + 10
    while len(out) < 2 and asyncio.get_running_loop().time() < deadline:
        try:
            for msg in await sub.fetch(2, timeout=1):
                out.append((msg.data, dict(msg.headers or {})))
                await msg.ack()
        except nats.errors.TimeoutError:
            pass
    await nc.close()
    return out


def _errors(system: System) -> list[str]:
    return [line for line in system.error_lines() if "Traceback" not in line]


def test_poison_messages_go_to_the_dead_letter_stream_with_their_reason(system: System) -> None:
    system.allow_errors = True  # parking is a loss until replayed: logged at ERROR (checked below)
    # A good event first, so the poison sits between good ones in the stream: the worker must
    # move past a parked message, not wait for it to come back (it never will).
    assert system.post_event(email="before-poison@shop.example").status_code == 200
    system.wait_for(lambda: system.profile("Email", "before-poison@shop.example").status_code == 200, 5)
    dead = asyncio.run(_publish_and_read_dead_letters(system.nats.url))
    reasons = sorted(headers["Inlet-Reason"] for _, headers in dead)
    assert reasons == ["apply_failed", "undecodable"]
    assert any(data == b"\xff not a bus message" for data, _ in dead)
    assert all(h["Inlet-Subject"].startswith("inlet.prod.") and h["Inlet-Stream-Seq"] for _, h in dead)
    assert sorted(h["Inlet-Msg-Id"] for _, h in dead) == ["poison-1", "poison-2"]
    assert all(h["Inlet-Consumer"] == "profile-0" and int(h["Inlet-Time"]) > 0 for _, h in dead)
    # The worker went on: the next good event is applied.
    assert system.post_event(email="after-poison@shop.example").status_code == 200
    system.wait_for(lambda: system.profile("Email", "after-poison@shop.example").status_code == 200, 5)
    errors = [line for line in _errors(system) if line.startswith("profile:")]
    assert len(errors) == 2 and all("Dead-lettered message" in line and "inlet dead-letters replay" in line
                                    for line in errors), errors
    assert not [line for line in system.error_lines() if "Traceback" in line]


def _pad(kb: int) -> dict[str, str]:
    """`kb` KB of fields of 40 KB each (under the 64 KiB string limit)."""
    return {f"f{i}": "x" * 40_000 for i in range(kb // 40)}


def _dead_letter_count(url: str) -> int:
    async def count() -> int:
        nc = await nats.connect(url)
        try:
            return int((await nc.jetstream().stream_info(subjects.DEAD_LETTER_STREAM)).state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


SMALL_MAP = 512 * 1024
TINY_STORE = f"""
[profile]
map_size_bytes = {SMALL_MAP}
ack_wait = 2
"""


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(TINY_STORE)
def test_a_full_store_is_retried_and_the_batch_applied_after_the_fix_never_dead_lettered(system: System) -> None:
    """The LMDB map fills (MDB_MAP_FULL): the batch is held and retried, the operator is told
    at ERROR, nothing is dead-lettered; after a restart with a larger map, it is applied."""
    system.allow_errors = True
    email = "full@shop.example"
    big = event(email=email, event_id="too-big-for-now", tenant=_pad(800))
    assert system.http.post("/collection/demo", json=message("demo-events", big)).status_code == 200
    system.wait_for(lambda: "map is full" in system.log_text("profile"), 15, "the full store reported")
    # Retried, not parked: a few retries later, still nothing dead-lettered.
    system.wait_for(lambda: system.log_text("profile").count("Retrying the held batch") >= 2, 15, "retries")
    assert _dead_letter_count(system.nats.url) == 0
    assert system.events("Email", email).status_code == 404
    (error,) = [line for line in _errors(system)]
    assert "raise profile.map_size_bytes" in error and "Nothing is lost" in error

    system.stop("profile")  # the operator's fix: a larger map, and a restart
    config = system.tmp / "inlet.toml"
    config.write_text(config.read_text().replace(f"map_size_bytes = {SMALL_MAP}", f"map_size_bytes = {256 * 1024 * 1024}"))
    system.start("profile")

    def applied() -> list[Any]:
        response = system.events("Email", email)
        return list(response.json()["children"]) if response.status_code == 200 else []

    (child,) = system.wait_for(applied, 20, "the held event applied after the restart")
    assert child["entityId"] == "too-big-for-now"
    assert _dead_letter_count(system.nats.url) == 0
    assert "Dead-lettered" not in system.log_text("profile")


COUNTED = """
[[computed_attributes]]
name = "views"
function = "COUNT"
duration = {count = 30, unit = "DAYS"}
"""


def _cli(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inlet", "dead-letters", *args], env=system.env, cwd=system.tmp,
                          capture_output=True, text=True, timeout=60)


def _ls(system: System) -> list[dict[str, Any]]:
    done = _cli(system, "ls", "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


async def _park_as_before_the_fix(url: str, event_message: messages.Event, times: int) -> None:
    """Dead letters exactly as a profile worker before the fix of issue 12.7 left them: an
    event with an identity longer than an LMDB key, refused with MDB_BAD_VALSIZE. (The
    operator's story: upgrade, then replay what the old version parked.)"""
    nc = await nats.connect(url)
    js = nc.jetstream()
    subject = subjects.ingest("prod", "event", 3)
    for attempt in range(times):
        await js.publish(subjects.dead_letter("prod", "profile-0"), messages.encode(event_message), headers={
            "Inlet-Reason": "apply_failed",
            "Inlet-Detail": "BadValsizeError('mdb_put: MDB_BAD_VALSIZE: Unsupported size of key/DB name/data')",
            "Inlet-Subject": subject, "Inlet-Stream-Seq": str(100 + attempt),
            "Inlet-Msg-Id": event_message.message_id, "Inlet-Consumer": "profile-0",
            "Inlet-Time": str(int(time.time() * 1000)),
        })
    await nc.close()


def _lake_ids(system: System) -> list[str]:
    files = sorted((system.data_dir / "lake" / "prod" / "demo-events").rglob("*.parquet"))
    if not files:
        return []
    return sorted(pl.concat([pl.read_parquet(f, columns=["_id"]) for f in files])["_id"].to_list())


@pytest.mark.config(COUNTED)
def test_dead_letters_are_listed_and_replayed_once_after_the_fix(system: System) -> None:
    system.allow_errors = True
    # A message the running worker cannot apply: parked now, and parked again when replayed.
    poison = messages.Record(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-profiles", source="t",
                             message_id="DEMO@AdobeOrg/prod/demo-profiles/r/poison", received_ms=1,
                             identities=[Identity("Email", "p@shop.example")], xdm=msgspec.Raw(b"[1, 2, 3]"))

    async def publish_poison() -> None:
        nc = await nats.connect(system.nats.url)
        await nc.jetstream().publish(subjects.ingest("prod", "record", 0), messages.encode(poison),
                                     headers={"Nats-Msg-Id": poison.message_id})
        await nc.close()

    asyncio.run(publish_poison())
    (parked,) = system.wait_for(lambda: _ls(system), 10, "the poison record listed")
    assert parked["reason"] == "apply_failed" and parked["subject"] == "inlet.prod.record.0"
    assert parked["consumer"] == "profile-0" and parked["message_id"] == poison.message_id
    assert parked["time"].endswith("Z") and "ValidationError" in parked["detail"]
    table = _cli(system, "ls")
    assert table.returncode == 0 and "apply_failed" in table.stdout and "inlet.prod.record.0" in table.stdout

    # Two dead letters of one event (parked twice) left by the version before the fix.
    email = "ü" * 300 + "@shop.example"  # 313 characters, 613 bytes
    now_ms = int(time.time() * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now_ms / 1000))
    xdm = event(email=email, event_id="parked-event", timestamp=stamp)
    fixed = messages.Event(org="DEMO@AdobeOrg", sandbox="prod", dataset="demo-events", source="demo",
                           message_id="DEMO@AdobeOrg/prod/demo-events/parked-event", received_ms=now_ms,
                           timestamp_ms=now_ms, identities=[Identity("Email", email, True, True)],
                           xdm=msgspec.Raw(msgspec.json.encode(xdm)))
    asyncio.run(_park_as_before_the_fix(system.nats.url, fixed, times=2))
    assert len(_ls(system)) == 3

    replay = _cli(system, "replay", "--all")
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.count("→ inlet.prod.") == 3

    def views() -> Any:
        response = system.profile("Email", email)
        if response.status_code != 200:
            return None
        (profile,) = response.json().values()
        return profile["entity"].get("computedAttributes", {}).get("views", {}).get("value")

    system.wait_for(views, 10, "the replayed event applied")
    # The poison is parked again (a new dead letter); the fixed event's are gone.
    (again,) = system.wait_for(lambda: [d for d in _ls(system) if d["seq"] > parked["seq"] + 2], 10, "poison parked again")
    assert again["message_id"] == poison.message_id and len(_ls(system)) == 1
    # Replaying the event twice applied it once: its id was kept, and the worker's applied set
    # (not an overwrite of the same key) stopped the second. A later event still counts.
    later = event(email=email, event_id="later-event", timestamp=stamp)
    assert system.http.post("/collection/demo", json=message("demo-events", later)).status_code == 200

    def timeline() -> list[str]:
        response = system.events("Email", email)
        return sorted(c["entityId"] for c in response.json()["children"]) if response.status_code == 200 else []

    assert system.wait_for(lambda: timeline() if "later-event" in timeline() else [], 10) == ["later-event", "parked-event"]
    assert views() == 2, (system.log_text("profile")[-3000:], system.profile("Email", email).json())  # counted in the same transaction as the timeline: final
    # The replay was addressed to the profile worker: the lake (which had the message, in the
    # operator's story) skipped it, and stored the later event.
    assert system.wait_for(lambda: _lake_ids(system), 15, "the later event in the lake") == ["later-event"]
