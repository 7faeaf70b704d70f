"""Profile fragments: what each dataset says about a profile, field by field, with timestamps.

A record's attributes are stored flattened to leaf paths (`person.name.firstName`), each with
the time it was written. That makes a `merge` upsert touch only the leaves it carries, and lets
a merge policy pick each attribute from the newest (or most trusted) fragment on read.
Lists are leaves: XDM arrays are replaced whole, never merged element-wise.
"""

from __future__ import annotations

from typing import Any

import lmdb

from worker.profile.store import (
    ID_BYTES,
    FieldValue,
    Fragment,
    Store,
    decode_fragment,
    encode,
    fragment_key,
    prefix_items,
)

# Fields that describe the record, not the person; the identity graph carries identityMap.
NOT_ATTRIBUTES = frozenset({"_id", "identityMap", "timestamp"})


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    leaves: dict[str, Any] = {}
    for key, value in document.items():
        if not prefix and key in NOT_ATTRIBUTES:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves.update(flatten(value, path + "."))
        else:
            leaves[path] = value
    return leaves


def unflatten(leaves: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for path in sorted(leaves):
        node = document
        *parents, last = path.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a leaf and a branch at one path: keep the branch
                child = node[part] = {}
            node = child
        node.setdefault(last, leaves[path])
    return document


def write(
    txn: lmdb.Transaction,
    store: Store,
    owner: bytes,
    dataset: str,
    document: dict[str, Any],
    operation: str,
    ts: int,
    db: Any = None,
) -> None:
    """Apply one record to its owner's fragment for the dataset: replace (`create`), patch
    (`merge`) or remove (`delete`). `db`: another fragment database (accounts keep theirs
    apart), `store.fragment` by default."""
    db = store.fragment if db is None else db
    key = fragment_key(owner, dataset)
    if operation == "delete":
        txn.delete(key, db=db)
        return
    fields = {path: FieldValue(value, ts) for path, value in flatten(document).items()}
    if operation == "merge":
        raw = txn.get(key, db=db)
        if raw is not None:
            current = decode_fragment(raw).fields
            # A patch replaces whole leaves; a leaf that became a branch (or back) is replaced.
            for path in list(current):
                if any(path.startswith(p + ".") or p.startswith(path + ".") for p in fields):
                    del current[path]
            current.update(fields)
            fields = current
    txn.put(key, encode(Fragment(ts, fields)), db=db)


def read(txn: lmdb.Transaction, store: Store, owners: list[bytes], db: Any = None) -> list[tuple[str, Fragment]]:
    """Every fragment of these owners, as (dataset, fragment)."""
    return [
        (key[ID_BYTES:].decode(), decode_fragment(value))
        for owner in owners
        for key, value in prefix_items(txn, store.fragment if db is None else db, owner)
    ]
