"""`inlet status`: the state of the pipeline at a glance, read from JetStream and the data
directory: the stream, each consumer's lag, dead letters, each local spool's depth, and the
retention warnings of `inlet.retention` (stream nearly full, a consumer's oldest
unacknowledged message nearing `max_age`). Next to `inlet up` it finds the embedded NATS and
the data directory through `inlet.running`; the exit status is 1 while there are warnings."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import msgspec

from nats.js.errors import NotFoundError

from inlet import bus, retention, subjects
from inlet.config import Config


async def collect(config: Config) -> dict[str, Any]:
    nc = await bus.connect(config, name="inlet-status")
    try:
        js = bus.jetstream(nc, config)
        stream = await js.stream_info(config.nats.stream)
        consumers = await js.consumers_info(config.nats.stream)
        kept = await retention.inspect(js, config.nats.stream)
        try:
            dead = (await js.stream_info(subjects.DEAD_LETTER_STREAM)).state.messages
        except NotFoundError:
            dead = 0
    finally:
        await bus.close(nc)
    spools = {
        path.name: sum(f.stat().st_size for f in path.glob("*.spool"))
        for path in sorted((config.data_path / "spool").glob("*"))
        if path.is_dir()
    }
    return {
        "stream": {
            "name": config.nats.stream,
            "messages": stream.state.messages,
            "bytes": stream.state.bytes,
            "first_seq": stream.state.first_seq,
            "last_seq": stream.state.last_seq,
            "max_bytes": kept.max_bytes,
            "max_age_s": kept.max_age_s,
        },
        "consumers": [
            {
                "name": c.name,
                "pending": c.num_pending or 0,
                "ack_pending": c.num_ack_pending or 0,
                "redelivered": c.num_redelivered or 0,
                "lag": (c.num_pending or 0) + (c.num_ack_pending or 0),
            }
            for c in sorted(consumers, key=lambda c: c.name)
        ],
        "dead_letters": dead,
        "spool_bytes": spools,
        "retention": msgspec.to_builtins(kept.consumers),
        "warnings": kept.warnings,
    }


def render(status: dict[str, Any]) -> str:
    s = status["stream"]
    lines = [
        f"stream {s['name']}: {s['messages']} messages, {s['bytes']} bytes, seq {s['first_seq']}..{s['last_seq']}",
        "",
        f"{'consumer':<16}{'lag':>10}{'pending':>10}{'ack pending':>13}{'redelivered':>13}",
    ]
    for c in status["consumers"]:
        lines.append(f"{c['name']:<16}{c['lag']:>10}{c['pending']:>10}{c['ack_pending']:>13}{c['redelivered']:>13}")
    lines += ["", f"dead letters: {status['dead_letters']}"]
    spools = status["spool_bytes"]
    lines.append("spool: " + (", ".join(f"{k} {v} bytes" for k, v in spools.items()) if spools else "empty"))
    limit = f"{s['max_bytes']} bytes" if s["max_bytes"] else "no size limit"
    age = f"max age {s['max_age_s']:.0f} s" if s["max_age_s"] else "no age limit"
    lines.append(f"retention: {limit}, {age}")
    lines += [f"WARNING: {w}" for w in status["warnings"]]
    return "\n".join(lines)


def main(config: Config, as_json: bool) -> int:
    if not config.nats.url:
        print(f"inlet status: no running `inlet up` found for {config.data_path}, and INLET_NATS_URL is not set",
              file=sys.stderr)
        return 2
    status = asyncio.run(collect(config))
    print(json.dumps(status, indent=2) if as_json else render(status))
    return 1 if status["warnings"] else 0
