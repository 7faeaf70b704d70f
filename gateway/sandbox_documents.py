"""Documents an admin API keeps per sandbox in a NATS KV bucket, under `<sandbox>.<name>`
(merge policies, computed attribute definitions): the reads both APIs share."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

T = TypeVar("T")

# Names inlet's ids for sandboxes and documents (UUIDv5: the same name gives the same id).
ID_NAMESPACE = uuid.UUID("6f1e3c52-8f0e-4c1b-9a43-2f6a5f0d7e11")


class Sandbox(msgspec.Struct, kw_only=True):
    """AEP's sandbox object in API answers. inlet names sandboxes only; the id is derived
    from the org and name so it is stable, and `prod` is the default production sandbox."""

    sandboxId: str
    sandboxName: str
    type: str
    default: bool


def sandbox_object(org: str, name: str) -> Sandbox:
    return Sandbox(sandboxId=str(uuid.uuid5(ID_NAMESPACE, f"{org}/{name}")), sandboxName=name,
                   type="production" if name == "prod" else "development", default=name == "prod")


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
