"""What no column can hold, end to end through the real gateway, nats-server and lake worker.

The gateway refuses what it can recognise as unstorable (a field name with a quote,
backslash or control character; invalid UTF-8; a number past a double) with a 400 and the
reason. What reaches the bus anyway (published by an older gateway, or already on the stream)
costs only its own row: good rows before and after it land in Parquet, also after the lake
worker restarts. Valid JSON that no column type holds (Adobe's mixed-type test array, the
free-form Edge `data`) reaches the lake as JSON text.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import duckdb
import msgspec
import nats
import polars as pl
import pytest

from inlet import subjects
from inlet.messages import Event, encode
from tests.harness import ORG, System, event, message

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"


def _sql(query: str) -> duckdb.DuckDBPyRelation:
    relation = duckdb.sql(query)
    assert relation is not None
    return relation


def lake_rows(system: System) -> pl.DataFrame:
    files = sorted((system.data_dir / "lake" / "prod" / "demo-events").rglob("*.parquet"))
    if not files:
        return pl.DataFrame({"_id": []}, schema={"_id": pl.String})
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")


def landed(system: System, ids: set[str], timeout: float = 15) -> pl.DataFrame:
    def all_there() -> pl.DataFrame | None:
        rows = lake_rows(system)
        return rows if ids <= set(rows["_id"].drop_nulls().to_list()) else None

    found = system.wait_for(all_there, timeout, f"{len(ids)} rows in the lake")
    assert found is not None
    return found


def quarantined(system: System) -> list[dict[str, Any]]:
    return [json.loads(line) for f in (system.data_dir / "lake" / "_quarantine").rglob("*.jsonl")
            for line in f.read_text().splitlines()]


def edge(system: System, body: dict[str, Any]) -> Any:
    return system.http.post("/ee/v1/interact", params={"configId": "demo", "requestId": str(uuid.uuid4())},
                            content=json.dumps(body).encode(),
                            headers={"content-type": "text/plain;charset=UTF-8", "user-agent": CHROME})


def publish_raw(system: System, xdm: bytes, event_id: str) -> None:
    """Put an event on the bus the way a gateway does, with XDM bytes no gateway accepts now
    (an older gateway's, or one already on the stream)."""
    now = int(time.time() * 1000)
    msg = Event(org=ORG, sandbox="prod", dataset="demo-events", source="old-gateway",
                message_id=f"prod/demo-events/{event_id}", received_ms=now, timestamp_ms=now, xdm=msgspec.Raw(xdm))

    async def send() -> None:
        nc = await nats.connect(system.nats.url)
        try:
            await nc.jetstream().publish(subjects.ingest("prod", "event", 0), encode(msg),
                                         headers={"Nats-Msg-Id": msg.message_id})
        finally:
            await nc.close()

    asyncio.run(send())


def good(system: System, prefix: str, n: int) -> set[str]:
    ids = {f"{prefix}-{i}" for i in range(n)}
    batch = {"messages": [message("demo-events", event(event_id=i)) for i in sorted(ids)]}
    response = system.http.post("/collection/batch/demo", json=batch)
    assert response.status_code == 207 and all("xactionId" in r for r in response.json()["responses"]), response.text
    return ids


@pytest.mark.components("gateway", "lake")
@pytest.mark.parametrize("name", ['say "hi"', "back\\slash", "tab\there"])
def test_a_field_name_no_column_can_have_is_refused_and_never_poisons_the_lake(system: System, name: str) -> None:
    """Issue 12.3: one such key through the public /ee endpoint made every later flush of the
    dataset fail, also after a restart."""
    refused = edge(system, {"events": [{"xdm": {"eventType": "x", name: 1}}]})
    assert refused.status_code == 400, refused.text
    (error,) = refused.json()["errors"]
    assert error["code"] == "invalid_message" and "field name" in error["detail"]
    refused = system.http.post("/collection/demo", json=message("demo-events", event(web={name: "x"})))
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_message", refused.text
    assert refused.json()["detail"].startswith("field name"), refused.text

    publish_raw(system, json.dumps({"_id": "old", "timestamp": "2026-11-23T10:00:00Z", name: 1}).encode(), "old")
    rows = landed(system, good(system, "before", 20) | {"old"})
    (old,) = rows.filter(pl.col("_id") == "old")["_inlet_overflow"].to_list()
    assert json.loads(old) == {name: 1}

    system.stop("lake")  # the schema is learned from the files again
    system.start("lake")
    landed(system, good(system, "after", 20))
    assert edge(system, {"events": [{"xdm": {"eventType": "ok"}}]}).status_code == 200
    landed(system, {"before-0", "after-19"})
    assert not quarantined(system)


@pytest.mark.components("gateway", "lake")
def test_one_unstorable_value_costs_only_its_own_row(system: System) -> None:
    """Issue 12.4: 100 good + 1 bad in one partition → 0 in Parquet before; now the gateway
    refuses what it can recognise, and the lake quarantines only what reaches it anyway."""
    system.allow_errors = True  # the quarantine is logged at ERROR: checked below
    # On the bus first (as an older gateway put it there), so it shares a flush with the batch.
    publish_raw(system, b'{"_id": "latin1", "timestamp": "2026-11-23T10:00:00Z", "name": "caf\xe9"}', "latin1")
    batch = [message("demo-events", event(event_id=f"g-{i}")) for i in range(100)]
    raw = json.dumps({"messages": batch}).encode()
    bad = json.dumps(message("demo-events", event(event_id="huge", price=1))).encode()
    raw = raw[:-2] + b", " + bad.replace(b'"price": 1', b'"price": 1e400') + b"]}"
    response = system.http.post("/collection/batch/demo", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 207, response.text
    *accepted, refused = response.json()["responses"]
    assert all("xactionId" in r for r in accepted) and len(accepted) == 100
    assert refused["statusCode"] == 400 and refused["code"] == "invalid_message" and "1e400" in refused["message"]

    rows = landed(system, {f"g-{i}" for i in range(100)})
    assert rows.height == 100 and "huge" not in rows["_id"].to_list()
    found = system.wait_for(lambda: quarantined(system) or None, 10, "the quarantined row")
    assert found is not None
    (line,) = found
    assert line["message_id"] == "prod/demo-events/latin1" and "UTF-8" in line["reason"]
    assert base64.b64decode(line["xdm_base64"]).endswith(b'"caf\xe9"}')  # as sent
    errors = system.error_lines()
    assert errors and all("Quarantined 1 rows of demo-events" in e for e in errors), errors


@pytest.mark.components("gateway", "lake")
def test_adobe_mixed_array_and_free_form_data_reach_the_lake(system: System) -> None:
    """Issues 11.9 and 11.1 (lake side). The event is the one Adobe's mobile Edge extension
    sends in its tests (adobe/aepsdk-edge-ios,
    Tests/UpstreamIntegrationTests/UpstreamIntegrationTests.swift,
    testSendEvent_withXDMDataAndCustomData_sendsCorrectRequestEvent and
    testSendEvent_withXDMData_sendsCorrectRequestEvent): `testArray: ["arrayElem1", 2, true]` in
    the XDM and in `data`. It was answered 200 and then quarantined out of the lake."""
    xdm = {"_id": "mobile-1", "testString": "xdm", "testInt": 10, "testBool": False, "testDouble": 12.89,
           "testArray": ["arrayElem1", 2, True], "testDictionary": {"key": "val"}}
    data = {"testDataString": "stringValue", "testDataInt": 101, "testDataBool": True, "testDataDouble": 13.66,
            "testDataArray": ["arrayElem1", 2, True], "testDataDictionary": {"key": "val"}}
    response = edge(system, {"events": [{"xdm": xdm, "data": data}]})
    assert response.status_code == 200, response.text
    (row,) = landed(system, {"mobile-1"}).filter(pl.col("_id") == "mobile-1").iter_rows(named=True)
    assert json.loads(row["_inlet_overflow"]) == {"testArray": ["arrayElem1", 2, True]}
    assert json.loads(row["_inlet_data"]) == data
    assert (row["testString"], row["testInt"], row["testDictionary"]) == ("xdm", 10, {"key": "val"})
    assert not quarantined(system)


@pytest.mark.components("gateway", "lake")
def test_fields_named_date_and_hour_read_back_as_sent(system: System) -> None:
    """Issue 12.6: a top-level `date` or `hour` read back as the hive partition value."""
    xdm = event(event_id="dated", date="1999-01-01", hour=7)
    assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    landed(system, {"dated"})
    root = system.data_dir / "lake" / "prod" / "demo-events"
    hive = pl.scan_parquet(root, hive_partitioning=True).collect()
    assert (hive["date"].to_list(), hive["hour"].to_list()) == (["1999-01-01"], [7])
    assert hive["inlet_hour"].to_list()[0] in range(24)

    ((date, hour),) = _sql(f"SELECT date, hour FROM read_parquet('{root}/*/*/*.parquet', "
                                 "hive_partitioning=true)").fetchall()
    assert (date, hour) == ("1999-01-01", 7)
