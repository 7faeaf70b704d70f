"""`inlet up` (what `make up` runs): the whole system from one command, stopped by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.harness import event, free_port, message, wait_for


def test_inlet_up_runs_everything_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "INLET_DATA_DIR": str(tmp_path / "var"), "INLET_HTTP_PORT": str(port),
           "INLET_LAKE_ROLL_INTERVAL": "1", "PYTHONUNBUFFERED": "1", "INLET_DEMO": "0"}
    env.pop("INLET_NATS_URL", None)
    env.pop("INLET_API_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "inlet", "up"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    try:
        wait_for(lambda: any("Ctrl-C stops everything" in line for line in output), 60, what="banner")
        text = "".join(output)
        assert f"http://127.0.0.1:{port}" in text
        token = re.search(r"API token (\S+)", text)
        assert token and token.group(1) == (tmp_path / "var" / "api-token").read_text().strip()
        assert "curl -s -X POST" in text

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            sent = client.post("/collection/demo", json=message("demo-events", event(email="up@shop.example")))
            assert sent.status_code == 200, sent.text
            params = {"schema.name": "_xdm.context.profile", "entityId": "up@shop.example", "entityIdNS": "Email"}
            auth = {"Authorization": f"Bearer {token.group(1)}"}
            wait_for(lambda: client.get("/data/core/ups/access/entities", params=params, headers=auth).status_code == 200,
                     5, what="profile")
        lake = tmp_path / "var" / "lake"
        wait_for(lambda: list(lake.rglob("*.parquet")), 15, what="a lake file")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    text = "".join(output)
    assert code == 0, text
    assert " ERROR " not in text and '"level": "ERROR"' not in text and "Traceback" not in text, text
    assert (tmp_path / "var" / "nats").is_dir() and (tmp_path / "var" / "profile" / "0").is_dir()
