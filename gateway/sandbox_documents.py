"""Documents an admin API keeps per sandbox in a NATS KV bucket, under `<sandbox>.<name>`
(merge policies, computed attribute definitions): the reads both APIs share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

T = TypeVar("T")


async def get(kv: KeyValue, sandbox: str, name: str, decode: Callable[[bytes], T]) -> T | None:
    """The document, or None when there is none (never written, or deleted)."""
    try:
        entry = await kv.get(f"{sandbox}.{name}")
    except KeyNotFoundError:
        return None
    return decode(entry.value) if entry.value else None


async def in_sandbox(kv: KeyValue, sandbox: str, decode: Callable[[bytes], T]) -> list[T]:
    """Every document of the sandbox, ordered by name."""
    try:
        keys = [k for k in await kv.keys() if k.partition(".")[0] == sandbox]
    except NoKeysError:
        return []
    found = [await get(kv, sandbox, k.partition(".")[2], decode) for k in sorted(keys)]
    return [d for d in found if d is not None]
