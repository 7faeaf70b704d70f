"""`inlet up` (what `make up` runs): the whole system from one command, stopped by Ctrl-C, kept
running when a child crashes, and findable from any other shell."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from tests.harness import event, free_port, message, wait_for

README = Path(__file__).parents[2] / "README.md"
EVENT_SCHEMA = "https://ns.adobe.com/demo/schemas/event"  # demo-events' schema in the default config


def _message(**fields: Any) -> dict[str, Any]:
    """A streaming message for the default config's demo-events (the README's schemaRef)."""
    body = message("demo-events", event(**fields))
    body["header"]["schemaRef"]["id"] = body["body"]["xdmMeta"]["schemaRef"]["id"] = EVENT_SCHEMA
    return body


@dataclass
class Up:
    proc: subprocess.Popen[str]
    port: int
    data: Path
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.output)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def children(self) -> dict[str, int]:
        """The supervisor's live children by role, from /proc (what `ps --ppid` shows); of
        several gateways, the lowest pid."""
        return {role: pids[0] for role, pids in self.roles().items()}

    def roles(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for pid in (Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [a.decode() for a in argv if a]
            role = ("nats-server" if words and words[0].endswith("nats-server")
                    else " ".join(words[words.index("inlet") + 1:]) if "inlet" in words else "")
            if role and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
                found.setdefault(role, []).append(int(pid))
        return {role: sorted(pids) for role, pids in found.items()}


def _start(tmp_path: Path, **extra: str) -> Up:
    port = free_port()
    data = tmp_path / "var"
    env = {**os.environ, "INLET_DATA_DIR": str(data), "INLET_HTTP_PORT": str(port),
           "INLET_LAKE_ROLL_INTERVAL": "1", "PYTHONUNBUFFERED": "1", "INLET_DEMO": "0",
           "XDG_STATE_HOME": str(tmp_path / "state"), **extra}
    for name in ("INLET_NATS_URL", "INLET_API_TOKEN", "INLET_CONFIG"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "inlet", "up"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    up = Up(proc, port, data, env)
    threading.Thread(target=lambda: up.output.extend(iter(proc.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    wait_for(lambda: "Ctrl-C stops everything" in up.text or proc.poll() is not None, 60, what="banner")
    assert proc.poll() is None, up.text
    return up


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    started = _start(tmp_path)
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.send_signal(signal.SIGINT)
        started.proc.wait(90)


def _elsewhere(up: Up, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Another shell: no INLET_DATA_DIR, no INLET_NATS_URL, another working directory."""
    env = {k: v for k, v in up.env.items() if k not in ("INLET_DATA_DIR", "INLET_NATS_URL", "INLET_HTTP_PORT")}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    return env, cwd


def test_inlet_up_runs_everything_and_stops_cleanly_on_ctrl_c(up: Up, tmp_path: Path) -> None:
    text = up.text
    assert up.url in text
    token = re.search(r"API token (\S+)", text)
    assert token and token.group(1) == (up.data / "api-token").read_text().strip()
    assert "curl -s -X POST" in text

    with httpx.Client(base_url=up.url, timeout=10) as client:
        sent = client.post("/collection/demo", json=_message(email="up@shop.example"))
        assert sent.status_code == 200, sent.text
        params = {"schema.name": "_xdm.context.profile", "entityId": "up@shop.example", "entityIdNS": "Email"}
        auth = {"Authorization": f"Bearer {token.group(1)}"}
        wait_for(lambda: client.get("/data/core/ups/access/entities", params=params, headers=auth).status_code == 200,
                 5, what="profile")
    lake = up.data / "lake"
    wait_for(lambda: list(lake.rglob("*.parquet")), 15, what="a lake file")

    up.proc.send_signal(signal.SIGINT)
    code = up.proc.wait(60)
    text = up.text
    assert code == 0, text
    assert " ERROR " not in text and '"level": "ERROR"' not in text and "Traceback" not in text, text
    assert (up.data / "nats").is_dir() and (up.data / "profile" / "0").is_dir()
    assert not (up.data / "running.json").exists(), "a clean stop removes the record"
    assert not (tmp_path / "state" / "inlet" / "running.json").exists()


