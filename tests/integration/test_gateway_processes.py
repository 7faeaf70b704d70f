"""Several gateway processes on one port (`[http] processes`, `reuse_port`; issue 16): both
listen, either one alone keeps the port answering, events through both are stored once; and
without `reuse_port` a second gateway on a taken port fails instead of quietly sharing it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from inlet.nats_server import NatsServer
from tests.harness import System, event, message, wait_for


def listening(port: int) -> int:
    """LISTEN sockets on 127.0.0.1:`port` (/proc/net/tcp: local address, state 0A)."""
    local = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == local and row.split()[3] == "0A")


def second_gateway(system: System, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(system.tmp / "gateway-2.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "inlet", "gateway"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=system.tmp)


def post(system: System, event_id: str) -> int:
    # A fresh connection per request, so the kernel picks a process each time.
    with httpx.Client(base_url=system.url, timeout=10) as client:
        body = message("demo-events", event(event_id=event_id))
        return client.post("/collection/demo", json=body).status_code


async def stored(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info("INGEST")).state.messages)
    finally:
        await nc.close()


@pytest.fixture
def shared(tmp_path: Path, nats_server: NatsServer) -> Iterator[System]:
    """A system whose gateways bind with SO_REUSEPORT, as `inlet up` starts them."""
    system = System(tmp_path, nats_server, extra_env={"INLET_HTTP_REUSE_PORT": "true"})
    try:
        yield system
    finally:
        system.close()


def test_two_gateways_share_the_port_and_either_alone_keeps_it_answering(shared: System) -> None:
    shared.start("gateway")
    other = second_gateway(shared, shared.env)
    try:
        wait_for(lambda: listening(shared.port) == 2 or other.poll() is not None, 30, what="a second listener")
        assert other.poll() is None, (shared.tmp / "gateway-2.log").read_text()
        assert [post(shared, f"shared-{i}") for i in range(20)] == [200] * 20
        # Each process spools into its own slot, never into another's files.
        slots = sorted(p.name for p in (shared.data_dir / "spool").iterdir())
        assert slots == [f"gateway-{shared.port}", f"gateway-{shared.port}-2"], slots
        assert shared.stop("gateway") == 0
        assert "Traceback" not in shared.log_text("gateway"), shared.log_text("gateway")
        assert listening(shared.port) == 1
        assert [post(shared, f"alone-{i}") for i in range(10)] == [200] * 10
        assert post(shared, "shared-3") == 200  # a retry through the other process: stored once
        assert asyncio.run(stored(shared.nats.url)) == 30
    finally:
        other.terminate()
        other.wait(30)


@pytest.mark.components("gateway")
def test_without_reuse_port_a_second_gateway_on_a_taken_port_fails(system: System) -> None:
    env = {k: v for k, v in system.env.items() if k != "INLET_HTTP_REUSE_PORT"}
    other = second_gateway(system, env)
    try:
        assert other.wait(30) != 0
        assert listening(system.port) == 1
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
