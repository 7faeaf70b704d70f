"""XDM schemas end to end: the Schema Registry API, validation at ingestion (sync report, async
failure store), identity descriptors, the union view and live schema changes, through the real
gateway, NATS and profile worker.

Request shapes follow Adobe's documentation (named in each test): the Schema Registry API
(https://experienceleague.adobe.com/en/docs/experience-platform/xdm/api/getting-started for the
`Accept` header forms, .../xdm/api/schemas, .../xdm/api/field-groups, .../xdm/api/descriptors,
.../xdm/api/unions) and streaming ingestion (.../ingestion/tutorials/streaming-record-data,
.../ingestion/tutorials/streaming-time-series-data, .../ingestion/quality/streaming-validation).
"""

from __future__ import annotations

import asyncio
import glob
import json
import subprocess
import sys
import uuid
from typing import Any
from urllib.parse import quote

import msgspec
import nats
import polars as pl
import pytest

from tests.harness import ORG, System, event, message

REGISTRY = "/data/foundation/schemaregistry"
XED = "application/vnd.adobe.xed+json; version=1"
XED_FULL = "application/vnd.adobe.xed-full+json; version=1"
EVENT_SCHEMA = "https://ns.adobe.com/demo/schemas/event"
CHECKED = """
[[datasets]]
id = "checked-events"
class = "experienceevent"
schema = "https://ns.adobe.com/demo/schemas/event"

[[datasets]]
id = "crm-records"
class = "profile"

[[datasets]]
id = "web-events"
class = "experienceevent"

[[datastreams]]
id = "checked"
dataset = "checked-events"
"""
ALLOY = "/work/shared/fixtures/alloy-2.33.1"


def checked(xdm: dict[str, Any], dataset: str = "checked-events", schema: str = EVENT_SCHEMA) -> dict[str, Any]:
    body = message(dataset, xdm)
    body["header"]["schemaRef"]["id"] = body["body"]["xdmMeta"]["schemaRef"]["id"] = schema
    return body


def api(system: System, accept: str = XED, **more: str) -> dict[str, str]:
    return {**system.auth, "Accept": accept, "x-sandbox-name": "prod", **more}


def failures(system: System, dataset: str = "checked-events") -> list[dict[str, Any]]:
    response = system.http.get(f"{REGISTRY}/failures", params={"datasetId": dataset}, headers=system.auth)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["failures"]
    return found


def invalid_event(event_id: str) -> dict[str, Any]:
    """Five violations of the standard ExperienceEvent schema with its field groups."""
    return event(email="bad@shop.example", event_id=event_id, event_type="commerce.purchases",
                 commerce={"order": {"priceTotal": "12", "currencyCode": "euro"}},
                 web={"webInteraction": {"type": "bogus"}, "webPageDetails": {"URL": "x", "name": 5}},
                 mystery=True)


