"""`python -m bench gateway|profile|lake [options]`; see BENCHMARKS.md for what each measures."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from typing import Any

from bench import machine


def _positive(kind: type[int | float], most: float) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if not 0 < value <= most:
            raise argparse.ArgumentTypeError(f"must be in (0, {most:g}]")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="name", required=True)
    g = sub.add_parser("gateway", help="ingestion throughput and latency vs a bare Starlette endpoint",
                       description="Each run lasts about repeat x loads x 2 servers x (warmup + seconds).")
    g.add_argument("--seconds", type=_positive(float, 600), default=10, help="measured seconds per run (10)")
    g.add_argument("--warmup", type=_positive(float, 60), default=1, help="unmeasured seconds before each run (1)")
    g.add_argument("--concurrency", type=_positive(int, 4096), default=32, help="requests in flight in all (32)")
    g.add_argument("--connections", type=_positive(int, 256), default=4, help="HTTP/2 connections (4)")
    g.add_argument("--batch", type=_positive(int, 10_000), nargs="+", default=[1, 100], metavar="N",
                   help="events per request; 1 posts to /collection/demo, more to /collection/batch/demo (1 100)")
    g.add_argument("--driver", choices=["all", "h2load", "python"], default="all",
                   help="all: Python driver for every size, plus h2load for 1 when installed (all)")
    g.add_argument("--repeat", type=_positive(int, 20), default=3, help="runs per load; medians are reported (3)")
    g.add_argument("--workers", action="store_true", help="also run the profile and lake workers")
    g.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, store)")
    g.add_argument("--gateways", type=int, default=0, metavar="N",
                   help="also N gateway processes on one port (SO_REUSEPORT), as `inlet up` runs them; "
                        "0: one per core (the default of `inlet up`); 1: none")
    g.add_argument("--profile", action="store_true",
                   help="py-spy the gateway and the baseline through each load of the first repeat; "
                        "prints the top functions")
    g.add_argument("--nats-sync", nargs="+", default=[], metavar="INTERVAL",
                   help="also a gateway on a nats-server with this JetStream sync_interval (always, 1s, ...), "
                        "in the same run; the first gateway keeps NATS's default (2m)")
    p = sub.add_parser("profile", help="profile worker throughput, freshness and lookup latency")
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--rate", type=int, default=1000, help="offered events/s for the freshness run (1000)")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--repeat", type=int, default=3)
    n = sub.add_parser("nginx", help="single-message ceiling: nginx (h2 → HTTP/1.1 keep-alive) vs Hypercorn's own h2")
    n.add_argument("--seconds", type=_positive(float, 600), default=5)
    n.add_argument("--repeat", type=_positive(int, 20), default=3)
    lake = sub.add_parser("lake", help="lake writer throughput and bytes per event")
    lake.add_argument("--events", type=int, default=50_000)
    lake.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"machine: {machine.describe()}", flush=True)
    if args.name == "gateway":
        from bench import gateway

        print(f"command: python -m bench {shlex.join(sys.argv[1:] if argv is None else argv)}", flush=True)
        outcome = gateway.run(args.seconds, args.concurrency, args.connections, args.batch, args.repeat,
                              args.warmup, args.driver, args.workers, args.keep, tuple(args.nats_sync),
                              args.profile, args.gateways or len(os.sched_getaffinity(0)))
        print(gateway.report(outcome))
    elif args.name == "nginx":
        from bench import nginx

        if not nginx.available():
            print("bench nginx: needs nginx, h2load and openssl", file=sys.stderr)
            return 2
        print(nginx.report(nginx.run(args.seconds, args.repeat)))
    elif args.name == "lake":
        from bench import lake as lake_bench

        print(lake_bench.report(lake_bench.run(args.events, args.repeat)))
    else:
        from bench import profile

        figures = profile.run(args.events, args.rate, args.seconds, args.repeat)
        print(profile.report(figures))
        if profile.failed(figures):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
