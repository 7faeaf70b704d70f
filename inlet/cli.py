"""The `inlet` command: run the whole system, or any one process of it.

    inlet up                  embedded nats-server + gateway + profile worker + lake worker
    inlet gateway             one gateway against INLET_NATS_URL
    inlet worker profile      one profile worker (--shard N)
    inlet worker lake         one lake worker
    inlet lake ls|query|compact
    inlet status              stream, consumer lag, dead letters, spool depth
    inlet demo [--seed N]     realistic traffic through the gateway (also started by `inlet up`)

`inlet up` is a supervisor: every component is its own OS process, started exactly as it would
be started alone on another machine, so one box and a cluster run the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine
from typing import Any

from inlet.config import Config, ConfigError, api_token, load
from inlet.nats_server import NatsServer
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
    sub.add_parser("up", help="run the whole system on this machine")
    sub.add_parser("gateway", help="run one gateway")
    status = sub.add_parser("status", help="stream, consumer lag, dead letters, spool depth")
    status.add_argument("--json", action="store_true", help="print JSON")
    worker = sub.add_parser("worker", help="run one worker")
    worker.add_argument("kind", choices=["profile", "lake"])
    worker.add_argument("--shard", type=int, default=0)
    demo = sub.add_parser("demo", help="send realistic demo traffic through a gateway", add_help=False)
    demo.add_argument("args", nargs=argparse.REMAINDER)
    lake = sub.add_parser("lake", help="inspect and maintain the Parquet lake")
    lake.add_argument("args", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else argv
    # `demo` and `lake` parse their own options (argparse's REMAINDER drops leading --options).
    own = argv[1:] if argv[:1] in (["demo"], ["lake"]) else []
    args = parser.parse_args(argv[:1] if own or argv[:1] in (["demo"], ["lake"]) else argv)

    try:
        config = load()
    except ConfigError as exc:
        print(f"inlet: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format, process_name(_process_kind(args)))

    if args.command == "up":
        return up(config)
    if args.command == "demo":
        from inlet.demo import main as demo_main

        return demo_main(own, f"http://{config.http.host}:{config.http.port}", api_token(config), config.org)
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
    """Start everything, print how to use it, stop everything cleanly on Ctrl-C."""
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    nats: NatsServer | None = None
    nats_url = config.nats.url
    if not nats_url:
        nats = NatsServer(data / "nats")
        nats_url = nats.start()
        log.info("Embedded nats-server ready at %s (store %s).", nats_url, data / "nats")
    token = api_token(config)
    env = dict(os.environ, INLET_NATS_URL=nats_url, INLET_API_TOKEN=token, INLET_DATA_DIR=str(data))

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "inlet", *args], env=env)

    # Workers first, so that the consumers exist before the first event arrives.
    children = [spawn("worker", "profile"), spawn("worker", "lake"), spawn("gateway")]
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    base = f"http://{config.http.host}:{config.http.port}"
    try:
        if _wait_ready(f"{base}/readyz", children, lambda: stopping):
            _banner(base, token, config)
            if os.environ.get("INLET_DEMO", "1") != "0":
                demo = subprocess.Popen([sys.executable, "-m", "inlet", "demo"], env=env)
                children.append(demo)
        services = children[:3]  # the demo may finish; the services must not
        while not stopping and all(c.poll() is None for c in services):
            time.sleep(0.2)
        failed = [c for c in services if c.poll() not in (None, 0)]
        if failed and not stopping:
            log.error("A child process exited (%s); stopping everything.", failed[0].args)
    finally:
        # Gateway first (no new data), then the workers flush and ack, then NATS.
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        if nats is not None:
            nats.stop()
    return 0 if stopping else 1


def _wait_ready(url: str, children: list[subprocess.Popen[bytes]], stopped: Any, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopped():
        if any(c.poll() is not None for c in children):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


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

Ctrl-C stops everything.
""",
        flush=True,
    )
