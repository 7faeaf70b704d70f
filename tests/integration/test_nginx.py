"""Debian's nginx with nginx/inlet.conf.template in front of the real gateway: tag, interact,
collect and streaming traffic end to end over TLS and HTTP/2.

The clients connect from 127.0.0.2 and 127.0.0.3 while nginx reaches the gateway from
127.0.0.1, so the address stored with an event shows whose address the gateway believed. The
upstream pool lists a dead gateway beside the live one: every request must still succeed.
"""

from __future__ import annotations

import getpass
import gzip
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness import System, event, free_port, message, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "nginx"))
import render  # nginx/render.py is a script, not a package

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="needs Debian's nginx (apt-get install nginx)")
VERSION = render.tag_version()
CLIENT, OTHER_CLIENT = "127.0.0.2", "127.0.0.3"


@dataclass
class Edge:
    url: str
    tag: bytes
    brotli: bool
    error_log: Path

    def client(self, address: str = CLIENT) -> httpx.Client:
        transport = httpx.HTTPTransport(http2=True, verify=False, local_address=address)
        return httpx.Client(base_url=self.url, transport=transport, timeout=10)


def built_tag() -> bytes:
    """tag/dist/inlet.min.js; built first if the tag's sources and packages are here."""
    built = ROOT / "tag" / "dist" / "inlet.min.js"
    tag = ROOT / "tag"
    if not built.exists() and (tag / "package.json").exists() and (tag / "node_modules").exists() and shutil.which("npm"):
        subprocess.run(["npm", "run", "build", "--silent"], cwd=tag, check=False, capture_output=True, timeout=120)
    return built.read_bytes() if built.exists() else b"/* inlet tag placeholder */" + b" " * 4096


