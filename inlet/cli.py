"""The `inlet` command: run the whole system, or any one process of it.

    inlet up                  embedded nats-server + gateway + profile worker + lake worker
    inlet up --nats-cluster 3 --shards 4 --gateways 2   the clustered layout (docs/scaling.md)
    inlet shards reshard --to 4   change the number of profile shards (shards stopped)
    inlet gateway             one gateway against INLET_NATS_URL
    inlet worker profile      one profile worker (--shard N)
    inlet worker lake         one lake worker
    inlet lake ls|query|compact
    inlet dead-letters ls|replay   what workers could not apply; redrive it after a fix
    inlet status              stream, consumer lag, dead letters, spool depth, retention warnings
    inlet env                 `eval "$(inlet env)"`: INLET_URL and TOKEN of the running system
    inlet demo [--seed N]     realistic traffic through the gateway (also started by `inlet up`)

`inlet up` is a supervisor: every component is its own OS process, started exactly as it would
be started alone on another machine, so one box and a cluster run the same code; a child that
crashes is restarted with backoff (`inlet.supervise`), and where everything runs is recorded
for the other commands (`inlet.running`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from typing import Any

from inlet import running
from inlet.config import Config, ConfigError, api_token, load
from inlet.nats_server import NatsServer
from inlet.supervise import Child, NatsChild, ProcessChild, Supervisor, gateway_ready
from inlet.telemetry import configure_logging, process_name

log = logging.getLogger("inlet")


def _process_kind(args: argparse.Namespace) -> str:
    if args.command == "worker":
        return f"{args.kind}-{args.shard}" if args.kind == "profile" else args.kind
    return str(args.command)


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inlet", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="run the whole system on this machine")
    # The clustered layout (inlet/cluster.py, docs/scaling.md): NATS cluster, shards, gateways.
    up_parser.add_argument("--nats-cluster", type=int, default=0, help="nats-server nodes (clustered layout)")
    up_parser.add_argument("--shards", type=int, default=0, help="profile shards (clustered layout)")
    up_parser.add_argument("--gateways", type=int, default=0, help="gateways on consecutive ports (clustered layout)")
    sub.add_parser("gateway", help="run one gateway")
    status = sub.add_parser("status", help="stream, consumer lag, dead letters, spool depth")
    status.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("env", help="print shell lines setting INLET_URL and TOKEN for the running system")
    worker = sub.add_parser("worker", help="run one worker")
    worker.add_argument("kind", choices=["profile", "lake"])
    worker.add_argument("--shard", type=int, default=0)
    demo = sub.add_parser("demo", help="send realistic demo traffic through a gateway", add_help=False)
    demo.add_argument("args", nargs=argparse.REMAINDER)
    lake = sub.add_parser("lake", help="inspect and maintain the Parquet lake")
    lake.add_argument("args", nargs=argparse.REMAINDER)
    dead = sub.add_parser("dead-letters", help="list dead letters, or redrive them after a fix", add_help=False)
    dead.add_argument("args", nargs=argparse.REMAINDER)
    shards_parser = sub.add_parser("shards", help="reshard the profile tier (docs/scaling.md)", add_help=False)
    shards_parser.add_argument("args", nargs=argparse.REMAINDER)
    failed = sub.add_parser("schema-failures", help="messages schema validation kept out, with their reasons",
                            add_help=False)
    failed.add_argument("args", nargs=argparse.REMAINDER)
    batch = sub.add_parser("batch", help="load a file into a dataset through the Batch Ingestion API", add_help=False)
    batch.add_argument("args", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else argv
    # `demo` and `lake` parse their own options (argparse's REMAINDER drops leading --options).
    own = argv[1:] if argv[:1] in (["demo"], ["lake"], ["dead-letters"], ["schema-failures"], ["batch"], ["shards"]) else []
    args = parser.parse_args(argv[:1] if own or argv[:1] in (["demo"], ["lake"], ["dead-letters"], ["schema-failures"], ["batch"], ["shards"])
                             else argv)

    try:
        config = load()
    except ConfigError as exc:
        print(f"inlet: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format, process_name(_process_kind(args)))
    if args.command in ("status", "lake", "demo", "env", "dead-letters", "schema-failures", "batch", "shards"):
        config = running.attach(config)  # the running system's data directory and NATS URL

    if args.command == "up" and (args.nats_cluster or args.shards or args.gateways):
        from inlet.cluster import up_cluster

        return up_cluster(config, args.nats_cluster or 1, args.shards or 1, args.gateways or 1)
    if args.command == "up":
        return up(config)
    if args.command == "demo":
        from inlet.demo import main as demo_main

        found = running.find(config)
        url = found.gateway_url if found is not None else f"http://{config.http.host}:{config.http.port}"
        return demo_main(own, url, api_token(config), config.org)
    if args.command == "env":
        found = running.find(config)
        if found is None:
            print(f"inlet env: no running `inlet up` found for {config.data_path} (start one: `make up`)",
                  file=sys.stderr)
            return 1
        sys.stdout.write(env_lines(found, api_token(config)))
        return 0
    if args.command == "shards":
        from inlet.reshard import main as shards_main

        return shards_main(own, config)
    if args.command == "dead-letters":
        from inlet.dead_letters import main as dead_letters_main

        return dead_letters_main(own, config)
    if args.command == "batch":
        from inlet.batches.cli import main as batch_main

        return batch_main(own, config)
    if args.command == "schema-failures":
        from inlet.schemas.cli import main as schema_failures_main

        return schema_failures_main(own, config)
    if args.command == "status":
        from inlet.status import main as status_main

        return status_main(config, args.json)
    if args.command == "gateway":
        from gateway.server import main as gateway_main

        _run(gateway_main(config))
    elif args.command == "worker" and args.kind == "profile":
        from worker.profile import main as profile_main

        _run(profile_main(config, args.shard))
    elif args.command == "worker":
        from worker.lake import main as lake_main

        _run(lake_main(config))
    elif args.command == "lake":
        from worker.lake.cli import main as lake_cli

        return int(lake_cli(own, config))
    return 0


def up(config: Config) -> int:
    """Start everything, keep it running (restart what crashes), stop it cleanly on Ctrl-C."""
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    other = running.alive(data)
    if other is not None:
        print(f"inlet: `inlet up` (pid {other.pid}) already runs on {data}; stop it first", file=sys.stderr)
        return 2
    base = f"http://{config.http.host}:{config.http.port}"
    children: list[Child] = []
    nats_url = config.nats.url
    if not nats_url:
        nats = NatsServer(data / "nats", sync_interval=config.nats.sync_interval)
        nats_url = nats.start()
        children.append(NatsChild(nats))
        log.info("Embedded nats-server ready at %s (store %s, sync_interval %s).", nats_url, data / "nats",
                 config.nats.sync_interval)
    record = running.record(config, nats_url, base)
    running.write(record)
    token = api_token(config)
    env = dict(os.environ, INLET_NATS_URL=nats_url, INLET_API_TOKEN=token, INLET_DATA_DIR=str(data))
    command = [sys.executable, "-m", "inlet"]
    # Workers first, so that the consumers exist before the first event arrives.
    children += [
        ProcessChild("profile worker", [*command, "worker", "profile"], env),
        ProcessChild("lake worker", [*command, "worker", "lake"], env),
    ]
    # One gateway per core by default, all on the one port (SO_REUSEPORT; docs/operations.md).
    gateways = config.http.processes or len(os.sched_getaffinity(0))
    if gateways == 1:
        children.append(ProcessChild("gateway", [*command, "gateway"], env))
    else:
        shared = dict(env, INLET_HTTP_REUSE_PORT="true")
        children += [ProcessChild(f"gateway {i + 1}/{gateways}", [*command, "gateway"], shared)
                     for i in range(gateways)]
    supervisor = Supervisor(children)
    demo: subprocess.Popen[bytes] | None = None
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        supervisor.start()
        ready = False
        deadline = time.monotonic() + 60
        while not stopping:
            supervisor.check()
            if not ready and gateway_ready(f"{base}/readyz"):
                ready = True
                _banner(base, token, config)
                if os.environ.get("INLET_DEMO", "1") != "0":
                    demo = subprocess.Popen([*command, "demo"], env=env)
            elif not ready and time.monotonic() > deadline:
                log.warning("The gateway is not ready after 60 s; still waiting (see the logs above).")
                deadline = float("inf")
            time.sleep(0.2)
    finally:
        # The demo, then the gateway (no new data), then the workers flush and ack, then NATS.
        if demo is not None and demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(30)
            except subprocess.TimeoutExpired:
                demo.kill()
        supervisor.stop()
        running.remove(record)
    return 0


def env_lines(found: running.Running, token: str) -> str:
    """Shell lines that point `curl` at the running system: `eval "$(inlet env)"`."""
    return f"export INLET_URL={shlex.quote(found.gateway_url)}\nexport TOKEN={shlex.quote(token)}\n"


def _banner(base: str, token: str, config: Config) -> None:
    event = (
        '{"header":{"schemaRef":{"id":"https://ns.adobe.com/demo/schemas/event"},'
        f'"imsOrgId":"{config.org}","datasetId":"demo-events"}},'
        '"body":{"xdmEntity":{"_id":"evt-1","timestamp":"2026-11-23T10:00:00Z",'
        '"eventType":"web.webpagedetails.pageViews",'
        '"identityMap":{"Email":[{"id":"ada@shop.example","primary":true}]}}}}'
    )
    print(
        f"""
inlet is up.
  gateway   {base}
  data      {config.data_path}
  API token {token}

Send an event:
  curl -s -X POST {base}/collection/demo -H 'Content-Type: application/json' \\
    -d '{event}'

Browse profiles (live): {base}/ui/  (token above)

Read the profile it built:
  curl -s -H 'Authorization: Bearer {token}' \\
    '{base}/data/core/ups/access/entities?schema.name=_xdm.context.profile&entityId=ada@shop.example&entityIdNS=Email'

In another shell, `eval "$(inlet env)"` sets INLET_URL and TOKEN (README: Running it).
Ctrl-C stops everything.
""",
        flush=True,
    )
