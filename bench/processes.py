"""Starting what a benchmark measures: an embedded nats-server and inlet processes, each a
real OS process started exactly as `inlet up` starts them, in a temporary data directory.

The config is written to the temporary directory and named by `INLET_CONFIG`, so an
`inlet.toml` in the working directory never changes a figure: it is the documented default
configuration (`inlet.example.toml`), log level INFO included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Self

from inlet.nats_server import NatsServer

CONFIG_TOML = 'org = "DEMO@AdobeOrg"\nlog_level = "INFO"\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def wait_drained(lag: Callable[[], int], timeout: float = 600) -> float:
    """Seconds from the consumer's first answer until `lag()` reads 0 (a worker drained it).

    `lag()` raises until the worker has created its consumer; those tries don't count.
    """
    deadline = time.monotonic() + timeout
    start: float | None = None
    while time.monotonic() < deadline:
        try:
            pending = lag()
        except Exception:  # noqa: BLE001  (any error: not there yet)
            time.sleep(0.01)
            continue
        start = start or time.perf_counter()
        if pending == 0:
            return time.perf_counter() - start
        time.sleep(0.02)
    raise RuntimeError(f"the consumer did not drain within {timeout}s")


def listeners(port: int) -> int:
    """LISTEN sockets on 127.0.0.1:`port` (/proc/net/tcp): gateways sharing it by SO_REUSEPORT."""
    local = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == local and row.split()[3] == "0A")


class Stack:
    """nats-server + chosen inlet processes in a temporary directory, removed on exit."""

    def __init__(self, extra_env: dict[str, str] | None = None, keep: bool = False, sync_interval: str = "") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="inlet-bench-"))
        # sync_interval "": NATS's default (periodic fsync every 2 min); "always": every write.
        self.nats = NatsServer(self.tmp / "nats", sync_interval=sync_interval)
        self.port = free_port()
        self.token = "bench-token-0123456789"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.extra_env = extra_env or {}
        self.keep = keep

    def __enter__(self) -> Self:
        config = self.tmp / "inlet.toml"
        config.write_text(CONFIG_TOML)
        url = self.nats.start()
        self.env = {
            **os.environ, "INLET_CONFIG": str(config), "INLET_NATS_URL": url,
            "INLET_DATA_DIR": str(self.tmp / "data"), "INLET_HTTP_PORT": str(self.port),
            "INLET_API_TOKEN": self.token, **self.extra_env,
        }
        return self

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """`python -m inlet <args>`; a gateway is waited for until `/readyz` answers."""
        proc = self._spawn("-".join(args), [sys.executable, "-m", "inlet", *args])
        if args[0] == "gateway":
            wait_http(f"http://127.0.0.1:{self.port}/readyz", proc)
        return proc

    def start_gateways(self, count: int) -> list[subprocess.Popen[bytes]]:
        """`count` gateways on the one port (SO_REUSEPORT), as `inlet up` starts them; returns
        once all of them listen."""
        self.env["INLET_HTTP_REUSE_PORT"] = "true"
        procs = [self._spawn(f"gateway-{i + 1}", [sys.executable, "-m", "inlet", "gateway"]) for i in range(count)]
        deadline = time.monotonic() + 60
        while listeners(self.port) < count:
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{count} gateways did not all listen on {self.port} (exited: {dead})")
            time.sleep(0.05)
        wait_http(f"http://127.0.0.1:{self.port}/readyz")
        return procs

    def start_baseline(self) -> int:
        """`bench.baseline` on a free port, with the gateway's environment; returns the port."""
        port = free_port()
        self.baseline = self._spawn("baseline", [sys.executable, "-m", "bench.baseline", "--port", str(port)])
        wait_http(f"http://127.0.0.1:{port}/healthz", self.baseline)
        return port

    def errors(self) -> list[str]:
        """ERROR lines and tracebacks the processes logged (there should be none), one line each:
        the message and the exception's last line."""
        found = []
        for log in self.logs:
            if not log.exists():
                continue
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"level": "ERROR"' in line:
                    record = json.loads(line)
                    exception = record.get("exception", "").strip().splitlines()
                    found.append(f"{log.stem}: {record.get('message')}" + (f" ({exception[-1]})" if exception else ""))
                elif " ERROR " in line or line.startswith("Traceback"):
                    found.append(f"{log.stem}: {line}")
        return found

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.nats.stop()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
