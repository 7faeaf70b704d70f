"""The test harness: a real nats-server on a free port and real inlet processes.

Fixture API:
- `nats_server`: a started `inlet.nats_server.NatsServer` (store in the test's tmp dir).
- `system`: a `System` with a profile worker, a lake worker and a gateway running as separate
  processes (`python -m inlet ...`), each configured through a TOML file and environment in
  the test's tmp dir. `system.url`, `.token`, `.data_dir`, `.post_event(...)`,
  `.profile(ns, id)`, `.start(name)`, `.stop(name)`, `.kill(name)`, `.wait_for(cond)`.
  A test fails if any process logged an ERROR line, unless it set `system.allow_errors`.
- Mark a test `@pytest.mark.components("gateway", "profile")` to start only those, and
  `@pytest.mark.config("<toml>")` to append to its config file (datasets, computed attributes).

No test synchronises by sleeping: `wait_for` polls a condition until a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from inlet.nats_server import NatsServer

T = TypeVar("T")

ROLL_INTERVAL = 1.0
DEFAULT_COMPONENTS = ("profile", "lake", "gateway")
ORG = "DEMO@AdobeOrg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Poll `condition` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result is not None and result is not False and (not hasattr(result, "__len__") or len(result)):
                return result
        except (httpx.HTTPError, OSError, AssertionError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: {last_error!r}")


CONFIG_TOML = """
org = "DEMO@AdobeOrg"
log_level = "INFO"

[lake]
roll_interval = {roll_interval}

[[connections]]
id = "demo"

[[connections]]
id = "limited"
rate_limit = 1

[[connections]]
id = "secured"
authenticated = true
tokens = ["conn-secret", "conn-secret-next"]  # two valid at once: a rotation
datasets = ["demo-events"]

[[datastreams]]
id = "demo"
origins = ["http://localhost:*", "https://shop.example"]

[[datasets]]
id = "demo-profiles"
class = "profile"

[[datasets]]
id = "demo-events"
class = "experienceevent"

[[datasets]]
id = "demo-accounts"
class = "account"

[[datasets]]
id = "lake-only"
class = "experienceevent"
profile = false

[[api_tokens]]
name = "analyst"
token = "analyst-token-0123456789"
scopes = ["profile:read"]
sandboxes = ["prod"]

[[api_tokens]]
name = "dev-team"
token = "dev-team-token-0123456789"
scopes = ["profile:read", "profile:write", "admin"]
sandboxes = ["dev"]

[[merge_policies]]
id = "default"
name = "Timestamp ordered"
default = true

