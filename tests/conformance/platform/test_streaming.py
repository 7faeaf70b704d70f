"""Streaming ingestion details as Adobe documents them, through the real gateway, NATS and
profile worker: a time-series message whose header carries no `imsOrgId` (the platform fills
it in from the connection), and the legacy `synchronousValidation=true` parameter.

Source: https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/tutorials/streaming-time-series-data
(AdobeDocs/experience-platform.en, help/ingestion/tutorials/streaming-time-series-data.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import System

SCHEMA_REF = {"id": "https://ns.adobe.com/demo/schemas/1", "contentType": "application/vnd.adobe.xed-full+json;version=1"}


def time_series(dataset: str, **extra: Any) -> dict[str, Any]:
    """The page's example request body; the header without `imsOrgId`, ids adapted."""
    return {
        "header": {"schemaRef": SCHEMA_REF, "datasetId": dataset},
        "body": {
            "xdmMeta": {"schemaRef": SCHEMA_REF},
            "xdmEntity": {
                "_id": "9af5adcc-db9c-4692-b826-65d3abe68c22",
                "timestamp": "2019-02-23T22:07:01Z",
                "environment": {
                    "browserDetails": {
                        "userAgent": "Mozilla/5.0 (Windows NT 5.1) AppleWebKit/537.36 (KHTML, like Gecko) "
                                     "Chrome/29.0.1547.57 Safari/537.36 OPR/16.0.1196.62",
                        "acceptLanguage": "en-US", "cookiesEnabled": True, "javaScriptVersion": "1.6",
                        "javaEnabled": True},
                    "colorDepth": 32, "viewportHeight": 799, "viewportWidth": 414},
                "productListItems": [{"SKU": "CC", "name": "Fernie Snow", "quantity": 30, "priceTotal": 7.8}],
                "commerce": {"productViews": {"value": 1}},
                "_experience": {"campaign": {"message": {"profileSnapshot": {
                    "workEmail": {"address": "janedoe@example.com"}}}}},
                **extra,
            },
        },
    }


@pytest.mark.components("gateway", "profile")
def test_time_series_without_ims_org_and_with_legacy_synchronous_validation(system: System) -> None:
    """POST /collection/{CONNECTION_ID}?synchronousValidation=true with the page's time-series
    message (no `imsOrgId`): 200 with `inletId`, `xactionId`, `receivedTimeMs` and
    `synchronousValidation: {"status": "pass"}`; then "Retrieve the newly ingested time series
    data" through the profile access API finds it, `_links.next.href` "" on the only page.
    (https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/tutorials/streaming-time-series-data)"""
    lake_only = system.http.post("/collection/demo?synchronousValidation=true", json=time_series("lake-only"))
    assert lake_only.status_code == 200, lake_only.text
    answer = lake_only.json()
    assert set(answer) == {"inletId", "xactionId", "receivedTimeMs", "synchronousValidation"}
    assert answer["inletId"] == "demo" and answer["synchronousValidation"] == {"status": "pass"}
    assert isinstance(answer["receivedTimeMs"], int) and answer["xactionId"].startswith(str(answer["receivedTimeMs"]))

    # The same message into a profile-enabled dataset needs an identity to belong to someone.
    identity = {"identityMap": {"Email": [{"id": "janedoe@example.com", "primary": True}]}}
    stored = system.http.post("/collection/demo?synchronousValidation=true", json=time_series("demo-events", **identity))
    assert stored.status_code == 200, stored.text
    system.wait_for(lambda: system.events("email", "janedoe@example.com").status_code == 200, 10, "the event")
    page = system.events("email", "janedoe@example.com").json()
    assert page["_page"]["orderby"] == "timestamp" and page["_page"]["start"] == "9af5adcc-db9c-4692-b826-65d3abe68c22"
    assert page["_page"]["count"] == 1 and page["_page"]["next"] == ""
    (child,) = page["children"]
    assert child["timestamp"] == 1550959621000
    assert child["entity"]["productListItems"] == [{"SKU": "CC", "name": "Fernie Snow", "quantity": 30, "priceTotal": 7.8}]
    assert page["_links"] == {"next": {"href": ""}}


@pytest.mark.components("gateway", "profile")
def test_legacy_synchronous_validation_reports_a_failure_like_sync_validation(system: System) -> None:
    """`synchronousValidation=true` is honoured like `syncValidation=true`: a message that
    fails validation answers 400 with the validation report; an `imsOrgId` that is sent must
    still be this org's.
    (https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/tutorials/streaming-time-series-data)"""
    bad = time_series("lake-only")
    del bad["body"]["xdmEntity"]["timestamp"]
    for parameter in ("synchronousValidation", "syncValidation"):
        refused = system.http.post(f"/collection/demo?{parameter}=true", json=bad)
        assert refused.status_code == 400, refused.text
        (report,) = refused.json()["report"]["cause"]["_streamingValidation"]
        assert report["code"] == "missing_field" and "timestamp" in report["message"]
    without = system.http.post("/collection/demo", json=bad)
    assert without.status_code == 400 and "report" not in without.json()

    other_org = time_series("lake-only")
    other_org["header"]["imsOrgId"] = "OTHER@AdobeOrg"
    mismatch = system.http.post("/collection/demo?synchronousValidation=true", json=other_org)
    assert mismatch.status_code == 400 and mismatch.json()["code"] == "org_mismatch"
