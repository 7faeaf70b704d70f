"""The Catalog at runtime, with real processes: datasets made and enabled for Profile through
Adobe's Catalog API, and streaming connections made and removed through inlet's API, taking
effect in a gateway and workers that were already running (and in a second gateway that only
learns of them from the bucket)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from tests.harness import ORG, System, event, free_port, wait_for

CATALOG = "/data/foundation/catalog/dataSets"
EVENT_SCHEMA = "https://ns.adobe.com/demo/schemas/event"
XED = "application/vnd.adobe.xed-full+json;version=1"


def streamed(dataset: str, xdm: dict[str, Any]) -> dict[str, Any]:
    """A streaming message naming the dataset's schema (the shape of tests.harness.message)."""
    ref = {"id": EVENT_SCHEMA, "contentType": XED}
    return {"header": {"schemaRef": ref, "imsOrgId": ORG, "datasetId": dataset},
            "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": xdm}}


def lake_ids(system: System, dataset: str) -> list[str]:
    files = sorted((system.data_dir / "lake" / "prod" / dataset).rglob("*.parquet"))
    if not files:
        return []
    return sorted(pl.concat([pl.read_parquet(f, columns=["_id"]) for f in files])["_id"].to_list())


def profile_event_ids(system: System, email: str) -> list[str]:
    response = system.events("Email", email)
    if response.status_code != 200:
        return []
    return [child["entity"]["_id"] for child in response.json().get("children", [])]


