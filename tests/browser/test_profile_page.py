"""The profile browser (`/ui/`) in Chromium, on demo traffic, against the real processes.

`make screenshot` reruns this test with INLET_SCREENSHOT set, which also writes the README's
picture (docs/profile-page.png); every run saves one under test-artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from inlet.demo import demo_people
from tests.harness import System, event, message

ROOT = Path(__file__).parents[2]
SEED, PEOPLE = 3, 8


def run_demo(system: System) -> str:
    out = subprocess.run([sys.executable, "-m", "inlet", "demo", "--url", system.url, "--seed", str(SEED),
                          "--people", str(PEOPLE), "--quiet"], env=system.env, cwd=system.tmp,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "inlet demo: sent" in out.stdout and "shared-device logins" in out.stdout and "account records" in out.stdout
    return out.stdout


def test_profile_page_shows_a_live_profile(system: System, browser: Any) -> None:
    run_demo(system)
    email = demo_people(SEED, PEOPLE)[0]
    system.wait_for(lambda: system.profile("Email", email).status_code == 200, 15, "demo profile")

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlparse(r.url).netloc))
    page.goto(f"{system.url}/ui/")
    page.fill("#token", system.token)
    page.click("#token-form button")
    page.wait_for_selector("main[data-view='profiles'][data-ready]")
    page.goto(f"{system.url}/ui/#/profile/Email/{email}")  # the workspace's address of a person
    page.wait_for_selector("#attributes tbody tr td.mono")
    attributes = page.inner_text("#attributes")
    assert "person.name.firstName" in attributes and "demo-profiles" in attributes
    assert page.locator("#graph circle").count() >= 2  # at least the browser's ECID and the email
    assert page.locator("#events tbody tr").count() >= 1
    assert "Acme Outfitters" in page.inner_text("#accounts")  # the demo's first shopper buys for Acme
    page.wait_for_selector("#live.on")

    fresh = f"live-{uuid.uuid4().hex[:8]}"
    sent = time.monotonic()
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    xdm = event(email=email, event_id=fresh, event_type="commerce.purchases", timestamp=now,
                commerce={"order": {"priceTotal": 42.0}})
    assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    page.wait_for_selector(f"#events td:text('{fresh}')", timeout=5000)
    assert time.monotonic() - sent < 3, "a new event should appear without reload, within a second or so"
    page.wait_for_selector("#computed td:text('purchases30d')", timeout=5000)  # defined by the demo

    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "profile-page.png"), full_page=True)
    if os.environ.get("INLET_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / "profile-page.png"), full_page=True)
    page.click("nav a:text('Ingestion')")
    page.wait_for_function("() => document.querySelector('#stats')?.textContent.includes('lake freshness')")
    assert "stored in the stream" in page.inner_text("#stats")
    assert hosts == {urlparse(system.url).netloc}, f"the page talked to other hosts: {hosts}"


def test_a_wrong_token_shows_an_error_not_data(system: System, browser: Any) -> None:
    assert system.post_event(email="secret@shop.example").status_code == 200
    page = browser.new_page()
    page.goto(f"{system.url}/ui/")
    page.fill("#token", "not-the-token")
    page.click("#token-form button")
    page.wait_for_selector("#error:not([hidden])")
    assert "not accepted" in page.inner_text("#error")
    assert page.locator("#view").is_hidden() and page.locator("#login").is_visible()
    page.goto(f"{system.url}/ui/#/profile/Email/secret@shop.example")  # the token was dropped: sign in again
    page.wait_for_selector("#login:not([hidden])")
    assert "secret@shop.example" not in page.content().replace('value="secret@shop.example"', "")