EXPECTED = {  # pointer → JSON Schema keyword
    "#/commerce/order/priceTotal": "type",
    "#/commerce/order/currencyCode": "pattern",
    "#/web/webInteraction/type": "enum",
    "#/web/webPageDetails/name": "type",
    "#/mystery": "additionalProperties",
}


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(CHECKED)
def test_sync_validation_reports_every_violation_with_its_path(system: System) -> None:
    """AEP's synchronous validation (.../ingestion/quality/streaming-validation): 400 with
    `report.cause._streamingValidation[]`, one entry per violation; nothing is stored."""
    response = system.http.post("/collection/demo?syncValidation=true", json=checked(invalid_event("sync-bad")))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["title"] == "Invalid XDM Message Format"
    entries = body["report"]["cause"]["_streamingValidation"]
    assert {e["pointerToViolation"]: e["keyword"] for e in entries} == EXPECTED
    for entry in entries:
        assert entry["message"].startswith(entry["pointerToViolation"] + ": ")
    assert failures(system) == []  # answered, not stored

    ok = system.http.post("/collection/demo?syncValidation=true", json=checked(event(email="good@shop.example")))
    assert ok.status_code == 200 and ok.json()["syncValidation"] == {"status": "pass"}

    # A custom namespace must be declared ([identity] namespaces; docs/profile.md).
    undeclared = event(email="good@shop.example")
    undeclared["identityMap"]["LoyaltyCard"] = [{"id": "card-1"}]
    refused = system.http.post("/collection/demo?syncValidation=true", json=checked(undeclared))
    assert refused.status_code == 400
    (entry,) = refused.json()["report"]["cause"]["_streamingValidation"]
    assert (entry["pointerToViolation"], entry["keyword"]) == ("#/identityMap/LoyaltyCard", "namespace")
    assert "'LoyaltyCard' is not declared" in entry["message"]


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(CHECKED)
def test_async_violations_answer_200_and_land_in_the_failure_store_not_the_profile(system: System) -> None:
    """Without syncValidation AEP answers at once and keeps the invalid message out of the
    dataset; inlet records it, with every reason, in the dataset's failure store."""
    bad = system.http.post("/collection/demo", json=checked(invalid_event("async-bad")))
    assert bad.status_code == 200, bad.text
    batch = system.http.post("/collection/batch/demo", json={"messages": [
        checked(invalid_event("batch-bad")), checked(event(email="bad@shop.example", event_id="batch-good"))]})
    assert batch.status_code == 207
    assert all("xactionId" in r for r in batch.json()["responses"])

    stored = system.wait_for(lambda: f if len(f := failures(system)) == 2 else None, 10, "two failures stored")
    assert [f["messageId"].rsplit("/", 1)[-1] for f in stored] == ["async-bad", "batch-bad"]
    for failure in stored:
        assert failure["schemaRef"]["id"] == EVENT_SCHEMA
        assert {e["path"]: e["code"] for e in failure["errors"]} == {
            "/commerce/order/priceTotal": "type", "/commerce/order/currencyCode": "pattern",
            "/web/webInteraction/type": "enum", "/web/webPageDetails/name": "type", "/mystery": "undeclared"}
        assert failure["xdmEntity"]["mystery"] is True

    # The valid event of the same person arrives; the invalid ones never do.
    events = system.wait_for(
        lambda: (r := system.events("Email", "bad@shop.example")).status_code == 200 and r.json().get("children"),
        15, "the valid event in the profile")
    assert [e["entity"]["_id"] for e in events] == ["batch-good"]
    metrics = system.http.get("/metrics").text
    assert 'inlet_schema_failures_total{dataset="checked-events",sandbox="prod"} 2.0' in metrics

    cli = subprocess.run([sys.executable, "-m", "inlet", "schema-failures", "--dataset", "checked-events"],
                         env=system.env, capture_output=True, text=True, timeout=60, cwd=system.tmp)
    assert cli.returncode == 0, cli.stderr
    assert "async-bad" in cli.stdout and "batch-bad" in cli.stdout
    assert "    /web/webInteraction/type: 'bogus' is not one of" in cli.stdout
    counts = subprocess.run([sys.executable, "-m", "inlet", "schema-failures"], env=system.env,
                            capture_output=True, text=True, timeout=60, cwd=system.tmp)
    assert "prod\tchecked-events\t2" in counts.stdout, counts.stdout + counts.stderr


