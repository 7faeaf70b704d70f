"""`inlet status`: the state of the pipeline at a glance, read from JetStream and the data
directory: the stream, each consumer's lag, dead letters, and each local spool's depth."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.js.errors import NotFoundError

from inlet import bus, subjects
from inlet.config import Config


async def collect(config: Config) -> dict[str, Any]:
    nc = await bus.connect(config, name="inlet-status")
    try:
        js = bus.jetstream(nc, config)
        stream = await js.stream_info(config.nats.stream)
        consumers = await js.consumers_info(config.nats.stream)
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
    return "\n".join(lines)


def main(config: Config, as_json: bool) -> int:
    status = asyncio.run(collect(config))
    print(json.dumps(status, indent=2) if as_json else render(status))
    return 0
