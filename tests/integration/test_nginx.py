"""Debian's nginx with nginx/inlet.conf.template in front of the real gateway: tag, interact,
collect and streaming traffic end to end over TLS and HTTP/2."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import System, event, free_port, message, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="needs Debian's nginx (apt-get install nginx)")


@pytest.fixture
def edge(system: System, tmp_path: Path) -> Iterator[str]:
    cert, key = tmp_path / "edge.crt", tmp_path / "edge.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=edge.inlet.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tag_dir = tmp_path / "tag"
    tag_dir.mkdir()
    built = ROOT / "tag" / "dist" / "inlet.min.js"
    (tag_dir / "inlet.min.js").write_bytes(built.read_bytes() if built.exists() else b"/* inlet tag */" + b" " * 4096)
    port = free_port()
    site = subprocess.run(
        [sys.executable, str(ROOT / "nginx" / "render.py"), "--listen", str(port), "--gateway", f"127.0.0.1:{system.port}",
         "--cert", str(cert), "--key", str(key), "--tag-dir", str(tag_dir), "--edge-rate", "20", "--edge-burst", "20"],
        check=True, capture_output=True, text=True,
    ).stdout
    (tmp_path / "inlet.conf").write_text(site)
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""  # workers must read the temp dir
    (tmp_path / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    types {{ application/javascript js; }}
    include {tmp_path}/inlet.conf;
}}
""")
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", verify=False).status_code == 200, 15, what="nginx")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_traffic_flows_through_nginx_over_http2(system: System, edge: str) -> None:
    with httpx.Client(base_url=edge, http2=True, verify=False, timeout=10) as client:
        tag = client.get("/tag/0.1.0/inlet.min.js", headers={"accept-encoding": "gzip"})
        assert tag.status_code == 200 and tag.http_version == "HTTP/2"
        assert tag.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert tag.headers["content-encoding"] == "gzip"
        assert client.get("/tag/inlet.min.js").headers["cache-control"] == "public, max-age=300"

        # A client claiming another address is not believed: nginx forwards what it saw.
        interact = client.post("/ee/v1/interact?configId=demo", headers={"x-forwarded-for": "203.0.113.7"},
                               json={"events": [{"xdm": {"eventType": "web.webpagedetails.pageViews", "_id": "via-nginx"}}]})
        assert interact.status_code == 200, interact.text
        ecid = next(h for h in interact.json()["handle"] if h["type"] == "identity:result")["payload"][0]["id"]
        assert client.post("/ee/v1/collect?configId=demo",
                           json={"events": [{"xdm": {"eventType": "x", "_id": "beacon-via-nginx"}}]}).status_code == 204
        streamed = client.post("/collection/demo", json=message("demo-events", event(email="nginx@shop.example")))
        assert streamed.status_code == 200 and streamed.http_version == "HTTP/2"
        assert client.get("/metrics").status_code == 404  # internal only

        def stored() -> list:
            response = client.get("/data/core/ups/access/entities", headers=system.auth, params={
                "schema.name": "_xdm.context.experienceevent", "relatedSchema.name": "_xdm.context.profile",
                "relatedEntityId": ecid, "relatedEntityIdNS": "ECID"})
            return response.json()["children"] if response.status_code == 200 else []

        (child,) = wait_for(stored, 10, "the event through nginx")
        assert child["entity"]["environment"]["ipV4"] == "127.0.0.1"
        assert system.wait_for(lambda: system.profile("Email", "nginx@shop.example").status_code == 200, 10)


def test_nginx_rate_limits_the_edge_per_client_address(system: System, edge: str) -> None:
    with httpx.Client(base_url=edge, http2=True, verify=False, timeout=10) as client:
        statuses = [client.post("/ee/v1/interact?configId=demo", json={"events": []}).status_code for _ in range(60)]
        assert 429 in statuses and 200 in statuses
        assert client.post("/collection/demo", json=message("demo-events", event())).status_code == 200