@pytest.fixture
def second_gateway(system: System, tmp_path: Path) -> Iterator[httpx.Client]:
    """Another gateway of the same deployment, started before any change is made: it can
    learn of one only by following the bucket (the first gateway applies its own writes)."""
    port = free_port()
    log = open(tmp_path / "gateway-2.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "inlet", "gateway"], env={**system.env, "INLET_HTTP_PORT": str(port)},
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        wait_for(lambda: client.get("/readyz").status_code == 200, 30, what="second gateway ready")
        yield client
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def test_dataset_made_at_runtime_reaches_the_profile_only_once_enabled(system: System,
                                                                       second_gateway: httpx.Client) -> None:
    """Create a dataset, stream into it (lake only), enable it for Profile, stream again: only
    the second message is in the profile, and the lake has both. Every process was started
    before the dataset existed, and the messages go through a gateway that never saw the API
    calls. Request and answer shapes: "Create a dataset in the API"
    (https://experienceleague.adobe.com/en/docs/experience-platform/catalog/api/create-dataset:
    201 and `["@/dataSets/{DATASET_ID}"]`), "Enable a dataset for Profile and Identity Service
    using APIs" (https://experienceleague.adobe.com/en/docs/experience-platform/catalog/datasets/enable-for-profile:
    PATCH `tags.unifiedProfile/unifiedIdentity = ["enabled:true"]`, 200 and the id array), and
    "Look up a Catalog object" (GET `/dataSets/{id}` answers an object keyed by the id)."""
    created = system.http.post(CATALOG + "?requestDataSource=true", headers=system.auth, json={
        "name": "LoyaltyMembersDataset",
        "schemaRef": {"id": EVENT_SCHEMA, "contentType": "application/vnd.adobe.xed+json;version=1"}})
    assert created.status_code == 201, created.text
    (ref,) = created.json()
    assert ref.startswith("@/dataSets/")
    dataset_id = ref.split("/")[-1]  # how the docs' clients take the id out of the answer
    shown = system.http.get(f"{CATALOG}/{dataset_id}", headers=system.auth).json()
    assert shown[dataset_id]["name"] == "LoyaltyMembersDataset"
    assert shown[dataset_id]["schemaRef"]["id"] == EVENT_SCHEMA
    assert shown[dataset_id]["tags"] == {}  # new datasets are not enabled for Profile

    email = f"loyal-{uuid.uuid4().hex[:8]}@shop.example"
    first, second = event(email=email), event(email=email)
    # The second gateway learns of the dataset from the bucket, within seconds.
    wait_for(lambda: second_gateway.post("/collection/demo?syncValidation=true",
                                         json=streamed(dataset_id, first)).status_code == 200,
             10, what="the second gateway to accept a message for the new dataset")
    wait_for(lambda: lake_ids(system, dataset_id) == [first["_id"]], 20, what="the first message in the lake")

    enabled = system.http.patch(f"{CATALOG}/{dataset_id}", headers=system.auth, json={
        "tags": {"unifiedIdentity": ["enabled:true"], "unifiedProfile": ["enabled:true"]}})
    assert enabled.status_code == 200, enabled.text
    assert enabled.json() == [f"@/dataSets/{dataset_id}"]
    tags = system.http.get(f"{CATALOG}/{dataset_id}", headers=system.auth).json()[dataset_id]["tags"]
    assert tags["unifiedProfile"] == ["enabled:true"]

    # The second gateway sees the switch within seconds; until then it still says "lake only".
    def second_reaches_profile() -> bool:
        response = second_gateway.post("/collection/demo?syncValidation=true", json=streamed(dataset_id, second))
        assert response.status_code == 200, response.text
        return second["_id"] in profile_event_ids(system, email)

    wait_for(second_reaches_profile, 20, what="the second message in the profile")
    assert profile_event_ids(system, email) == [second["_id"]]
    wait_for(lambda: lake_ids(system, dataset_id) == sorted([first["_id"], second["_id"]]), 20,
             what="both messages in the lake")
    assert profile_event_ids(system, email) == [second["_id"]]


@pytest.mark.components("gateway", "lake")
def test_enabling_applies_to_data_ingested_from_then_on(system: System) -> None:
    """A message accepted while its dataset was lake-only stays out of the profile even when the
    profile worker applies it after the dataset was enabled (it was behind, or down). The
    enable call is the documented one (https://experienceleague.adobe.com/en/docs/experience-platform/catalog/datasets/enable-for-profile)."""
    created = system.http.post(CATALOG, headers=system.auth, json={
        "name": "late", "schemaRef": {"id": EVENT_SCHEMA}, "inlet": {"id": "late-events"}})
    assert created.json() == ["@/dataSets/late-events"], created.text
    email = f"late-{uuid.uuid4().hex[:8]}@shop.example"
    before, after = event(email=email), event(email=email)
    assert system.http.post("/collection/demo", json=streamed("late-events", before)).status_code == 200
    assert system.http.patch(f"{CATALOG}/late-events", headers=system.auth, json={
        "tags": {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}}).status_code == 200
    assert system.http.post("/collection/demo", json=streamed("late-events", after)).status_code == 200
    system.start("profile")  # only now: both messages are applied after the switch
    wait_for(lambda: after["_id"] in profile_event_ids(system, email), 20, what="the later message in the profile")
    assert profile_event_ids(system, email) == [after["_id"]]


@pytest.mark.components("gateway")
def test_catalog_list_pages_and_properties(system: System) -> None:
    """"List Catalog objects" and "Filter Catalog data using query parameters"
    (https://experienceleague.adobe.com/en/docs/experience-platform/catalog/api/list-objects,
    .../catalog/api/filter-data): an object keyed by dataset id, `limit` (1-100; 0 is a 400),
    `start`, and `properties` keeping only the named fields. The config file's datasets are
    there too, with their Profile switch as tags."""
    for n in range(3):
        assert system.http.post(CATALOG, headers=system.auth, json={
            "name": f"ds{n}", "inlet": {"id": f"paged-{n}", "class": "experienceevent"}}).status_code == 201
    listed = system.http.get(CATALOG, headers=system.auth, params={"limit": 100}).json()
    assert {"demo-events", "lake-only", "paged-0", "paged-1", "paged-2"} <= set(listed)
    assert listed["demo-events"]["tags"]["unifiedProfile"] == ["enabled:true"]
    assert listed["lake-only"]["tags"] == {}
    assert listed["paged-1"]["tags"] == {}
    page = system.http.get(CATALOG, headers=system.auth, params={"limit": 2, "start": 1,
                                                                 "properties": "name,tags"}).json()
    assert len(page) == 2 and all(set(v) <= {"name", "tags"} for v in page.values())
    assert list(page) == list(listed)[1:3]
    zero = system.http.get(CATALOG, headers=system.auth, params={"limit": 0})
    assert zero.status_code == 400 and zero.json()["code"] == "invalid_parameter"
    read_only = system.http.post(CATALOG, headers={"Authorization": "Bearer analyst-token-0123456789"},
                                 json={"name": "nope"})
    assert read_only.status_code == 403 and read_only.json()["code"] == "forbidden"
    unknown_schema = system.http.post(CATALOG, headers=system.auth,
                                      json={"name": "x", "schemaRef": {"id": "https://ns.adobe.com/none"}})
    assert unknown_schema.status_code == 400 and unknown_schema.json()["code"] == "invalid_message"

    # The config file only seeds: a change made through the API survives a restart.
    assert system.http.patch(f"{CATALOG}/demo-events", headers=system.auth, json={"tags": {}}).status_code == 200
    system.stop("gateway")
    system.start("gateway")
    assert system.http.get(f"{CATALOG}/demo-events", headers=system.auth).json()["demo-events"]["tags"] == {}


def test_connection_made_at_runtime(system: System, second_gateway: httpx.Client) -> None:
    """A streaming connection made through the API: its token works at once (on another gateway
    too), is shown once (never by list or get, nor its hash), and once removed the connection
    is refused."""
    admin = system.auth
    refused = system.http.post("/inlet/connections", headers={"Authorization": "Bearer analyst-token-0123456789"},
                               json={"name": "crm"})
    assert refused.status_code == 403
    made = system.http.post("/inlet/connections", headers=admin, json={"name": "crm", "datasets": ["demo-events"]})
    assert made.status_code == 201, made.text
    shown = made.json()
    connection_id, token = shown["id"], shown["token"]
    assert len(token) >= 40

    message: dict[str, Any] = {"header": {"schemaRef": {"id": "https://ns.adobe.com/demo/schemas/1"},
                                          "datasetId": "demo-events"},
               "body": {"xdmEntity": event()}}
    assert system.http.post(f"/collection/{connection_id}", json=message).status_code == 401
    wrong = system.http.post(f"/collection/{connection_id}", json=message, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    bearer = {"Authorization": f"Bearer {token}"}
    assert system.http.post(f"/collection/{connection_id}", json=message, headers=bearer).status_code == 200
    wait_for(lambda: second_gateway.post(f"/collection/{connection_id}", json={**message, "body": {
        "xdmEntity": event()}}, headers=bearer).status_code == 200, 10, what="the token on the second gateway")
    other = system.http.post(f"/collection/{connection_id}", headers=bearer, json={
        **message, "header": {**message["header"], "datasetId": "lake-only"}})
    assert other.status_code == 403 and other.json()["code"] == "dataset_not_allowed"

    listed = system.http.get("/inlet/connections", headers=admin)
    one = system.http.get(f"/inlet/connections/{connection_id}", headers=admin)
    assert connection_id in [c["id"] for c in listed.json()["connections"]]
    assert one.json()["id"] == connection_id and one.json()["origin"] == "api"
    digest = hashlib.sha256(token.encode()).hexdigest()
    for answer in (listed, one):
        assert token not in answer.text and digest not in answer.text and "token" not in answer.json()

    assert system.http.delete("/inlet/connections/demo", headers=admin).status_code == 403  # the file's
    assert system.http.delete(f"/inlet/connections/{connection_id}", headers=admin).status_code == 204
    gone = system.http.post(f"/collection/{connection_id}", json=message, headers=bearer)
    assert gone.status_code == 404 and gone.json()["code"] == "unknown_connection"
    wait_for(lambda: second_gateway.post(f"/collection/{connection_id}", json=message,
                                         headers=bearer).status_code == 404, 10,
             what="the second gateway to refuse the removed connection")


@pytest.mark.components("gateway")
def test_datastreams_and_sandboxes(system: System) -> None:
    """A datastream made through the API takes Edge Network traffic from its allowed origins at
    once; sandboxes are listed and made through the shape of Adobe's Sandbox API
    (https://experienceleague.adobe.com/en/docs/experience-platform/sandbox/api/sandboxes:
    `{"sandboxes": [{"name", "title", "type", ...}]}`), and a dataset needs its sandbox."""
    names = [s["name"] for s in system.http.get("/data/foundation/sandbox-management/sandboxes",
                                                headers=system.auth).json()["sandboxes"]]
    assert "prod" in names and "qa" not in names
    nowhere = system.http.post(CATALOG, headers={**system.auth, "x-sandbox-name": "qa"}, json={"name": "x"})
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "not_found"
    made = system.http.post("/data/foundation/sandbox-management/sandboxes", headers=system.auth,
                            json={"name": "qa", "title": "QA", "type": "development"})
    assert made.status_code == 201 and made.json()["name"] == "qa"
    assert system.http.post(CATALOG, headers={**system.auth, "x-sandbox-name": "qa"}, json={
        "name": "qa events", "inlet": {"id": "qa-events"}}).status_code == 201
    assert "qa-events" in system.http.get(CATALOG, headers={**system.auth, "x-sandbox-name": "qa"}).json()
    assert "qa-events" not in system.http.get(CATALOG, headers=system.auth).json()

    stream = system.http.post("/inlet/datastreams", headers=system.auth,
                              json={"dataset": "demo-events", "origins": ["https://new.example"]})
    assert stream.status_code == 201, stream.text
    config_id = stream.json()["id"]
    body = {"events": [{"xdm": event(email="edge@shop.example")}]}
    allowed = system.http.post(f"/ee/v1/interact?configId={config_id}", json=body,
                               headers={"Origin": "https://new.example"})
    assert allowed.status_code == 200, allowed.text
    other = system.http.post(f"/ee/v1/interact?configId={config_id}", json=body,
                             headers={"Origin": "https://evil.example"})
    assert other.status_code == 403
    assert system.http.delete(f"/inlet/datastreams/{config_id}", headers=system.auth).status_code == 204
    gone = system.http.post(f"/ee/v1/interact?configId={config_id}", json=body)
    assert gone.status_code == 400 and gone.json()["errors"][0]["type"].endswith("unknown_datastream"), gone.text
