"""`python -m bench gateway|profile [options]`; see BENCHMARKS.md for what each measures."""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time


def machine() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{time.strftime('%Y-%m-%d')}, {cores} cores, Python {platform.python_version()}, {platform.machine()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="name", required=True)
    g = sub.add_parser("gateway", help="ingestion throughput and latency vs a bare Starlette endpoint")
    g.add_argument("--seconds", type=float, default=10)
    g.add_argument("--clients", type=int, default=4)
    g.add_argument("--streams", type=int, default=8, help="concurrent HTTP/2 streams per client")
    g.add_argument("--repeat", type=int, default=3)
    g.add_argument("--batches", type=int, default=300, help="unique 100-event requests per batch run")
    g.add_argument("--workers", action="store_true", help="also run the profile and lake workers")
    p = sub.add_parser("profile", help="profile worker throughput, freshness and lookup latency")
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--rate", type=int, default=500, help="offered events/s for the freshness run")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--repeat", type=int, default=3)
    lake = sub.add_parser("lake", help="lake writer throughput and bytes per event")
    lake.add_argument("--events", type=int, default=50_000)
    lake.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    if args.name == "gateway":
        from bench import gateway

        print(gateway.report(gateway.run(args.seconds, args.clients, args.streams, args.repeat, args.batches, args.workers)))
    elif args.name == "lake":
        from bench import lake as lake_bench

        print(lake_bench.report(lake_bench.run(args.events, args.repeat)))
    else:
        from bench import profile

        print(profile.report(profile.run(args.events, args.rate, args.seconds, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
