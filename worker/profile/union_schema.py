"""The union schema: every field observed in the profile-enabled datasets of a class.

Each applied event or record is reduced to its leaf paths with a JSON type
(`commerce.order.priceTotal: number`; array items as `productListItems[].SKU`; `identityMap`
as one `map`). A set in memory remembers what was already recorded, so the common case (a
document shaped like many before it) costs one subset test and writes nothing; something new
is written to the `schema` database in the batch's transaction, under
`<sandbox> NUL <class> NUL <path> NUL <type> NUL <dataset>`. A read groups those keys by path.

What a failed message observed is dropped with it: observations of a message join the batch
only when its nested transaction commits, and the in-memory set learns them only after the
batch commits.
"""

from __future__ import annotations

import struct
from typing import Any

import lmdb

from worker.profile.store import Store, prefix_items

# Items of an array that are looked at: enough for heterogeneous lists, bounded for huge ones.
MAX_ITEMS = 100
# A field's path is part of its LMDB key (at most 511 bytes, with sandbox, class and dataset);
# a longer path (only a pathological document has one) is left out of the union schema rather
# than failing the message that carries it.
MAX_PATH_BYTES = 200
MAX_KEY_BYTES = 511
# Maps whose keys are data, not field names.
MAPS = frozenset({"identityMap"})
_MS = struct.Struct(">q")


# JSON type of a decoded value (null is absent: it says nothing about a field's type).
_KIND: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
                          dict: "object"}


def _walk(value: dict[str, Any], prefix: str, out: set[tuple[str, str]]) -> None:
    """Runs for every applied message, so it is kept tight: one type lookup per value."""
    for key, child in value.items():
        kind = _KIND.get(type(child))
        if kind is None or "\0" in key:  # NUL separates the stored keys; no XDM field has one
            continue
        path = prefix + key
        if len(path) > MAX_PATH_BYTES // 4 and len(path.encode()) > MAX_PATH_BYTES:
            continue
        if kind == "object":
            if not prefix and key in MAPS:
                kind = "map"
            elif child:
                _walk(child, path + ".", out)
                continue
        out.add((path, kind))
        if kind == "array":
            for item in child[:MAX_ITEMS]:
                item_kind = _KIND.get(type(item))
                if item_kind == "object" and item:
                    _walk(item, path + "[].", out)
                elif item_kind is not None:
                    out.add((path + "[]", item_kind))


def fields(document: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """The (leaf path, type) pairs of a document."""
    out: set[tuple[str, str]] = set()
    _walk(document, "", out)
    return frozenset(out)


def _key(sandbox: str, xdm_class: str, path: str, kind: str, dataset: str) -> bytes:
    return "\0".join((sandbox, xdm_class, path, kind, dataset)).encode()


class Observer:
    """Records new (path, type) pairs per (sandbox, class, dataset)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
        with store.env.begin() as txn:
            for key, _ in prefix_items(txn, store.schema, b""):
                sandbox, xdm_class, path, kind, dataset = key.decode().split("\0")
                self.seen.setdefault((sandbox, xdm_class, dataset), set()).add((path, kind))
        self.staged: dict[tuple[str, str, str], set[tuple[str, str]]] = {}

    def observe(self, sandbox: str, xdm_class: str, dataset: str, document: dict[str, Any]) -> set[tuple[str, str]]:
        """What this document adds to its dataset's fields (usually nothing)."""
        found = fields(document)
        known = self.seen.get((sandbox, xdm_class, dataset))
        if known is not None and found <= known:
            return set()
        staged = self.staged.get((sandbox, xdm_class, dataset), set())
        return set(found - (known or set()) - staged)

    def stage(self, sandbox: str, xdm_class: str, dataset: str, new: set[tuple[str, str]]) -> None:
        """A message that observed `new` committed (nested): write it with the batch."""
        if new:
            self.staged.setdefault((sandbox, xdm_class, dataset), set()).update(new)

    def write(self, txn: lmdb.Transaction, now_ms: int) -> None:
        for (sandbox, xdm_class, dataset), new in self.staged.items():
            for path, kind in new:
                key = _key(sandbox, xdm_class, path, kind, dataset)
                if len(key) <= MAX_KEY_BYTES:
                    txn.put(key, _MS.pack(now_ms), db=self.store.schema, overwrite=False)

    def committed(self, ok: bool) -> None:
        """After the batch: remember what was written (or forget what was not)."""
        if ok:
            for where, new in self.staged.items():
                self.seen.setdefault(where, set()).update(new)
        self.staged = {}


def read(txn: lmdb.Transaction, store: Store, sandbox: str, xdm_class: str) -> list[tuple[str, list[str], list[str]]]:
    """(path, types, datasets) of every field of the class, by path."""
    grouped: dict[str, tuple[set[str], set[str]]] = {}
    for key, _ in prefix_items(txn, store.schema, f"{sandbox}\0{xdm_class}\0".encode()):
        _, _, path, kind, dataset = key.decode().split("\0")
        types, datasets = grouped.setdefault(path, (set(), set()))
        types.add(kind)
        datasets.add(dataset)
    return [(path, sorted(types), sorted(datasets)) for path, (types, datasets) in sorted(grouped.items())]
