"""HTTP/2 load with h2load (nghttp2's native load generator): bounded in time, latencies
from its per-request log."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    requests_per_s: float
    ok: int
    failed: int
    p50_ms: float
    p99_ms: float


def available() -> bool:
    return shutil.which("h2load") is not None


def run(url: str, body: bytes, seconds: float, clients: int, streams: int, warmup: float = 1.0) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        data, log = Path(tmp) / "body.json", Path(tmp) / "requests.log"
        data.write_bytes(body)
        out = subprocess.run(
            ["h2load", f"--duration={int(seconds)}", f"--warm-up-time={int(warmup)}", "-c", str(clients), "-m", str(streams),
             "-d", str(data), "-H", "content-type: application/json", f"--log-file={log}", url],
            capture_output=True, text=True, timeout=seconds + warmup + 60,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stdout + out.stderr)
        rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out.stdout).group(1))  # type: ignore[union-attr]
        status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out.stdout)
        assert status is not None, out.stdout
        ok, failed = int(status.group(1)), sum(int(status.group(i)) for i in (2, 3, 4))
        latencies = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip())
    if not latencies:
        raise RuntimeError("h2load logged no requests")
    return Result(rate, ok, failed, latencies[len(latencies) // 2] / 1000, latencies[int(len(latencies) * 0.99)] / 1000)
