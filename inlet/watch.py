"""Following a NATS key-value bucket: the pattern behind every shared, live setting.

Settings that the API edits (merge policies, computed attribute definitions) live in a
JetStream key-value bucket. Each process keeps the current values in memory and follows the
bucket's change stream, so an edit reaches every worker within milliseconds without a restart
and without a read of NATS on the hot path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.js.kv import KeyValue

# (key, value or None when deleted)
Apply = Callable[[str, bytes | None], None]


async def follow(kv: KeyValue, apply: Apply, timeout: float = 10.0) -> asyncio.Task[None]:
    """Deliver every current entry, then every change, to `apply`; returns once the current
    entries have all been delivered (so callers start with a complete view), leaving a task
    that follows later changes until cancelled."""
    watcher = await kv.watchall()
    ready = asyncio.Event()

    async def run() -> None:
        async for entry in watcher:
            if entry is None:  # the initial values have all been delivered
                ready.set()
                continue
            deleted = entry.operation in ("DEL", "PURGE") or not entry.value
            apply(entry.key, None if deleted else entry.value)
            if entry.delta == 0:
                ready.set()

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), timeout)
    return task
