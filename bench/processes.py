"""Starting what a benchmark measures: an embedded nats-server and inlet processes, each a
real OS process, exactly as `inlet up` starts them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from inlet.nats_server import NatsServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Stack:
    """nats-server + chosen inlet processes in a temporary data directory."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="inlet-bench-"))
        self.nats = NatsServer(self.tmp / "nats")
        self.port = free_port()
        self.token = "bench-token-0123456789"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.extra_env = extra_env or {}

    def __enter__(self) -> Stack:
        url = self.nats.start()
        self.env = {
            **os.environ, "INLET_NATS_URL": url, "INLET_DATA_DIR": str(self.tmp / "data"),
            "INLET_HTTP_PORT": str(self.port), "INLET_API_TOKEN": self.token, "INLET_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        return self

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{'-'.join(args)}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "inlet", *args], env=self.env, stdout=log, stderr=log)
        self.procs.append(proc)
        if args[0] == "gateway":
            wait_http(f"http://127.0.0.1:{self.port}/readyz")
        return proc

    def start_baseline(self) -> int:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "bench.baseline", "--port", str(port)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            time.sleep(0.05)
        raise RuntimeError("the baseline server did not start")

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.nats.stop()
