"""Batch ingestion end to end: real gateway, lake worker (which runs the loader) and profile
worker on a real nats-server.

The requests follow Adobe's Batch Ingestion developer guide
(https://experienceleague.adobe.com/docs/experience-platform/ingestion/batch/api-overview.html):
create a batch with `datasetId` and `inputFormat.format`, PUT each file under
`/batches/{id}/datasets/{datasetId}/files/{name}`, large files with `action=INITIALIZE`, PATCH
chunks with `Content-Range`, `action=COMPLETE`; then `POST /batches/{id}?action=COMPLETE`, and
the status read from Catalog, `GET /data/foundation/catalog/batches/{id}`, an object keyed by
the batch id whose `status` ends `success` or `failed`.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from tests.harness import System

BASE = "/data/foundation/import/batches"
MAPPING = {"mappings": [
    {"sourceType": "EXPRESSION", "source": "lower(trim(email))", "destination": "identityMap.Email[0].id"},
    {"sourceType": "EXPRESSION", "source": "concat(first, \" \", last)", "destination": "person.name.fullName"},
    {"sourceType": "ATTRIBUTE", "source": "first", "destination": "person.name.firstName"},
    {"sourceType": "EXPRESSION", "source": "upper(country)", "destination": "homeAddress.countryCode"},
    {"sourceType": "EXPRESSION", "source": "to_integer(points)", "destination": "loyalty.points"},
]}


def create(system: System, dataset: str, fmt: str = "json", **extra: Any) -> str:
    response = system.http.post(BASE, json={"datasetId": dataset, "inputFormat": {"format": fmt}, **extra},
                                headers=system.auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "loading" and body["relatedObjects"] == [{"type": "dataSet", "id": dataset}]
    return str(body["id"])


def put(system: System, batch: str, dataset: str, name: str, data: bytes) -> httpx.Response:
    return system.http.put(f"{BASE}/{batch}/datasets/{dataset}/files/{name}", content=data,
                           headers={**system.auth, "Content-Type": "application/octet-stream"})


def complete(system: System, batch: str) -> httpx.Response:
    return system.http.post(f"{BASE}/{batch}", params={"action": "COMPLETE"}, headers=system.auth)


def status(system: System, batch: str) -> dict[str, Any]:
    response = system.http.get(f"/data/foundation/catalog/batches/{batch}", headers=system.auth)
    assert response.status_code == 200, response.text
    return response.json()[batch]  # type: ignore[no-any-return]


def finished(system: System, batch: str) -> dict[str, Any]:
    current = status(system, batch)
    return current if current["status"] in ("success", "failed") else {}


def final(system: System, batch: str, timeout: float = 60) -> dict[str, Any]:
    return system.wait_for(lambda: finished(system, batch), timeout, what=f"batch {batch} to finish")


def entity(system: System, email: str) -> dict[str, Any]:
    """The merged profile of `email` ({} until the profile worker has it)."""
    response = system.profile("Email", email)
    return next(iter(response.json().values()))["entity"] if response.status_code == 200 else {}


def lake_rows(system: System, dataset: str) -> pl.DataFrame:
    files = sorted((system.data_dir / "lake" / "prod" / dataset).rglob("part-*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")


def person(email: str, **extra: Any) -> dict[str, Any]:
    return {"identityMap": {"Email": [{"id": email, "primary": True}]}, **extra}


def test_json_lines_batch_reaches_the_lake_as_one_file_and_the_profile(system: System) -> None:
    rows = [person(f"json{i}@shop.example", person={"name": {"firstName": f"J{i}"}}) for i in range(200)]
    batch = create(system, "demo-profiles")
    assert put(system, batch, "demo-profiles", "people.json", b"\n".join(json.dumps(r).encode() for r in rows)).status_code == 200
    assert complete(system, batch).status_code == 200
    done = final(system, batch)
    assert done["status"] == "success", done
    assert done["metrics"]["recordsRead"] == 200 and done["metrics"]["recordsWritten"] == 200
    assert done["inputFormat"] == {"format": "json"} and done["relatedObjects"] == [{"type": "dataSet", "id": "demo-profiles"}]
    files = list((system.data_dir / "lake" / "prod" / "demo-profiles").rglob(f"part-batch-{batch}.parquet"))
    assert len(files) == 1
    assert pl.read_parquet(files[0], hive_partitioning=False).height == 200
    found = system.wait_for(lambda: entity(system, "json199@shop.example"))
    assert found["person"]["name"]["firstName"] == "J199"


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def crm_rows(count: int, prefix: str = "csv") -> list[dict[str, Any]]:
    return [{"email": f"  {prefix.upper()}{i}@Shop.Example ", "first": f"F{i}", "last": f"L{i}",
             "country": "fr", "points": str(i)} for i in range(count)]


def test_csv_with_a_mapping_lands_mapped_in_the_lake_and_the_profile(system: System) -> None:
    """Data Prep before validation: CSV columns become XDM through the mapping set (functions
    named as in https://experienceleague.adobe.com/en/docs/experience-platform/data-prep/functions)."""
    batch = create(system, "demo-profiles", "csv", **{"inlet:mapping": MAPPING})
    assert put(system, batch, "demo-profiles", "crm.csv", csv_bytes(crm_rows(50))).status_code == 200
    assert complete(system, batch).status_code == 200
    done = final(system, batch)
    assert done["status"] == "success", done
    assert done["metrics"]["recordsWritten"] == 50 and done["metrics"]["inletProfileRecords"] == 50
    found = system.wait_for(lambda: entity(system, "csv7@shop.example"))
    assert found["person"]["name"] == {"fullName": "F7 L7", "firstName": "F7"}
    assert found["homeAddress"]["countryCode"] == "FR"
    assert found["loyalty"]["points"] == 7
    lake = lake_rows(system, "demo-profiles")
    assert lake.height == 50
    assert sorted(lake["loyalty"].struct.field("points").to_list()) == list(range(50))


def test_parquet_file_with_nested_columns(system: System, tmp_path: Path) -> None:
    frame = pl.DataFrame({
        "identityMap": [{"Email": [{"id": f"pq{i}@shop.example", "primary": True}]} for i in range(30)],
        "person": [{"name": {"firstName": f"P{i}"}} for i in range(30)],
    })
    path = tmp_path / "people.parquet"
    frame.write_parquet(path)
    batch = create(system, "demo-profiles", "parquet")
    assert put(system, batch, "demo-profiles", "people.parquet", path.read_bytes()).status_code == 200
    complete(system, batch)
    done = final(system, batch)
    assert done["status"] == "success" and done["metrics"]["recordsWritten"] == 30, done
    found = system.wait_for(lambda: entity(system, "pq29@shop.example"))
    assert found["person"]["name"]["firstName"] == "P29"


def bad_csv() -> bytes:
    rows = crm_rows(20, "bad")
    rows[3]["points"] = "lots"  # to_integer fails
    rows[11]["email"] = ""  # no identity for a Profile-enabled dataset
    return csv_bytes(rows)


def test_bad_rows_fail_the_batch_by_default_naming_the_function_and_value(system: System) -> None:
    batch = create(system, "demo-profiles", "csv", **{"inlet:mapping": MAPPING})
    put(system, batch, "demo-profiles", "crm.csv", bad_csv())
    complete(system, batch)
    done = final(system, batch)
    assert done["status"] == "failed"
    assert done["metrics"]["failedRecordCount"] == 2 and done["metrics"]["recordsRead"] == 20
    errors = {e["row"]: e for e in done["errors"]}
    assert errors[4]["code"] == "mapping_failed" and errors[4]["function"] == "to_integer"
    assert errors[4]["value"] == "lots" and errors[4]["destination"] == "loyalty.points"
    assert errors[4]["file"] == "crm.csv"
    assert errors[12]["code"] == "missing_identity"
    assert not list((system.data_dir / "lake" / "prod" / "demo-profiles").rglob("part-*.parquet"))
    assert system.profile("Email", "bad0@shop.example").status_code == 404


def test_partial_ingestion_loads_the_rest_and_reports_the_bad_rows(system: System) -> None:
    batch = create(system, "demo-profiles", "csv", partialIngestionPercent=20, **{"inlet:mapping": MAPPING})
    put(system, batch, "demo-profiles", "crm.csv", bad_csv())
    complete(system, batch)
    done = final(system, batch)
    assert done["status"] == "success", done
    assert done["metrics"]["recordsWritten"] == 18 and done["metrics"]["failedRecordCount"] == 2
    assert {e["row"] for e in done["errors"]} == {4, 12}
    assert lake_rows(system, "demo-profiles").height == 18
    system.wait_for(lambda: system.profile("Email", "bad19@shop.example").status_code == 200)
    assert system.profile("Email", "bad3@shop.example").status_code == 404


def _cut_off_patch(system: System, path: str, first: int, data: bytes, total: int) -> None:
    """Send a chunk's headers and half its body, then drop the connection."""
    import socket

    head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {system.token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Range: bytes {first}-{first + len(data) - 1}/{total}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", system.port)) as conn:
        conn.sendall(head + data[: len(data) // 2])


def test_an_interrupted_chunked_upload_is_retried_and_loads_exactly_the_file(system: System) -> None:
    rows = [person(f"big{i}@shop.example", person={"name": {"firstName": "x" * 40 + str(i)}}) for i in range(6000)]
    data = b"\n".join(json.dumps(r).encode() for r in rows) + b"\n"
    chunk = 300 * 1024  # more than one stored block per chunk
    pieces = [(start, data[start:start + chunk]) for start in range(0, len(data), chunk)]
    assert len(pieces) >= 3
    batch = create(system, "demo-profiles")
    url = f"{BASE}/{batch}/datasets/demo-profiles/files/big.json"
    assert system.http.post(url, params={"action": "INITIALIZE"}, headers=system.auth).status_code == 201
    for start, piece in pieces[:-1]:
        response = system.http.patch(url, content=piece, headers={
            **system.auth, "Content-Range": f"bytes {start}-{start + len(piece) - 1}/{len(data)}"})
        assert response.status_code == 200, response.text
    last_start, last = pieces[-1]
    _cut_off_patch(system, url, last_start, last, len(data))
    # The cut-off chunk was never recorded: the file cannot be completed yet.
    missing = system.http.post(url, params={"action": "COMPLETE"}, headers=system.auth)
    assert missing.status_code == 400 and "missing" in missing.json()["detail"]
    retried = system.http.patch(url, content=last, headers={
        **system.auth, "Content-Range": f"bytes {last_start}-{len(data) - 1}/{len(data)}"})
    assert retried.status_code == 200
    assert system.http.post(url, params={"action": "COMPLETE"}, headers=system.auth).status_code == 201
    assert complete(system, batch).status_code == 200
    done = final(system, batch)
    assert done["status"] == "success" and done["metrics"]["recordsWritten"] == 6000, done
    lake = lake_rows(system, "demo-profiles")
    names = lake["person"].struct.field("name").struct.field("firstName").to_list()
    assert sorted(names) == sorted("x" * 40 + str(i) for i in range(6000))


def test_a_batch_completed_twice_loads_once(system: System) -> None:
    events = [{"_id": f"twice-{i}", "timestamp": "2026-11-23T10:00:00.000Z", "eventType": "web.webpagedetails.pageViews",
               "identityMap": {"Email": [{"id": "twice@shop.example", "primary": True}]}} for i in range(40)]
    batch = create(system, "demo-events")
    put(system, batch, "demo-events", "events.json", b"\n".join(json.dumps(e).encode() for e in events))
    assert complete(system, batch).status_code == 200
    assert complete(system, batch).status_code == 200  # Adobe: safe to retry
    done = final(system, batch)
    assert done["status"] == "success" and done["inlet"]["attempts"] == 1, done
    assert complete(system, batch).status_code == 200  # and after it finished
    # A later streamed event of the same person is applied after every batch row (same
    # partition, one ordered stream): once it is visible, the count is final.
    system.post_event(email="twice@shop.example", event_id="twice-sentinel")
    system.wait_for(lambda: any(c["entity"]["_id"] == "twice-sentinel"
                                for c in system.events("Email", "twice@shop.example").json()["children"]))
    children = system.events("Email", "twice@shop.example", limit="1000").json()["children"]
    assert len(children) == 41
    assert lake_rows(system, "demo-events").filter(pl.col("_inlet_source") == f"batch:{batch}").height == 40


@pytest.mark.config("\n[batches]\njob_ack_wait = 3.0\nchunk_rows = 2000\n")
def test_the_lake_never_shows_part_of_a_batch_even_when_the_loader_is_killed(system: System) -> None:
    import threading

    count = 40_000
    batch = create(system, "lake-only")
    events = (json.dumps({"_id": f"k{i}", "timestamp": "2026-11-23T10:00:00.000Z", "eventType": "t",
                          "identityMap": {"Email": [{"id": f"k{i}@shop.example"}]}, "n": i}).encode() for i in range(count))
    put(system, batch, "lake-only", "events.json", b"\n".join(events))
    seen: list[int] = []
    stop = threading.Event()
    dataset = system.data_dir / "lake" / "prod" / "lake-only"

    def watch() -> None:  # a reader of the lake, all through the load
        while not stop.is_set():
            total = 0
            for path in dataset.rglob("part-*.parquet"):
                try:
                    total += pl.read_parquet(path, columns=["_inlet_source"], hive_partitioning=False).height
                except FileNotFoundError:
                    continue
            seen.append(total)

    reader = threading.Thread(target=watch)
    reader.start()
    try:
        complete(system, batch)
        # 6,000 rows read: two chunks of 2,000 written (the loader reports progress per chunk).
        system.wait_for(lambda: status(system, batch)["metrics"]["recordsRead"] >= 6000, 60, what="chunks staged")
        system.kill("lake")
        assert not list(dataset.rglob("part-*.parquet"))  # written chunks are not in the dataset
        assert len(list((system.data_dir / "lake" / ".batches" / batch).glob("part-*.parquet"))) >= 2
        assert status(system, batch)["status"] == "processing"
        system.start("lake")
        done = final(system, batch, timeout=120)
    finally:
        stop.set()
        reader.join()
    assert done["status"] == "success" and done["inlet"]["attempts"] == 2, done
    assert set(seen) <= {0, count}, sorted(set(seen))
    assert seen[-1] == count
    files = list(dataset.rglob("part-*.parquet"))
    assert [f.name for f in files] == [f"part-batch-{batch}.parquet"]
    lake = pl.read_parquet(files[0], hive_partitioning=False)
    assert lake.height == count and lake["n"].n_unique() == count
    assert not (system.data_dir / "lake" / ".batches" / batch).exists()


EDGE_MAPPING = """
[[datastreams]]
id = "mapped"
dataset = "demo-events"
origins = ["https://shop.example"]

[[datastreams.mapping.mappings]]
sourceType = "EXPRESSION"
source = "lower(trim(email))"
destination = "identityMap.Email[0].id"

[[datastreams.mapping.mappings]]
sourceType = "EXPRESSION"
source = "to_float(total)"
destination = "commerce.order.priceTotal"

[[datastreams.mapping.mappings]]
sourceType = "EXPRESSION"
source = "iif(to_float(total) > 100, \\"big\\", \\"small\\")"
destination = "_demo.basket"
"""


@pytest.mark.config(EDGE_MAPPING)
def test_web_sdk_data_is_mapped_into_xdm_before_identities_and_reaches_the_profile(system: System) -> None:
    """The Web SDK's `sendEvent({xdm, data})` request shape (PROTOCOLS.md §1, recorded from
    @adobe/alloy 2.33.1): free-form `data` beside `xdm`; the datastream's mapping set (Data
    Prep, https://experienceleague.adobe.com/en/docs/experience-platform/data-prep/functions)
    turns it into XDM fields, including the identity the profile is found by."""
    body = {"events": [{"xdm": {"eventType": "commerce.purchases", "_id": "mapped-1",
                                "timestamp": "2026-11-23T10:00:00.000Z"},
                        "data": {"email": "  Grace@Shop.Example ", "total": "149.90"}}]}
    response = system.http.post("/ee/v1/interact", params={"configId": "mapped", "requestId": "r-1"},
                                content=json.dumps(body).encode(),
                                headers={"content-type": "text/plain;charset=UTF-8", "origin": "https://shop.example"})
    assert response.status_code == 200, response.text
    children = system.wait_for(lambda: system.events("Email", "grace@shop.example").json().get("children"))
    entity = children[0]["entity"]
    assert entity["commerce"]["order"]["priceTotal"] == 149.9
    assert entity["_demo"]["basket"] == "big"
    # A value the mapping cannot convert is refused, naming the function and the value.
    bad = {"events": [{"xdm": {"eventType": "commerce.purchases"}, "data": {"email": "g@shop.example", "total": "lots"}}]}
    refused = system.http.post("/ee/v1/interact", params={"configId": "mapped", "requestId": "r-2"},
                               content=json.dumps(bad).encode(),
                               headers={"content-type": "text/plain;charset=UTF-8", "origin": "https://shop.example"})
    assert refused.status_code == 400
    detail = refused.json()["errors"][0]["detail"]
    assert "to_float('lots')" in detail and "commerce.order.priceTotal" in detail


def test_inlet_batch_load_shows_progress_and_a_summary_of_failures(system: System, tmp_path: Path) -> None:
    import subprocess
    import sys

    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    good, bad = tmp_path / "crm.csv", tmp_path / "bad.csv"
    good.write_bytes(csv_bytes(crm_rows(3000, "cli")))
    bad.write_bytes(bad_csv())

    def load(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inlet", "batch", "load", str(path), "--dataset", "demo-profiles",
             "--mapping", str(mapping), "--url", system.url, "--token", system.token, *extra],
            env=system.env, capture_output=True, text=True, timeout=120, cwd=tmp_path)

    loaded = load(good, "--chunk-mb", "0.05")  # the large-file flow, several chunks
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "success" in loaded.stdout and "3,000 rows read" in loaded.stdout and "3,000 in the lake" in loaded.stdout
    assert "upload" in loaded.stderr and "rows" in loaded.stderr  # the progress lines
    system.wait_for(lambda: system.profile("Email", "cli2999@shop.example").status_code == 200)
    failed = load(bad)
    assert failed.returncode == 1
    assert "failed" in failed.stdout and "bad.csv:4 mapping_failed to_integer('lots') → loyalty.points" in failed.stdout
    assert "bad.csv:12 missing_identity" in failed.stdout


def stored_messages(system: System) -> int:
    """Messages in stream INGEST (read through NATS)."""
    import asyncio

    import nats

    async def read() -> int:
        nc = await nats.connect(system.nats.url)
        try:
            return int((await nc.jetstream().stream_info("INGEST")).state.messages)
        finally:
            await nc.close()
    return asyncio.run(read())


@pytest.mark.config("\n[batches]\nprofile_backlog = 300\npublish_window = 100\n")
def test_a_batch_waits_for_the_profile_backlog_to_drain(system: System) -> None:
    """Backpressure: with the profile worker stopped, the loader publishes until the profile
    consumer holds `profile_backlog` messages, then waits; it goes on once the worker drains."""
    system.stop("profile")  # its consumer stays, and its backlog grows
    rows = [person(f"bp{i}@shop.example") for i in range(3000)]
    batch = create(system, "demo-profiles")
    put(system, batch, "demo-profiles", "people.json", b"\n".join(json.dumps(r).encode() for r in rows))
    complete(system, batch)
    system.wait_for(lambda: status(system, batch)["metrics"]["recordsWritten"] == 3000, 60, what="the lake part")
    system.wait_for(lambda: stored_messages(system) >= 300, 30, what="the first windows published")
    held = stored_messages(system)
    assert held <= 300 + 100, held  # at most one window past the backlog limit
    assert status(system, batch)["status"] == "processing"
    system.start("profile")
    done = final(system, batch, timeout=120)
    assert done["status"] == "success" and done["metrics"]["inletProfileRecords"] == 3000
    system.wait_for(lambda: entity(system, "bp2999@shop.example"), 60)