[[merge_policies]]
id = "crm-first"
attribute_merge = "dataSetPrecedence"
order = ["demo-profiles"]
"""


class System:
    def __init__(
        self,
        tmp: Path,
        nats: NatsServer,
        roll_interval: float = ROLL_INTERVAL,
        extra_env: dict[str, str] | None = None,
        extra_config: str = "",
    ) -> None:
        self.tmp = tmp
        self.nats = nats
        self.data_dir = tmp / "data"
        self.port = free_port()
        tls = bool(extra_env and extra_env.get("INLET_TLS_CERTFILE"))
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.token = "test-token-" + uuid.uuid4().hex
        config = tmp / "inlet.toml"
        config.write_text(CONFIG_TOML.format(roll_interval=roll_interval) + extra_config)
        self.env = {
            **os.environ,
            "INLET_CONFIG": str(config),
            "INLET_DATA_DIR": str(self.data_dir),
            "INLET_NATS_URL": nats.url,
            "INLET_HTTP_PORT": str(self.port),
            "INLET_API_TOKEN": self.token,
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.allow_errors = False
        self.http = httpx.Client(base_url=self.url, timeout=10, verify=False)

    ARGS = {"gateway": ["gateway"], "profile": ["worker", "profile"], "lake": ["worker", "lake"]}

    def start(self, name: str) -> None:
        log = self.tmp / f"{name}.log"
        self.logs[name] = log
        offset = log.stat().st_size if log.exists() else 0  # a restart appends to the same log
        with open(log, "ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "inlet", *self.ARGS[name]],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp,
            )
        if name == "gateway":
            self.wait_for(lambda: self.http.get("/readyz").status_code == 200, 30, what="gateway ready")
        else:
            self.wait_for(lambda: b"consuming" in log.read_bytes()[offset:] or self._died(name), 30, what=f"{name} ready")
            assert not self._died(name), log.read_text()

    def _died(self, name: str) -> bool:
        return self.procs[name].poll() is not None

    def stop(self, name: str, timeout: float = 30) -> int:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def wait_for(self, condition: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        return wait_for(condition, timeout, what=what)

    def log_text(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def error_lines(self) -> list[str]:
        return [
            f"{name}: {line}"
            for name in self.logs
            for line in self.log_text(name).splitlines()
            if " ERROR " in line or '"level": "ERROR"' in line or "Traceback" in line
        ]

    # Convenience for tests.
    def post_event(self, connection: str = "demo", dataset: str = "demo-events", **fields: Any) -> httpx.Response:
        return self.http.post(f"/collection/{connection}", json=message(dataset, event(**fields)))

    def profile(self, ns: str, value: str, **params: str) -> httpx.Response:
        return self.http.get(
            "/data/core/ups/access/entities",
            params={"schema.name": "_xdm.context.profile", "entityId": value, "entityIdNS": ns, **params},
            headers=self.auth,
        )

    def events(self, ns: str, value: str, **params: str) -> httpx.Response:
        return self.http.get(
            "/data/core/ups/access/entities",
            params={
                "schema.name": "_xdm.context.experienceevent",
                "relatedSchema.name": "_xdm.context.profile",
                "relatedEntityId": value,
                "relatedEntityIdNS": ns,
                **params,
            },
            headers=self.auth,
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def close(self) -> None:
        self.http.close()
        for name in list(self.procs):
            try:
                self.stop(name)
            except subprocess.TimeoutExpired:
                self.kill(name)


def event(
    email: str | None = "ada@shop.example",
    ecid: str | None = None,
    event_id: str | None = None,
    event_type: str = "web.webpagedetails.pageViews",
    timestamp: str = "2026-11-23T10:00:00.000Z",
    **extra: Any,
) -> dict[str, Any]:
    identity_map: dict[str, list[dict[str, Any]]] = {}
    if email:
        identity_map["Email"] = [{"id": email, "authenticatedState": "authenticated", "primary": True}]
    if ecid:
        identity_map["ECID"] = [{"id": ecid}]
    return {
        "_id": event_id or uuid.uuid4().hex,
        "timestamp": timestamp,
        "eventType": event_type,
        "identityMap": identity_map,
        "web": {"webPageDetails": {"URL": "https://shop.example/", "name": "home"}},
        **extra,
    }


def message(dataset: str, xdm: dict[str, Any], operation: str | None = None) -> dict[str, Any]:
    header: dict[str, Any] = {
        "schemaRef": {
            "id": "https://ns.adobe.com/demo/schemas/1",
            "contentType": "application/vnd.adobe.xed-full+json;version=1",
        },
        "imsOrgId": ORG,
        "datasetId": dataset,
        "source": {"name": "tests"},
    }
    if operation:
        header["operations"] = {"data": operation}
    return {"header": header, "body": {"xdmMeta": {"schemaRef": header["schemaRef"]}, "xdmEntity": xdm}}


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def system(request: pytest.FixtureRequest, tmp_path: Path, nats_server: NatsServer) -> Iterator[System]:
    marker = request.node.get_closest_marker("components")
    names = marker.args if marker else DEFAULT_COMPONENTS
    extra = request.node.get_closest_marker("config")
    sys_ = System(tmp_path, nats_server, extra_config=extra.args[0] if extra else "")
    try:
        for name in names:
            sys_.start(name)
        yield sys_
    finally:
        sys_.close()
    errors = sys_.error_lines()
    if errors and not sys_.allow_errors:
        pytest.fail("a process logged errors:\n" + "\n".join(errors[:20]))
