"""The profile workspace (`/ui/`) in Debian's Chromium, against the real gateway and workers.

Each workflow is driven in the page and checked through the Platform API (and the other way
round: a change made through the API shows in the page); every view passes axe-core's WCAG A/AA
rules; the main flows are done with the keyboard alone. `make screenshot` refreshes the
README's pictures from these tests (docs/workspace-*.png).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from inlet.demo import demo_people
from tests.browser.test_profile_page import PEOPLE, SEED, run_demo
from tests.browser.workspace import accessible, open_workspace, screenshot
from tests.harness import System, event, message

POLICIES = "/data/core/ups/config/mergePolicies"
ATTRIBUTES = "/data/core/ca/attributes"
CUSTOM_NS = """
[identity]
namespaces = ["LoyaltyId"]
"""


def now_iso(offset_s: float = 0) -> str:
    moment = datetime.fromtimestamp(time.time() + offset_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def demo(system: System) -> list[str]:
    run_demo(system)
    people = demo_people(SEED, PEOPLE)
    system.wait_for(lambda: all(system.profile("Email", p).status_code == 200 for p in people), 20, "demo profiles")
    return people


@pytest.mark.config(CUSTOM_NS)
def test_browse_search_upsert_and_delete(system: System, browser: Any) -> None:
    people = demo(system)
    assert system.post_event(email="events-only@shop.example").status_code == 200  # no CRM record
    system.wait_for(lambda: system.profile("Email", "events-only@shop.example").status_code == 200, 10, "profile")
    page = open_workspace(browser, system, "profiles")
    # Every declared namespace, the configured one too, not a fixed five.
    options = page.locator("#profile-ns option").all_inner_texts()
    assert {"ECID", "Email", "Phone", "CRMID", "GAID", "IDFA", "AAID", "LoyaltyId"} <= set(options)

    # Newest updated first: a new event for the last demo person puts them on top.
    latest = people[-1]
    assert system.post_event(email=latest, timestamp=now_iso()).status_code == 200
    latest_id = system.wait_for(lambda: system.profile("Email", latest).json(), 10, "profile")
    pid = next(iter(latest_id))
    system.wait_for(lambda: _first_row(page) == pid, 10, "the updated profile first")
    total = int(page.inner_text("#profiles-total").split()[0])
    assert total >= PEOPLE
    # Pages of five: "More profiles" until everyone is listed once.
    page.select_option("#profile-page-size", "5")
    page.click("#profile-filter button")
    page.wait_for_function("() => document.querySelectorAll('#profile-results tbody tr').length === 5")
    while page.locator("#profiles-more").is_visible():
        shown = page.locator("#profile-results tbody tr").count()
        page.click("#profiles-more")
        page.wait_for_function(f"() => document.querySelectorAll('#profile-results tbody tr').length > {shown}")
    listed = page.locator("#profile-results tbody tr td.mono a").all_inner_texts()
    assert len(listed) == len(set(listed)) == total
    page.select_option("#profile-page-size", "20")
    accessible(page, "the profile list")
    screenshot(page, "profiles")

    # Search by part of an identity value, in a namespace.
    page.fill("#profile-search", latest.split("@")[0])
    page.select_option("#profile-ns", "Email")
    page.click("#profile-filter button")
    page.wait_for_function("() => document.querySelector('#profiles-total').textContent.startsWith('1 profile')")
    assert latest in page.inner_text("#profile-results")
    # A sample for a dataset: demo-profiles holds the CRM records of members only.
    page.fill("#profile-search", "")
    page.select_option("#profile-ns", "")
    page.select_option("#profile-dataset", "demo-profiles")
    page.click("#profile-filter button")
    page.wait_for_function("() => document.querySelector('#profiles-total').textContent.includes('sample')")
    sampled = int(page.inner_text("#profiles-total").split()[0])
    assert 0 < sampled < total
    assert "events-only@shop.example" not in page.inner_text("#profile-results")
    page.select_option("#profile-dataset", "demo-events")
    page.click("#profile-filter button")
    page.wait_for_selector("#profile-results td:text('Email:events-only@shop.example')")

    # Upsert from the profile page; the API sees it.
    page.click(f"a[href='#/profile/{pid}']")
    page.wait_for_selector("#live.on")
    page.click("summary:text('Upsert an attribute')")
    page.fill("#upsert-path", "loyalty.tier")
    page.fill("#upsert-value", '"gold"')
    page.click("#upsert-form button")
    system.wait_for(lambda: system.profile("Email", latest).json()[pid]["entity"].get("loyalty") == {"tier": "gold"},
                    10, "the upsert through the API")
    page.wait_for_selector("#attributes td:text('loyalty.tier')")  # and live in the page (SSE)
    accessible(page, "a profile")

    # Delete: the confirmation says what is kept; the API then finds no attributes or events.
    # With the keyboard: Escape cancels; Tab to "Delete profile" and Enter confirms.
    page.focus("#delete-profile")
    page.keyboard.press("Enter")
    dialog = page.locator("#delete-dialog")
    assert "lake" in dialog.inner_text() and "identity graph" in dialog.inner_text()
    assert page.evaluate("document.activeElement.textContent") == "Cancel"  # the safe choice first
    accessible(page, "the delete confirmation")
    page.keyboard.press("Escape")
    assert not dialog.is_visible() and not page.locator("#delete-result").inner_text()  # nothing sent
    page.keyboard.press("Enter")  # focus is back on "Delete profile…"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#delete-result:text('Delete accepted')")
    system.wait_for(lambda: system.profile("Email", latest).status_code == 404, 10, "the profile deleted")
    assert not page.errors, page.errors


def _first_row(page: Any) -> str:
    page.click("#profile-filter button")
    page.wait_for_load_state()
    cell = page.locator("#profile-results tbody tr td.mono a").first
    return str(cell.inner_text()) if cell.count() else ""


SECOND_PROFILE_DATASET = """
[[datasets]]
id = "crm-records"
class = "profile"
"""


@pytest.mark.config(SECOND_PROFILE_DATASET)
def test_merge_policies_from_the_page_and_the_api(system: System, browser: Any) -> None:
    people = demo(system)
    page = open_workspace(browser, system, "policies")
    page.wait_for_selector("#policy-list td:text('crm-first')")
    accessible(page, "merge policies")

    # Create with the keyboard only: dataset precedence, move a dataset up, stitching off.
    page.focus("#new-policy")
    page.keyboard.press("Enter")
    page.keyboard.type("web-first")  # the id field has focus
    page.keyboard.press("Tab")
    page.keyboard.type("Web before CRM")
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")  # dataset precedence
    page.wait_for_selector("#policy-order li")
    order = page.locator("#policy-order li").evaluate_all("items => items.map(i => i.dataset.dataset)")
    assert order[0] == "demo-profiles"
    page.focus("#policy-order li:nth-child(1) .down")
    page.keyboard.press("Enter")  # demo-profiles moves down, focus follows it
    moved = page.locator("#policy-order li").evaluate_all("items => items.map(i => i.dataset.dataset)")
    assert moved[1] == "demo-profiles"
    page.focus("#policy-stitching")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # "Create merge policy"
    created = system.wait_for(lambda: _policy(system, "web-first"), 10, "the policy through the API")
    assert created["attributeMerge"] == {"type": "dataSetPrecedence", "order": moved}
    assert created["identityGraph"] == {"type": "none"} and created["name"] == "Web before CRM"
    # The list as the page draws it (opened afresh: on CI the list redrawn right after the save
    # once missed the new row; noted in the closing note of issue 18).
    page.goto(f"{system.url}/ui/#/schema")
    page.goto(f"{system.url}/ui/#/policies")
    page.wait_for_selector("#policy-list td:text('web-first')")

    # Changed through the API: the page shows it.
    assert system.http.patch(f"{POLICIES}/web-first", headers=system.auth,
                             json=[{"op": "replace", "path": "/name", "value": "Renamed by API"}]).status_code == 200
    page.goto(f"{system.url}/ui/#/schema")
    page.goto(f"{system.url}/ui/#/policies")
    page.wait_for_selector("#policy-list td:text('Renamed by API')")

    # Edit in the page: drag a dataset to the top, turn stitching back on; the API sees both.
    page.click("button[aria-label='edit web-first']")
    page.drag_and_drop("#policy-order li[data-dataset='demo-profiles']", "#policy-order li[data-dataset='crm-records']")
    assert page.locator("#policy-order li").evaluate_all("items => items.map(i => i.dataset.dataset)") == order
    page.check("#policy-stitching")
    page.click("#policy-form button:text('Save changes')")
    system.wait_for(lambda: _policy(system, "web-first").get("identityGraph") == {"type": "pdg"}, 10, "the edit")
    edited = _policy(system, "web-first")
    assert edited["attributeMerge"]["order"] == order and edited["name"] == "Renamed by API"

    # Side by side: one person under two policies. A newer first name from crm-records wins by
    # timestamp (default) but not under web-first, where demo-profiles comes first.
    crm = {"identityMap": {"Email": [{"id": people[0], "primary": True}]}, "person": {"name": {"firstName": "Johnny"}}}
    assert system.http.post("/collection/demo", json=message("crm-records", crm, "merge")).status_code == 200
    system.wait_for(lambda: "crm-records" in next(iter(system.profile("Email", people[0]).json().values()))["sources"],
                    10, "the CRM record")
    page.select_option("#compare-ns", "Email")
    page.fill("#compare-value", people[0])
    page.select_option("#compare-0", "default")
    page.select_option("#compare-1", "web-first")
    page.click("#compare-form button")
    page.wait_for_selector("#compare-result tbody tr")
    assert page.locator("#compare-result th").all_inner_texts()[1:] == ["default", "web-first"]
    differs = page.locator("#compare-result tr.differs").all_inner_texts()
    assert len(differs) == 1 and '"Johnny" (crm-records)' in differs[0] and '(demo-profiles)' in differs[0], differs
    screenshot(page, "merge-policies")

    # The header picker changes what the profile view reads.
    page.select_option("#policy", "web-first")
    page.goto(f"{system.url}/ui/#/profile/Email/{people[0]}")
    page.wait_for_selector("#meta:text('merge policy web-first')")

    # Delete in the page: gone from the API.
    page.goto(f"{system.url}/ui/#/policies")
    page.once("dialog", lambda d: d.accept())
    page.click("button[aria-label='delete web-first']")
    system.wait_for(lambda: system.http.get(f"{POLICIES}/web-first", headers=system.auth).status_code == 404,
                    10, "the policy deleted")
    assert not page.errors, page.errors


def _policy(system: System, policy_id: str) -> dict[str, Any]:
    response = system.http.get(f"{POLICIES}/{policy_id}", headers=system.auth)
    found: dict[str, Any] = response.json() if response.status_code == 200 else {}
    return found


def test_computed_attribute_preview_save_and_backfill(system: System, browser: Any) -> None:
    email = f"buyer-{uuid.uuid4().hex[:6]}@shop.example"
    for i, price in enumerate([10.5, 20.25, 4.0]):
        xdm = event(email=email, event_type="commerce.purchases", timestamp=now_iso(-3600 * (i + 1)),
                    commerce={"order": {"priceTotal": price, "currencyCode": "EUR"}})
        assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    old = event(email=email, event_type="commerce.purchases", timestamp=now_iso(-86400 * 10),
                commerce={"order": {"priceTotal": 1000.0, "currencyCode": "EUR"}})
    assert system.http.post("/collection/demo", json=message("demo-events", old)).status_code == 200
    system.wait_for(lambda: len(system.events("Email", email).json().get("children", [])) == 4, 10, "events stored")

    page = open_workspace(browser, system, "computed")
    page.fill("#ca-name", "spend7d")
    page.select_option("#ca-function", "SUM")
    page.fill("#ca-field", "commerce.order.priceTotal")
    page.fill("#ca-types", "commerce.purchases")
    page.fill("#ca-count", "7")
    page.select_option("#ca-unit", "DAYS")
    expression = page.inner_text("#ca-expression")
    assert expression == ('xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now]'
                          '.sum(commerce.order.priceTotal)')
    # Preview before saving: the 10-day-old purchase is outside the window; nothing is saved.
    page.select_option("#ca-preview-ns", "Email")
    page.fill("#ca-preview-id", email)
    page.click("#ca-preview-button")
    page.wait_for_selector("#ca-preview:text('Value now: 34.75')")
    assert system.http.get(f"{ATTRIBUTES}/spend7d", headers=system.auth).status_code == 404
    accessible(page, "computed attributes")

    page.click("#ca-save")
    saved = system.wait_for(lambda: _attribute(system, "spend7d"), 10, "the definition through the API")
    assert saved["expression"]["value"] == expression and saved["function"] == "SUM"
    page.wait_for_selector("tr[data-name='spend7d'] td:text('done')", timeout=15000)  # backfill progress
    assert page.inner_text("tr[data-name='spend7d'] td.status") == "PROCESSED"
    value = system.wait_for(lambda: system.profile("Email", email).json(), 5, "profile")
    entity = next(iter(value.values()))["entity"]
    assert entity["computedAttributes"]["spend7d"]["value"] == 34.75  # the preview said so

    # Created through the API: listed in the page.
    body = {"name": "orders30d", "function": "COUNT", "filter": {"eventType": ["commerce.purchases"]},
            "duration": {"count": 30, "unit": "DAYS"}}
    assert system.http.post(ATTRIBUTES, headers=system.auth, json=body).status_code == 200
    page.goto(f"{system.url}/ui/#/schema")
    page.goto(f"{system.url}/ui/#/computed")
    page.wait_for_selector("tr[data-name='orders30d']")
    screenshot(page, "computed-attributes")
    assert not page.errors, page.errors


def _attribute(system: System, name: str) -> dict[str, Any]:
    response = system.http.get(f"{ATTRIBUTES}/{name}", headers=system.auth)
    found: dict[str, Any] = response.json() if response.status_code == 200 else {}
    return found


@pytest.mark.config("""
[[datasets]]
id = "checked-events"
class = "experienceevent"
schema = "https://ns.adobe.com/demo/schemas/event"
""")
def test_union_schema_and_accounts(system: System, browser: Any) -> None:
    people = demo(system)
    page = open_workspace(browser, system, "schema")
    page.select_option("#schema-class", "experienceevent")
    page.fill("#schema-filter", "priceTotal")
    item = page.locator("[role=treeitem][data-path='commerce.order.priceTotal']")
    item.wait_for()
    assert "demo-events" in item.inner_text() and "number" in item.inner_text()
    assert "schema https://ns.adobe.com/demo/schemas/event" in item.inner_text()  # declared by checked-events' schema
    accessible(page, "the union schema")
    screenshot(page, "union-schema")

    # Accounts: search, the account page with its people, a person, and back to the account.
    page.goto(f"{system.url}/ui/#/accounts")
    page.fill("#account-search", "acme")
    page.click("main form button")
    page.wait_for_selector("#account-results a:text('Acme Outfitters')")
    assert page.locator("#account-results tbody tr").count() == 1
    accessible(page, "accounts")
    page.click("#account-results a:text('Acme Outfitters')")
    page.wait_for_selector("#account-people tbody tr td a")
    api = system.http.get("/data/core/ups/access/entities", headers=system.auth,
                          params={"schema.name": "_xdm.context.account", "entityId": "acme@demo.crm"}).json()
    account = next(iter(api.values()))
    assert f"{account['people']['_page']['totalCount']} people" in page.inner_text("#account")
    accessible(page, "an account")
    screenshot(page, "account")
    page.locator("#account-people tbody tr td a").first.click()
    page.wait_for_selector("#accounts a:text('Acme Outfitters')")
    page.click("#accounts a:text('Acme Outfitters')")
    page.wait_for_selector("#account-people")
    assert people and not page.errors, page.errors


CHECKED = """
[[datasets]]
id = "checked-events"
class = "experienceevent"
schema = "https://ns.adobe.com/demo/schemas/event"