@pytest.mark.components("gateway")
@pytest.mark.config(CHECKED)
def test_a_message_naming_another_schema_is_refused(system: System) -> None:
    response = system.http.post("/collection/demo", json=checked(event(), schema="https://ns.adobe.com/demo/schemas/1"))
    assert response.status_code == 400
    assert response.json()["code"] == "schema_mismatch"
    assert "https://ns.adobe.com/demo/schemas/event" in response.json()["detail"]
    # The meta:altId names the same schema.
    assert system.http.post("/collection/demo", json=checked(event(), schema="_demo.schemas.event")).status_code == 200


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(CHECKED)
def test_adobe_web_sdk_events_conform_to_the_standard_event_schema(system: System) -> None:
    """Every event Adobe's Web SDK (alloy 2.33.1, captured in /work/shared/fixtures) sends is
    valid against the default event schema; an event that breaks it is kept out and stored."""
    bodies = []
    for path in sorted(glob.glob(f"{ALLOY}/*/*.json")):
        request = json.load(open(path))["request"]
        body = request.get("body")
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                continue
        if isinstance(body, dict) and body.get("events") and "/ee/" in request.get("path", "/ee/"):
            bodies.append(body)
    assert len(bodies) >= 10
    for body in bodies:
        body.pop("meta", None)
        response = system.http.post("/ee/v1/interact", params={"configId": "checked"}, content=json.dumps(body))
        assert response.status_code == 200, response.text
    bogus = {"events": [{"xdm": {"eventType": "web.webinteraction.linkClicks",
                                 "web": {"webInteraction": {"type": "bogus", "linkClicks": {"value": 1}}}}}]}
    assert system.http.post("/ee/v1/interact", params={"configId": "checked"}, content=json.dumps(bogus)).status_code == 200
    stored = system.wait_for(lambda: failures(system) or None, 10, "the bogus Edge event stored")
    assert [(e["path"], e["code"]) for f in stored for e in f["errors"]] == [("/web/webInteraction/type", "enum")]


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(CHECKED)
def test_registry_tutorial_record_schema_descriptor_and_streaming(system: System) -> None:
    """Adobe's record tutorial (.../ingestion/tutorials/streaming-record-data): compose an
    Individual Profile schema from standard field groups, tag it for Profile (`union`), add a
    primary identity descriptor on `/workEmail/address`, point the dataset at it, stream the
    tutorial's record (no identityMap), and read it back from the profile by that identity."""
    created = system.http.post(f"{REGISTRY}/tenant/schemas", headers=api(system), json={
        "type": "object", "title": "Sample schema", "description": "Sample description",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"},
                  {"$ref": "https://ns.adobe.com/xdm/context/profile-person-details"},
                  {"$ref": "https://ns.adobe.com/xdm/context/profile-work-details"}],
        "meta:immutableTags": ["union"]})
    assert created.status_code == 201, created.text
    schema = created.json()
    schema_id = schema["$id"]
    assert schema_id.startswith("https://ns.adobe.com/demo/schemas/") and schema["meta:altId"].startswith("_demo.schemas.")
    assert schema["meta:class"] == "https://ns.adobe.com/xdm/context/profile"
    assert "https://ns.adobe.com/xdm/context/profile-work-details" in schema["meta:extends"]

    # The Accept header selects the form (.../xdm/api/getting-started: Accept header).
    unresolved = system.http.get(f"{REGISTRY}/tenant/schemas/{quote(schema_id, safe='')}", headers=api(system, XED)).json()
    assert [r["$ref"] for r in unresolved["allOf"]][0] == "https://ns.adobe.com/xdm/context/profile"
    assert "properties" not in unresolved
    full = system.http.get(f"{REGISTRY}/tenant/schemas/{schema['meta:altId']}", headers=api(system, XED_FULL)).json()
    assert "allOf" not in full
    assert full["properties"]["workEmail"]["properties"]["address"]["format"] == "email"
    notext = system.http.get(f"{REGISTRY}/tenant/schemas/{schema['meta:altId']}",
                             headers=api(system, "application/vnd.adobe.xed-full-notext+json; version=1")).json()
    assert "title" not in notext and "title" in full
    ids = system.http.get(f"{REGISTRY}/tenant/schemas", headers=api(system, "application/vnd.adobe.xed-id+json")).json()
    assert schema_id in [r["$id"] for r in ids["results"]]

    undeclared = system.http.post(f"{REGISTRY}/tenant/descriptors", headers=api(system), json={
        "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema_id, "xdm:sourceVersion": 1,
        "xdm:sourceProperty": "/workEmail/address", "xdm:namespace": "LoyaltyCard", "xdm:property": "xdm:code",
        "xdm:isPrimary": True})
    assert undeclared.status_code == 400 and "'LoyaltyCard' is not declared" in undeclared.json()["detail"]
    descriptor = system.http.post(f"{REGISTRY}/tenant/descriptors", headers=api(system), json={
        "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema_id, "xdm:sourceVersion": 1,
        "xdm:sourceProperty": "/workEmail/address", "xdm:namespace": "Email", "xdm:property": "xdm:code",
        "xdm:isPrimary": True})
    assert descriptor.status_code == 201, descriptor.text
    with_desc = system.http.get(f"{REGISTRY}/tenant/schemas/{schema['meta:altId']}",
                                headers=api(system, "application/vnd.adobe.xed-full-desc+json; version=1")).json()
    assert [d["@id"] for d in with_desc["meta:descriptors"]] == [descriptor.json()["@id"]]

    bound = system.http.patch("/data/foundation/catalog/dataSets/crm-records", headers=api(system),
                              json={"schemaRef": {"id": schema_id, "contentType": XED}})
    assert bound.status_code == 200, bound.text
    assert bound.json() == ["@/dataSets/crm-records"]  # Catalog's PATCH answer (docs/catalog.md)
    read = system.http.get("/data/foundation/catalog/dataSets/crm-records", headers=api(system)).json()
    assert read["crm-records"]["schemaRef"]["id"] == schema_id

    record = {"person": {"name": {"firstName": "Jane", "middleName": "F", "lastName": "Doe"},
                         "birthDate": "1969-03-14", "gender": "female"},
              "workEmail": {"primary": True, "address": "janedoe@example.com", "type": "work", "status": "active"}}
    response = system.http.post("/collection/demo?syncValidation=true", json=checked(record, "crm-records", schema_id))
    assert response.status_code == 200, response.text
    profile = system.wait_for(lambda: (r := system.profile("Email", "janedoe@example.com")).status_code == 200 and r.json(),
                              15, "the record's profile")
    (entity,) = profile.values()
    assert entity["entity"]["person"]["name"]["lastName"] == "Doe"

    # Profile's union view of the class now holds the tutorial schema's fields.
    union = system.http.get(f"{REGISTRY}/tenant/unions/_xdm.context.profile__union", headers=api(system, XED_FULL)).json()
    assert schema_id in union["meta:unionMembers"] and "workEmail" in union["properties"]
    unions = system.http.get(f"{REGISTRY}/tenant/unions", headers=api(system, "application/vnd.adobe.xed-id+json")).json()
    assert "https://ns.adobe.com/xdm/context/profile__union" in [u["$id"] for u in unions["results"]]


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(CHECKED)
def test_time_series_tutorial_event_lands_under_its_descriptor_identity(system: System) -> None:
    """Adobe's time-series tutorial (.../ingestion/tutorials/streaming-time-series-data): an
    ExperienceEvent schema with environment, commerce and Campaign's profile-work-details, a
    primary Email identity on `/workEmail/address`, and the tutorial's event sent unchanged but
    for its ids."""
    schema = system.http.post(f"{REGISTRY}/tenant/schemas", headers=api(system), json={
        "type": "object", "title": "Time series sample", "description": "events",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"},
                  {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-environment-details"},
                  {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-commerce"},
                  {"$ref": "https://ns.adobe.com/experience/campaign/experienceevent-profile-work-details"}],
        "meta:immutableTags": ["union"]}).json()
    assert system.http.post(f"{REGISTRY}/tenant/descriptors", headers=api(system), json={
        "@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema["$id"], "xdm:sourceVersion": 1,
        "xdm:sourceProperty": "/workEmail/address", "xdm:namespace": "Email", "xdm:property": "xdm:code",
        "xdm:isPrimary": True}).status_code == 201
    assert system.http.patch("/data/foundation/catalog/dataSets/web-events", headers=api(system),
                             json={"schemaRef": {"id": schema["$id"]}}).status_code == 200
    xdm = {"_id": "9af5adcc-db9c-4692-b826-" + uuid.uuid4().hex[:12], "timestamp": "2019-02-23T22:07:01Z",
           "environment": {"browserDetails": {"userAgent": "Mozilla/5.0 (Windows NT 5.1) AppleWebKit/536.5",
                                              "acceptLanguage": "en-US", "cookiesEnabled": True,
                                              "javaScriptVersion": "1.6", "javaEnabled": True}},
           "commerce": {"purchases": {"value": 1}, "order": {"currencyCode": "USD", "priceTotal": 16.69}},
           "workEmail": {"primary": True, "address": "janedoe@example.com", "type": "work", "status": "active"}}
    response = system.http.post("/collection/demo?syncValidation=true", json=checked(xdm, "web-events", schema["$id"]))
    assert response.status_code == 200, response.text
    events = system.wait_for(lambda: (r := system.events("Email", "janedoe@example.com")).status_code == 200
                             and r.json().get("children"), 15, "the event in the profile")
    assert events[0]["entity"]["_id"] == xdm["_id"]


@pytest.mark.components("gateway")
@pytest.mark.config(CHECKED)
def test_a_field_added_while_running_is_accepted_a_moment_later(system: System) -> None:
    """Another process (here: the test, as a second gateway would) writes a changed schema to
    the registry's bucket; the running gateway follows the bucket and accepts the new field
    without a restart."""
    def send() -> int:
        xdm = event(email="live@shop.example", loyaltyNote="gold")
        return system.http.post("/collection/demo?syncValidation=true", json=checked(xdm)).status_code

    assert send() == 400
    current = system.http.get(f"{REGISTRY}/tenant/schemas/_demo.schemas.event", headers=api(system, XED)).json()
    group = system.http.post(f"{REGISTRY}/tenant/fieldgroups", headers=api(system), json={
        "type": "object", "title": "Loyalty note", "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/experienceevent"],
        "definitions": {"note": {"properties": {"loyaltyNote": {"type": "string", "maxLength": 16}}}},
        "allOf": [{"$ref": "#/definitions/note"}]}).json()
    current["allOf"].append({"$ref": group["$id"]})

    async def write() -> None:
        from inlet.schemas.registry import BUCKET, key
        nc = await nats.connect(system.nats.url)
        kv = await nc.jetstream().key_value(BUCKET)
        await kv.put(key("prod", "schemas", current["$id"]), msgspec.json.encode(current))
        await nc.close()

    asyncio.run(write())
    system.wait_for(lambda: send() == 200, 5, "the new field accepted")


