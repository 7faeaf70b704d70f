"""`inlet schema-failures`: what schema validation kept out of each dataset, and why.

    inlet schema-failures                       failures stored, by sandbox and dataset
    inlet schema-failures --dataset demo-events [--sandbox prod] [--limit 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json

import msgspec

from inlet import bus
from inlet.config import Config
from inlet.schemas import failures


def main(argv: list[str], config: Config) -> int:
    parser = argparse.ArgumentParser(prog="inlet schema-failures", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", help="list this dataset's failures (default: counts of every dataset)")
    parser.add_argument("--sandbox", default="prod")
    parser.add_argument("--limit", type=int, default=20, help="newest failures to list (20)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    return asyncio.run(_run(config, args))


async def _run(config: Config, args: argparse.Namespace) -> int:
    nc = await bus.connect(config, name="inlet-schema-failures")
    try:
        js = bus.jetstream(nc, config)
        if not args.dataset:
            counts = {subject.removeprefix(failures.PREFIX): n for subject, n in (await failures.counts(js)).items()}
            if args.json:
                print(json.dumps(counts))
            elif not counts:
                print("no schema failures stored")
            for where, n in sorted(counts.items()):
                sandbox, _, dataset = where.partition(".")
                print(f"{sandbox}\t{dataset}\t{n}")
            return 0
        found = await failures.read(js, args.sandbox, args.dataset, args.limit)
        if args.json:
            print(msgspec.json.encode([{**msgspec.to_builtins(f), "xdm": msgspec.json.decode(bytes(f.xdm))}
                                       for f in found]).decode())
            return 0
        if not found:
            print(f"no schema failures stored for dataset {args.dataset!r} in sandbox {args.sandbox!r}")
        for failure in found:
            print(f"{failure.message_id.removeprefix('fail/')}  received {failure.received_ms}  from {failure.source}"
                  f"  schema {failure.schema}")
            for violation in failure.violations:
                print(f"    {violation.path}: {violation.message} ({violation.code})")
        return 0
    finally:
        await bus.close(nc)
