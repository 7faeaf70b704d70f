"""Single-message ceiling with nginx in front, against Hypercorn serving HTTP/2 itself.

`python -m bench nginx [--seconds 5 --repeat 3]`: one nats-server and, on it, two gateways:
one serving HTTPS itself (HTTP/2 by ALPN, `[http] certfile`), and one plain, behind nginx
(`nginx/inlet.conf.template` rendered by `nginx/render.py`: HTTP/2 over TLS from clients,
HTTP/1.1 keep-alive to the gateway, one nginx worker). h2load posts one event per request
(repeated body, so after the first the gateway's publishes are JetStream duplicates: the
request path minus the store's write), 4 connections x 8 streams, to each in turn (order
alternating per repeat). Both paths pay TLS; the ratio nginx / Hypercorn is the figure. CPU
is reported per process: h2load, nginx, the gateway, nats-server.
"""

from __future__ import annotations

import getpass
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import bodies, h2load
from bench.measure import Result, Window, cpu
from bench.processes import Stack, free_port

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def available() -> bool:
    return Path(NGINX).exists() and h2load.available() and shutil.which("openssl") is not None


@dataclass
class Outcome:
    results: dict[str, list[Result]] = field(default_factory=lambda: {"hypercorn h2 (TLS)": [], "nginx h2 (TLS) → h1.1": []})
    errors: list[str] = field(default_factory=list)


def _nginx(tmp: Path, port: int, upstream: int, cert: Path, key: Path) -> subprocess.Popen[bytes]:
    site = subprocess.run(
        [sys.executable, str(ROOT / "nginx" / "render.py"), "--listen", f"127.0.0.1:{port}",
         "--gateway", f"127.0.0.1:{upstream}", "--cert", str(cert), "--key", str(key),
         "--tag-root", str(tmp / "tag"), "--brotli", "off"],
        check=True, capture_output=True, text=True).stdout
    (tmp / "inlet.conf").write_text(site)
    temp = tmp / "nginx-temp"
    temp.mkdir(exist_ok=True)
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {tmp}/inlet.conf;
}}
""")
    return subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _nginx_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, children)]


def run(seconds: float, repeat: int, connections: int = 4, streams: int = 8) -> Outcome:
    outcome = Outcome()
    with Stack() as stack:
        cert, key = stack.tmp / "edge.crt", stack.tmp / "edge.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=bench.inlet.test", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        plain = stack.start("gateway")
        tls_port = free_port()
        stack.env.update(INLET_HTTP_PORT=str(tls_port), INLET_TLS_CERTFILE=str(cert), INLET_TLS_KEYFILE=str(key))
        direct = stack._spawn("gateway-tls", [sys.executable, "-m", "inlet", "gateway"])
        nginx_port = free_port()
        nginx = _nginx(stack.tmp, nginx_port, stack.port, cert, key)
        try:
            for port in (tls_port, nginx_port):
                _wait_https(f"https://127.0.0.1:{port}/readyz")
            assert stack.nats.process is not None
            nats_cpu = cpu(stack.nats.process.pid)
            nginx_pids = _nginx_pids(nginx.pid)
            targets = {
                "hypercorn h2 (TLS)": (f"https://127.0.0.1:{tls_port}", {"gateway": cpu(direct.pid), "nats": nats_cpu}),
                "nginx h2 (TLS) → h1.1": (f"https://127.0.0.1:{nginx_port}", {
                    "nginx": lambda: sum(cpu(p)() for p in nginx_pids), "gateway": cpu(plain.pid), "nats": nats_cpu}),
            }
            body = bodies.fixed(1)
            for i in range(repeat):
                for name in list(targets) if i % 2 == 0 else list(reversed(targets)):
                    base, probes = targets[name]
                    window = Window(1.0, seconds)
                    lost, rates = h2load.run(base + bodies.path(1), body, 1, connections, streams, window, probes)
                    result = Result.of(window, lost, rates)
                    outcome.results[name].append(result)
                    print(f"  run {i + 1}/{repeat} {name}: {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                          f"p99 {result.p99_ms:.1f} ms, failed {result.failed}", file=sys.stderr, flush=True)
        finally:
            nginx.terminate()
            nginx.wait(10)
        outcome.errors = stack.errors()
    return outcome


def _wait_https(url: str, timeout: float = 30) -> None:
    """Until `url` answers over TLS (the bench's self-signed certificate is not verified)."""
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1, context=insecure):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def report(outcome: Outcome) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    names = ["client", "nginx", "gateway", "nats"]
    lines = [f"| path | req/s | p50 ms | p99 ms | failed | CPU % {'/'.join(names)} |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, runs in outcome.results.items():
        cpu_text = "/".join(f"{med([r.cpu.get(n, 0.0) for r in runs]):.0f}" for n in names)
        lines.append(f"| {name} | {med([r.requests_per_s for r in runs]):,.0f} | {med([r.p50_ms for r in runs]):.1f} | "
                     f"{med([r.p99_ms for r in runs]):.1f} | {sum(r.failed for r in runs)} | {cpu_text} |")
    direct, proxied = outcome.results.values()
    d, p = [r.requests_per_s for r in direct], [r.requests_per_s for r in proxied]
    raw = ", ".join(f"{b:,.0f}/{a:,.0f}" for a, b in zip(d, p))
    lines += ["", f"ratio nginx / Hypercorn, req/s (median): **{med(p) / med(d):.2f}** (runs, nginx/hypercorn: {raw})"]
    lines.append(f"processes logged {len(outcome.errors)} ERROR lines" if outcome.errors else "no process logged an ERROR line")
    return "\n".join(lines)
