"""inlet's own tag in Chromium against the real gateway, NATS and workers."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from tests.browser.conftest import Pages
from tests.harness import System

TAG = __import__("pathlib").Path(__file__).parents[2] / "tag" / "dist" / "inlet.min.js"


def page_html(system: System, **options: Any) -> str:
    config = {"datastreamId": "demo", "orgId": "DEMO@AdobeOrg", "edgeUrl": system.url, "batchWindowMs": 50, **options}
    return f"""<!doctype html><html><head><title>tag test</title>
<script>
  !function(w,n){{w[n]=w[n]||function(){{var a=arguments;return new Promise(function(r,j){{(w[n].q=w[n].q||[]).push([r,j,a])}})}}}}(window,"inlet");
  inlet("configure", {json.dumps(config)});
</script>
<script async src="inlet.min.js"></script></head><body><a id="next" href="next.html">next</a></body></html>"""


@pytest.fixture
def site(pages: Pages) -> Pages:
    if not TAG.exists():
        pytest.skip("needs the built tag: `make test` builds tag/dist/inlet.min.js")
    shutil.copy(TAG, pages.root / "inlet.min.js")
    pages.add("next.html", "<!doctype html><title>next</title>")
    return pages


def ecid(page: Any) -> str:
    page.wait_for_function("() => (JSON.parse(localStorage.getItem('inlet.state') || '{}').ecid || '').length == 38")
    return str(page.evaluate("() => JSON.parse(localStorage.getItem('inlet.state')).ecid"))


def event_ids(system: System, ns: str, value: str) -> list[str]:
    response = system.events(ns, value, limit="1000")
    return [c["entity"]["_id"] for c in response.json()["children"]] if response.status_code == 200 else []


def test_a_page_view_lands_in_the_profile_keyed_by_the_ecid(system: System, browser: Any, site: Pages) -> None:
    page = browser.new_page()
    page.goto(site.add("index.html", page_html(system)))
    device = ecid(page)
    children = system.wait_for(lambda: system.events("ECID", device).json().get("children"), 10, "page view")
    (view,) = children
    assert view["entity"]["eventType"] == "web.webpagedetails.pageViews"
    assert view["entity"]["web"]["webPageDetails"]["name"] == "tag test"
    assert view["entity"]["implementationDetails"]["name"] == "https://github.com/inlet/tag"


def test_identify_joins_ecid_and_email_in_one_profile(system: System, browser: Any, site: Pages) -> None:
    page = browser.new_page()
    page.goto(site.add("index.html", page_html(system)))
    device = ecid(page)
    page.evaluate("""() => inlet('sendEvent', {xdm: {eventType: 'userAccount.login',
        identityMap: {Email: [{id: 'tag-user@shop.example', authenticatedState: 'authenticated', primary: true}]}}})""")

    def joined() -> bool:
        response = system.profile("Email", "tag-user@shop.example")
        return response.status_code == 200 and f"ECID:{device}" in next(iter(response.json().values()))["identityGraph"]

    assert system.wait_for(joined, 10, "ECID and email in one profile")


def test_events_queued_at_page_hide_go_out_with_keepalive(system: System, browser: Any, site: Pages) -> None:
    page = browser.new_page()
    page.goto(site.add("index.html", page_html(system, batchWindowMs=60_000, autoPageView=False)))
    page.evaluate("() => inlet('getIdentity')")
    device = ecid(page)
    page.evaluate("() => { inlet('sendEvent', {xdm: {eventType: 'commerce.checkouts', _id: 'leaving-now'}}); }")
    page.click("#next")  # pagehide: the queued event must not wait for its 60 s batch window
    page.wait_for_url("**/next.html")
    # Only the page-hide path (keepalive fetch to /ee/v1/collect) can deliver it this soon.
    # (Playwright does not report requests a page fires while it unloads, so we look at the
    # result rather than the request.)
    assert system.wait_for(lambda: "leaving-now" in event_ids(system, "ECID", device), 10, "beaconed event")


def test_gateway_down_then_up_delivers_queued_events_once(system: System, browser: Any, site: Pages) -> None:
    page = browser.new_page()
    url = site.add("index.html", page_html(system, autoPageView=False, maxRetries=1))
    page.goto(url)
    page.evaluate("() => inlet('getIdentity')")
    device = ecid(page)
    system.stop("gateway")
    results = page.evaluate("""async () => Promise.all([1, 2, 3].map(i =>
        inlet('sendEvent', {xdm: {eventType: 'offline.test', _id: 'offline-' + i}})))""")
    assert all(r.get("queued") for r in results), results
    assert page.evaluate("() => JSON.parse(localStorage.getItem('inlet.q')).length") == 3
    system.start("gateway")
    page.goto(url)  # the next page sends what the last one could not
    want = {"offline-1", "offline-2", "offline-3"}
    ids = system.wait_for(lambda: (lambda got: got if want <= set(got) else [])(event_ids(system, "ECID", device)), 15)
    assert sorted(i for i in ids if i.startswith("offline-")) == sorted(want)  # each exactly once
    assert page.evaluate("() => JSON.parse(localStorage.getItem('inlet.q')).length") == 0


def test_consent_pending_holds_in_sends_and_out_drops(system: System, browser: Any, site: Pages) -> None:
    page = browser.new_page()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/ee/" in r.url else None)
    page.goto(site.add("index.html", page_html(system, defaultConsent="pending")))
    page.evaluate("() => inlet('sendEvent', {xdm: {eventType: 'held', _id: 'held-1'}})")
    page.wait_for_function("() => JSON.parse(localStorage.getItem('inlet.q') || '[]').length == 2")
    assert sent == []  # nothing leaves the page while consent is pending
    page.evaluate("() => inlet('setConsent', 'in')")
    device = ecid(page)
    assert system.wait_for(lambda: "held-1" in event_ids(system, "ECID", device), 10, "held events sent")
    page.evaluate("() => inlet('setConsent', 'out')")
    before = len(sent)
    result = page.evaluate("() => inlet('sendEvent', {xdm: {eventType: 'dropped', _id: 'dropped-1'}})")
    assert result == {"dropped": True}
    page.reload()  # the choice persists
    assert page.evaluate("() => inlet('sendEvent', {xdm: {_id: 'dropped-2'}})") == {"dropped": True}
    assert not [u for u in sent[before:] if "/interact" in u or "/collect" in u]