@pytest.fixture
def edge(system: System, tmp_path: Path) -> Iterator[Edge]:
    cert, key = tmp_path / "edge.crt", tmp_path / "edge.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=edge.inlet.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tag = built_tag()
    (tmp_path / "tag" / VERSION).mkdir(parents=True)
    (tmp_path / "tag" / VERSION / "inlet.min.js").write_bytes(tag)
    port, dead = free_port(), free_port()  # nothing listens on `dead`
    site = subprocess.run(
        [sys.executable, str(ROOT / "nginx" / "render.py"), "--listen", f"127.0.0.1:{port}",
         "--gateway", f"127.0.0.1:{dead}", "--gateway", f"127.0.0.1:{system.port}",
         "--cert", str(cert), "--key", str(key), "--tag-root", str(tmp_path / "tag"),
         "--edge-rate", "20", "--edge-burst", "20"],
        check=True, capture_output=True, text=True,
    ).stdout
    (tmp_path / "inlet.conf").write_text(site)
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""  # workers must read the temp dir
    error_log = tmp_path / "nginx-error.log"
    # As Debian's own nginx.conf: the modules-enabled include is how ngx_brotli would be loaded.
    (tmp_path / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {error_log} warn;
include /etc/nginx/modules-enabled/*.conf;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {tmp_path}/inlet.conf;
}}
""")
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    served = Edge(f"https://127.0.0.1:{port}", tag, "inlet-brotli.conf;" in site, error_log)
    try:
        with served.client() as client:
            wait_for(lambda: proc.poll() is None and client.get("/healthz").status_code == 200, 15, what="nginx")
        yield served
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
        if proc.returncode not in (0, -15):
            print(output.decode(errors="replace"))


def test_the_tag_is_served_with_long_cache_headers_and_compression(edge: Edge) -> None:
    with edge.client() as client:
        tag = client.get(f"/tag/{VERSION}/inlet.min.js", headers={"accept-encoding": "gzip"})
        assert tag.status_code == 200 and tag.http_version == "HTTP/2"
        assert tag.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert tag.headers["content-type"].startswith("application/javascript")
        assert tag.headers["content-encoding"] == "gzip" and "accept-encoding" in tag.headers["vary"].lower()
        assert tag.content == edge.tag  # httpx inflated it
        raw = client.get(f"/tag/{VERSION}/inlet.min.js", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in raw.headers and raw.content == edge.tag
        if edge.brotli:
            assert client.get(f"/tag/{VERSION}/inlet.min.js", headers={"accept-encoding": "br"}).headers["content-encoding"] == "br"

        alias = client.get("/tag/inlet.min.js")
        assert alias.status_code == 200 and alias.content == edge.tag
        assert alias.headers["cache-control"] == "public, max-age=300"
        # A versioned URL serves only that version, never whatever is current.
        assert client.get("/tag/0.0.0-missing/inlet.min.js").status_code == 404


def test_traffic_flows_through_nginx_over_http2(system: System, edge: Edge) -> None:
    with edge.client() as client:
        # A client claiming another address is not believed: nginx forwards what it saw.
        interact = client.post("/ee/v1/interact?configId=demo", headers={"x-forwarded-for": "203.0.113.7"},
                               json={"events": [{"xdm": {"eventType": "web.webpagedetails.pageViews", "_id": "via-nginx"}}]})
        assert interact.status_code == 200 and interact.http_version == "HTTP/2", interact.text
        ecid = next(h for h in interact.json()["handle"] if h["type"] == "identity:result")["payload"][0]["id"]
        beacon = client.post("/ee/v1/collect?configId=demo", content=json.dumps(
            {"events": [{"xdm": {"eventType": "x", "_id": "beacon-via-nginx", "identityMap": {"ECID": [{"id": ecid}]}}}]}),
            headers={"content-type": "text/plain"})
        assert beacon.status_code == 204
        streamed = client.post("/collection/demo", json=message("demo-events", event(email="nginx@shop.example")),
                               headers={"x-request-id": "trace-through-nginx"})
        assert streamed.status_code == 200 and streamed.headers["x-request-id"] == "trace-through-nginx"
        batch = gzip.compress(json.dumps({"messages": [message("demo-events", event(email="batch@shop.example"))]}).encode())
        batched = client.post("/collection/batch/demo", content=batch,
                              headers={"content-type": "application/json", "content-encoding": "gzip"})
        assert batched.status_code == 207 and "xactionId" in batched.json()["responses"][0], batched.text
        assert client.get("/metrics").status_code == 404  # internal only
        assert client.get("/ui/").status_code == 404

        def stored() -> list:
            response = client.get("/data/core/ups/access/entities", headers=system.auth, params={
                "schema.name": "_xdm.context.experienceevent", "relatedSchema.name": "_xdm.context.profile",
                "relatedEntityId": ecid, "relatedEntityIdNS": "ECID"})
            children = response.json()["children"] if response.status_code == 200 else []
            return children if len(children) == 2 else []

        children = wait_for(stored, 10, what="both Edge events through nginx")
        # nginx's own peer address is 127.0.0.1: the gateway believed nginx's header, not the client's.
        assert {c["entity"]["environment"]["ipV4"] for c in children} == {CLIENT}
        for email in ("nginx@shop.example", "batch@shop.example"):
            assert system.wait_for(lambda email=email: system.profile("Email", email).status_code == 200, 10)


def test_a_dead_gateway_in_the_pool_costs_no_request(edge: Edge) -> None:
    """Connection refused means no gateway saw the request: nginx may retry even a POST."""
    with edge.client() as client:
        for index in range(10):
            assert client.post("/collection/demo", json=message("demo-events", event(event_id=f"pool-{index}"))).status_code == 200
            assert client.get("/readyz").status_code == 200
    assert "connect() failed" in edge.error_log.read_text()


def test_nginx_rate_limits_the_edge_per_client_address(edge: Edge) -> None:
    with edge.client(CLIENT) as client, edge.client(OTHER_CLIENT) as other:
        answers = [client.post("/ee/v1/interact?configId=demo&requestId=rate-1", json={"events": []}) for _ in range(60)]
        statuses = {a.status_code for a in answers}
        assert statuses == {200, 429}
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.headers["retry-after"] == "1" and limited.headers["content-type"] == "application/json"
        body = limited.json()
        assert body["requestId"] == "rate-1" and body["errors"][0]["code"] == "rate_limited"
        # Another address has its own budget; other paths have none at nginx.
        assert other.post("/ee/v1/interact?configId=demo", json={"events": []}).status_code == 200
        assert client.post("/collection/demo", json=message("demo-events", event())).status_code == 200


def test_bodies_past_the_proxy_limit_get_a_json_413(edge: Edge) -> None:
    """nginx refuses on the declared length alone, before any body byte (so none is sent)."""
    host, port = edge.url.removeprefix("https://").split(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=10, source_address=(CLIENT, 0)) as raw, \
            context.wrap_socket(raw, server_hostname="edge.inlet.test") as conn:
        conn.sendall(f"POST /collection/batch/demo HTTP/1.1\r\nHost: edge.inlet.test\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {17 * 1024 * 1024}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"application/json" in head, head
    assert json.loads(body)["code"] == "request_too_large"


def test_the_renderer_refuses_unfilled_placeholders_and_includes_brotli_on_request(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TAG_ROOT"):
        render.render({"LISTEN": "443"})
    args = [sys.executable, str(ROOT / "nginx" / "render.py"), "--cert", "c", "--key", "k", "--snippets", "/s"]
    on = subprocess.run([*args, "--brotli", "on"], check=True, capture_output=True, text=True).stdout
    off = subprocess.run([*args, "--brotli", "off"], check=True, capture_output=True, text=True).stdout
    assert "include /s/inlet-brotli.conf;" in on and "inlet-brotli.conf;" not in off
    assert f"/srv/inlet/tag/{VERSION}/inlet.min.js" in off and "server 127.0.0.1:8080 max_fails=3" in off
