"""Driving the workspace at `/ui/` in Chromium: sign in, go to a view, check accessibility.

The accessibility check is axe-core (tests/browser/package.json), injected by Playwright as an
init script: the page's own CSP (`script-src 'self'`) would refuse it as a script tag, and the
check must run against the page as served, CSP included.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.harness import System

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA: labels and names, contrast, ARIA use, and the focus-order rules
# (tabindex, focus-order-semantics, scrollable regions reachable by keyboard).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def open_workspace(browser: Any, system: System, view: str = "profiles", width: int = 1280) -> Any:
    assert AXE.exists(), "axe-core is missing: run `make setup` (npm install in tests/browser)"
    context = browser.new_context(viewport={"width": width, "height": 1000})
    context.add_init_script(path=str(AXE))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Uncaught errors and logged ones; an answered 4xx (a deleted profile) is the page's to show.
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.errors = errors
    page.goto(f"{system.url}/ui/#/{view}")
    page.fill("#token", system.token)
    page.press("#token", "Enter")
    page.wait_for_selector(f"main[data-view='{view.split('/')[0]}'][data-ready]")
    return page


def accessible(page: Any, what: str) -> None:
    """No axe violations on the page as it is now."""
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    violations = [f"{v['id']}: {v['help']} ({', '.join(n['target'][0] for n in v['nodes'][:3])})"
                  for v in result["violations"]]
    assert not violations, f"accessibility problems on {what}:\n" + "\n".join(violations)


def screenshot(page: Any, name: str) -> None:
    """Every run keeps one under test-artifacts/; `make screenshot` also refreshes docs/."""
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / f"workspace-{name}.png"), full_page=True)
    if os.environ.get("INLET_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / f"workspace-{name}.png"), full_page=True)
