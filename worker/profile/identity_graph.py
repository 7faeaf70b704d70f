"""The identity graph: which identities are one person, and so one profile.

Two identities in one message are linked. Linking identities of two existing graphs merges
them: the older graph (earliest `created_ms`, then smallest id) survives and takes the other's
members, fragments and events, in the caller's transaction, so readers see either both
profiles or the merged one, never a half state.

Graph ids are derived from the sandbox and the first identity the graph saw, so replaying the
stream from the start rebuilds the same profile ids.
"""

from __future__ import annotations

import hashlib

import lmdb

from inlet.xdm import Identity
from worker.profile import fragments
from worker.profile.store import (
    Graph,
    Member,
    ProfileMeta,
    Store,
    decode_graph,
    decode_meta,
    encode,
    identity_key,
    prefix_items,
)


def graph_id(sandbox: str, identity_key_: str) -> bytes:
    return hashlib.blake2b(f"{sandbox}\0{identity_key_}".encode(), digest_size=16).digest()


def lookup(txn: lmdb.Transaction, store: Store, sandbox: str, identity: Identity) -> bytes | None:
    gid = txn.get(identity_key(sandbox, identity.key), db=store.identity)
    return bytes(gid) if gid is not None else None


def resolve(
    txn: lmdb.Transaction,
    store: Store,
    sandbox: str,
    identities: list[Identity],
    message_id: str,
    now_ms: int,
) -> bytes:
    """The graph id for a message's identities, linking and merging graphs as needed."""
    found: dict[bytes, Graph] = {}
    missing: list[Identity] = []
    for identity in identities:
        gid = lookup(txn, store, sandbox, identity)
        if gid is None:
            missing.append(identity)
        elif gid not in found:
            raw = txn.get(gid, db=store.graph)
            assert raw is not None, "identity points at a missing graph"
            found[gid] = decode_graph(raw)

    if not found:
        gid = graph_id(sandbox, identities[0].key)
        graph = Graph(sandbox=sandbox, created_ms=now_ms, members=[])
    else:
        gid = min(found, key=lambda g: (found[g].created_ms, g))
        graph = found.pop(gid)
        for loser_id, loser in sorted(found.items()):
            _absorb(txn, store, gid, graph, loser_id, loser)

    for identity in missing:
        graph.members.append(Member(identity.key, now_ms, message_id))
        txn.put(identity_key(sandbox, identity.key), gid, db=store.identity)
    if missing or found:
        txn.put(gid, encode(graph), db=store.graph)
    return gid


def _absorb(
    txn: lmdb.Transaction, store: Store, gid: bytes, graph: Graph, loser_id: bytes, loser: Graph
) -> None:
    """Move everything of graph `loser_id` into `gid` (both in `graph.sandbox`)."""
    for member in loser.members:
        graph.members.append(member)
        txn.put(identity_key(loser.sandbox, member.key), gid, db=store.identity)
    txn.delete(loser_id, db=store.graph)

    fragments.move(txn, store, loser_id, gid)
    for key, value in prefix_items(txn, store.event, loser_id):
        txn.delete(key, db=store.event)
        txn.put(gid + key[16:], value, db=store.event)

    loser_meta = txn.get(loser_id, db=store.profile)
    if loser_meta is not None:
        txn.delete(loser_id, db=store.profile)
        touch(txn, store, gid, graph.sandbox, decode_meta(loser_meta).last_modified_ms)


def touch(txn: lmdb.Transaction, store: Store, gid: bytes, sandbox: str, now_ms: int) -> None:
    """Record that the profile changed at `now_ms` (never moving its time backwards)."""
    raw = txn.get(gid, db=store.profile)
    meta = decode_meta(raw) if raw is not None else ProfileMeta(sandbox, now_ms)
    meta.last_modified_ms = max(meta.last_modified_ms, now_ms)
    txn.put(gid, encode(meta), db=store.profile)