@pytest.mark.components("gateway")
@pytest.mark.config(CHECKED)
def test_schema_registry_refuses_what_aep_refuses(system: System) -> None:
    """Unknown references, two classes, changes to standard resources, no token."""
    unknown = system.http.post(f"{REGISTRY}/tenant/schemas", headers=api(system), json={
        "type": "object", "title": "x", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"},
                                                  {"$ref": "https://ns.adobe.com/nope/fieldgroup"}]})
    assert unknown.status_code == 400 and "nope" in unknown.json()["detail"]
    two = system.http.post(f"{REGISTRY}/tenant/schemas", headers=api(system), json={
        "type": "object", "title": "x", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"},
                                                  {"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}]})
    assert two.status_code == 400
    wrong_class = system.http.post(f"{REGISTRY}/tenant/schemas", headers=api(system), json={
        "type": "object", "title": "x", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"},
                                                  {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-commerce"}]})
    assert wrong_class.status_code == 400 and "intended for" in wrong_class.json()["detail"]
    standard = system.http.delete(f"{REGISTRY}/global/classes/_xdm.context.profile", headers=api(system))
    assert standard.status_code == 403
    assert system.http.get(f"{REGISTRY}/global/classes", headers={"Accept": XED}).status_code == 401
    classes = system.http.get(f"{REGISTRY}/global/classes", headers=api(system, "application/vnd.adobe.xed-id+json"))
    assert {c["$id"] for c in classes.json()["results"]} >= {
        "https://ns.adobe.com/xdm/context/profile", "https://ns.adobe.com/xdm/context/experienceevent",
        "https://ns.adobe.com/xdm/context/account", "https://ns.adobe.com/xdm/context/account-person"}
    assert ORG == "DEMO@AdobeOrg"


@pytest.mark.components("gateway", "profile")
@pytest.mark.config(CHECKED)
def test_the_union_schema_holds_the_declared_fields_before_any_data(system: System) -> None:
    """Profile's union view merges the schemas of the class's Profile-enabled datasets with what
    data has shown (docs/schemas.md: union schema)."""
    union = system.http.get("/data/core/ups/config/unionSchema", params={"class": "experienceevent"},
                            headers=system.auth).json()
    assert union["schemas"] == [EVENT_SCHEMA]
    fields = {f["path"]: f for f in union["fields"]}
    assert fields["commerce.order.priceTotal"] == {"path": "commerce.order.priceTotal", "types": ["number"],
                                                   "datasets": ["checked-events"]}
    assert fields["identityMap"]["types"] == ["map"]
    assert "productListItems[].SKU" in fields


@pytest.mark.components("gateway", "lake")
@pytest.mark.config(CHECKED)
def test_the_lake_writes_the_declared_types(system: System) -> None:
    """A typed lake (docs/schemas.md): the first event's integer price would make an Int64
    column; the schema declares a number, so the column is Float64 from the first file, and
    declared fields no event has sent yet are columns of their declared types already."""
    xdm = event(email="lake@shop.example", event_id="typed-1", commerce={"order": {"priceTotal": 10}})
    assert system.http.post("/collection/demo", json=checked(xdm)).status_code == 200
    directory = system.data_dir / "lake" / "prod" / "checked-events"
    (path,) = system.wait_for(lambda: list(directory.rglob("*.parquet")), 15, "the lake file")
    schema = pl.read_parquet_schema(path)
    order = {f.name: f.dtype for f in schema["commerce"].fields}["order"]
    assert {f.name: f.dtype for f in order.fields}["priceTotal"] == pl.Float64
    device = {f.name: f.dtype for f in schema["device"].fields}
    assert device["screenWidth"] == pl.Int64 and device["screenOrientation"] == pl.String
    assert pl.read_parquet(path)["_id"].to_list() == ["typed-1"]