def test_other_commands_find_the_running_system_from_any_shell(up: Up, tmp_path: Path) -> None:
    """Issue 12.11: the embedded NATS URL and the data directory are recorded, so `inlet status`
    and `inlet lake` work without INLET_NATS_URL / INLET_DATA_DIR in another directory."""
    record = json.loads((up.data / "running.json").read_text())
    assert record["pid"] == up.proc.pid and record["nats_url"].startswith("nats://127.0.0.1:")
    assert record["gateway_url"] == up.url and record["data_dir"] == str(up.data)
    pointer = json.loads((tmp_path / "state" / "inlet" / "running.json").read_text())
    assert pointer["data_dir"] == str(up.data)

    with httpx.Client(base_url=up.url, timeout=10) as client:
        assert client.post("/collection/demo", json=_message(event_id="found-1")).status_code == 200
    wait_for(lambda: list((up.data / "lake").rglob("*.parquet")), 15, what="a lake file")

    env, cwd = _elsewhere(up, tmp_path)
    inlet = [sys.executable, "-m", "inlet"]
    status = subprocess.run([*inlet, "status", "--json"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["stream"]["messages"] >= 1
    lake = subprocess.run([*inlet, "lake", "query", "--format", "json", 'SELECT "_id" FROM "demo-events"'],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert lake.returncode == 0, lake.stderr
    assert "found-1" in lake.stdout

    # The README's lines, as written, after `make up` (with this interpreter for .venv/bin/inlet).
    block = '    eval "$(.venv/bin/inlet env)"' + README.read_text().split('    eval "$(.venv/bin/inlet env)"', 1)[1]
    block = block.split("\n\n`inlet up` keeps", 1)[0]
    script = "\n".join(line.removeprefix("    ") for line in block.splitlines())
    script = script.replace(".venv/bin/inlet", " ".join(map(shlex.quote, inlet)))

    def readme_works() -> str:
        out = subprocess.run(["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
        return out.stdout if '"xactionId"' in out.stdout and '"mergePolicy"' in out.stdout else ""

    wait_for(readme_works, 20, interval=0.5, what="the README's curl lines answering")

    # A second `inlet up` on the same data directory would fight over the stores: refused.
    second = subprocess.run([*inlet, "up"], env={**up.env, "INLET_HTTP_PORT": str(free_port())}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and "already runs" in second.stderr


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_crashed_children_are_restarted_and_nothing_is_lost_or_doubled(up: Up) -> None:
    """Issue 12.10: kill -9 a worker and the embedded nats-server under load; every request is
    answered 2xx (stored or spooled), the killed processes come back, readiness recovers, and
    every accepted event is in the profile and the lake exactly once (counted by a computed
    attribute too, so a double apply that overwrites itself on the timeline still shows)."""
    token = (up.data / "api-token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    people = [f"crash{i}@shop.example" for i in range(6)]
    total = 3000
    with httpx.Client(base_url=up.url, timeout=20, headers=auth) as admin:
        created = admin.post("/data/core/ca/attributes", json={
            "name": "views", "function": "COUNT", "duration": {"count": 1, "unit": "DAYS"},
            "filter": {"eventType": ["web.webpagedetails.pageViews"]}})
        assert created.is_success, created.text
    before = up.children()
    before_gateways = up.roles().get("gateway", [])
    assert {"nats-server", "worker profile", "worker lake", "gateway"} <= set(before), before

    accepted: list[str] = []
    statuses: list[int] = []

    def send(part: int) -> None:
        with httpx.Client(base_url=up.url, timeout=30) as client:
            for i in range(part, total, 2):
                event_id = f"crash-{i}"
                body = _message(email=people[i % len(people)], event_id=event_id, timestamp=_now())
                response = client.post("/collection/demo", json=body)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    accepted.append(event_id)

    senders = [threading.Thread(target=send, args=(part,)) for part in (0, 1)]
    for sender in senders:
        sender.start()
    wait_for(lambda: len(statuses) >= 400, 60, what="traffic flowing")
    os.kill(before["worker profile"], signal.SIGKILL)
    wait_for(lambda: up.children().get("worker profile") not in (None, before["worker profile"]), 30,
             what="the profile worker restarted")
    wait_for(lambda: len(statuses) >= 1200, 60, what="traffic after the worker crash")
    os.kill(before["nats-server"], signal.SIGKILL)
    probe = httpx.Client(base_url=up.url, timeout=5)
    wait_for(lambda: len(statuses) >= 1500, 60, what="traffic while NATS is down")
    wait_for(lambda: up.children().get("nats-server") not in (None, before["nats-server"]), 30,
             what="nats-server restarted")
    wait_for(lambda: probe.get("/readyz").status_code == 200, 30, what="readiness recovered")
    os.kill(up.children()["worker lake"], signal.SIGKILL)
    for sender in senders:
        sender.join(180)
    assert len(statuses) == total and set(statuses) == {200}, sorted(set(statuses))
    assert "restarting it" in up.text and "nats-server restarted" in up.text, up.text[-3000:]
    assert "Replayed" in up.text, "the NATS outage should have been bridged by the gateway's spool"
    after = up.children()
    assert set(after) >= {"nats-server", "worker profile", "worker lake", "gateway"}
    gateways = up.roles()["gateway"]
    assert gateways == before_gateways, "the gateways kept serving throughout"
    assert probe.get("/readyz").status_code == 200

    with httpx.Client(base_url=up.url, timeout=20, headers=auth) as client:
        def profiles_complete() -> dict[str, tuple[list[str], int]] | None:
            found = {}
            for person in people:
                response = client.get("/data/core/ups/access/entities", params={
                    "schema.name": "_xdm.context.experienceevent", "relatedSchema.name": "_xdm.context.profile",
                    "relatedEntityId": person, "relatedEntityIdNS": "Email", "limit": "1000"})
                ids = [c["entityId"] for c in response.json()["children"]] if response.status_code == 200 else []
                profile = client.get("/data/core/ups/access/entities", params={
                    "schema.name": "_xdm.context.profile", "entityId": person, "entityIdNS": "Email"})
                views = (next(iter(profile.json().values()))["entity"].get("computedAttributes", {})
                         .get("views", {}).get("value", 0)) if profile.status_code == 200 else 0
                found[person] = (ids, int(views))
            stored = sum(len(ids) for ids, _ in found.values())
            return found if stored >= len(accepted) else None

        found = wait_for(profiles_complete, 120, interval=0.5, what="every accepted event in the profile")
    assert found is not None
    timeline = [i for ids, _ in found.values() for i in ids]
    assert sorted(timeline) == sorted(accepted) and len(timeline) == len(set(timeline)) == total
    for person, (ids, views) in found.items():
        assert views == len(ids), f"{person}: counted {views} views for {len(ids)} events (a double apply)"

    def lake_ids() -> list[str]:
        files = list((up.data / "lake").rglob("*.parquet"))
        if not files:
            return []
        frame = pl.concat([pl.read_parquet(f, columns=["_id"]) for f in files])
        ids: list[str] = frame.filter(pl.col("_id").str.starts_with("crash-"))["_id"].to_list()
        return ids if len(set(ids)) == len(accepted) else []

    ids = wait_for(lake_ids, 120, interval=0.5, what="every accepted event in the lake")
    assert sorted(ids) == sorted(accepted), "the lake holds an event twice"

    # The gateway too comes back, on its port.
    os.kill(gateways[0], signal.SIGKILL)
    wait_for(lambda: len(up.roles().get("gateway", [])) == len(gateways) and gateways[0] not in up.roles()["gateway"],
             30, what="gateway restarted")
    wait_for(lambda: probe.get("/readyz").status_code == 200, 30, what="the restarted gateway ready")
    assert probe.post("/collection/demo", json=_message(event_id="after-gateway-crash")).status_code == 200
    probe.close()
    errors = [line for line in up.text.splitlines() if '"level": "ERROR"' in line or " ERROR " in line]
    assert not errors, "a single crash is a WARNING (nothing was lost):\n" + "\n".join(errors[:10])