[[connections]]
id = "second"

[[connections]]
id = "dev-conn"
sandbox = "dev"

[[datasets]]
id = "dev-events"
sandbox = "dev"
class = "experienceevent"
"""


@pytest.mark.config(CHECKED)
def test_ingestion_overview(system: System, browser: Any) -> None:
    page = open_workspace(browser, system, "ingestion")
    page.wait_for_selector("#chart-datasets")
    for i in range(6):
        assert system.post_event(email=f"rate{i}@shop.example").status_code == 200
    for i in range(3):
        body = message("demo-events", event(email=f"other{i}@shop.example"))
        assert system.http.post("/collection/second", json=body).status_code == 200
    bad = message("checked-events", event(email="bad@shop.example", commerce={"order": {"priceTotal": "12"}}))
    bad["header"]["schemaRef"]["id"] = bad["body"]["xdmMeta"]["schemaRef"]["id"] = "https://ns.adobe.com/demo/schemas/event"
    assert system.http.post("/collection/demo", json=bad).status_code == 200  # kept as a failure, not lost
    page.wait_for_selector("#chart-datasets polyline[data-series='demo-events']")
    page.wait_for_selector("#chart-connections polyline[data-series='second']")
    legend = page.inner_text("#rates")
    assert "demo: " in legend and "9 in the hour" in legend and "3 in the hour" in legend
    page.wait_for_selector("#failure-counts:text('checked-events: 1')")
    assert "priceTotal" in page.inner_text("#validation")
    assert "lag of profile-0" in page.inner_text("#stats")
    accessible(page, "the ingestion overview")
    screenshot(page, "ingestion")

    # The sandbox picker changes every view: dev's traffic and profiles only.
    dev = message("dev-events", event(email="dev-only@shop.example"))
    assert system.http.post("/collection/dev-conn", json=dev).status_code == 200
    page.select_option("#sandbox", "dev")
    page.wait_for_selector("#chart-datasets polyline[data-series='dev-events']")
    assert page.locator("#chart-datasets polyline[data-series='demo-events']").count() == 0
    page.click("nav a:text('Profiles')")
    page.wait_for_selector("main[data-view='profiles'][data-ready]")
    page.wait_for_selector("#profile-results td:text('Email:dev-only@shop.example')")
    assert "rate0@shop.example" not in page.inner_text("#profile-results")
    assert page.locator("#profile-dataset option").all_inner_texts() == ["any dataset", "dev-events"]
    assert not page.errors, page.errors


def test_keyboard_only_find_a_profile(system: System, browser: Any) -> None:
    """Sign in, go to Profiles, search, open a profile: Tab, type and Enter only, in the
    order the page reads (header views, pickers, then the view)."""
    email = "keys@shop.example"
    assert system.post_event(email=email).status_code == 200
    system.wait_for(lambda: system.profile("Email", email).status_code == 200, 10, "profile")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{system.url}/ui/")
    page.keyboard.type(system.token)  # the token field has focus
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-view='profiles'][data-ready]")
    assert page.evaluate("document.activeElement.id") == "view"  # focus moved to the view
    page.click("h1")  # from the top of the page
    order = []
    for _ in range(12):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert order[:10] == ["Profiles", "Accounts", "Merge policies", "Union schema", "Computed attributes",
                          "Ingestion", "sandbox", "policy", "profile-search", "profile-ns"], order
    page.focus("#profile-search")
    page.keyboard.type("keys@")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#profiles-total').textContent.startsWith('1 profile')")
    for _ in range(5):
        page.keyboard.press("Tab")  # namespace, dataset, page size, Search, the profile's link
    assert page.evaluate("document.activeElement.closest('#profile-results') !== null")
    page.keyboard.press("Enter")
    page.wait_for_selector("#identities li:text('Email:keys@shop.example')")
