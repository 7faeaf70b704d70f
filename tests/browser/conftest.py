"""Browser fixtures: Debian's Chromium driven by Playwright, a TLS gateway, a page server.

Chromium resolves `edge.inlet.test` to the gateway's TLS port (`--host-resolver-rules`) and
accepts its throwaway certificate, so Adobe's Web SDK, which hard-codes https and a bare
`edgeDomain`, talks to our gateway exactly as it would talk to Adobe's edge.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import DEFAULT_COMPONENTS, System, free_port, nats_server, system  # noqa: F401

CHROMIUM = "/usr/bin/chromium"
EDGE_HOST = "edge.inlet.test"
HERE = Path(__file__).parent

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason:
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


def _missing() -> str:
    if not Path(CHROMIUM).exists():
        return f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "needs the playwright package (pip install -e '.[dev]')"
    if not shutil.which("openssl"):
        return "needs openssl to make a throwaway certificate"
    return ""


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "edge.crt", tmp_path / "edge.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={EDGE_HOST}",
         "-addext", f"subjectAltName=DNS:{EDGE_HOST}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_system(request: pytest.FixtureRequest, tmp_path: Path, nats_server: Any, certificate: tuple[Path, Path]) -> Iterator[System]:  # noqa: F811
    cert, key = certificate
    marker = request.node.get_closest_marker("components")
    served = System(tmp_path, nats_server, extra_env={"INLET_TLS_CERTFILE": str(cert), "INLET_TLS_KEYFILE": str(key)})
    try:
        for name in marker.args if marker else DEFAULT_COMPONENTS:
            served.start(name)
        yield served
    finally:
        served.close()
    errors = served.error_lines()
    if errors and not served.allow_errors:
        pytest.fail("a process logged errors:\n" + "\n".join(errors[:20]))


class Pages:
    """Static files on http://localhost:<port>/ (an origin the demo datastream allows)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://localhost:{self.port}"
        self.add("favicon.ico", b"")  # or Chromium logs a 404 on every page

    def add(self, name: str, content: str | bytes) -> str:
        path = self.root / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[Pages]:
    root = tmp_path / "site"
    root.mkdir()
    served = Pages(root)
    yield served
    served.close()


BASE_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _launch(args: list[str]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS + args)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def chromium(tls_system: System) -> Iterator[Any]:
    """Chromium that reaches the TLS gateway as https://edge.inlet.test."""
    yield from _launch([f"--host-resolver-rules=MAP {EDGE_HOST}:443 127.0.0.1:{tls_system.port}",
                        "--ignore-certificate-errors"])


@pytest.fixture
def browser(system: System) -> Iterator[Any]:  # noqa: F811  (the harness fixture)
    """Chromium for pages that call the plain-HTTP gateway directly."""
    yield from _launch([])
