"""The identity graph: which identities are one person, and so one profile.

Identities seen together in one message are linked, under guardrails against over-merging,
the most common failure of identity stitching in practice:

- blocked values (`null`, `0`, test emails, ...) never link anything;
- a per-namespace limit: at most one CRMID per graph (by default), so a second CRMID is a
  second person, not a reason to merge two;
- the shared-device rule: a device identity (ECID, GAID, ...) belongs to the last person who
  authenticated on it; it moves to that person's graph instead of merging everyone who used
  the device;
- a graph limit (50 by default): past it the least recently seen identities are unlinked,
  oldest first, ties broken by key, so the result is deterministic.

Every link keeps the message and time that made it. Removing an identity (unlink, eviction,
device move) drops its links and re-splits the rest into connected components; each
component's id is the owner id of its founder, so ids stay deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable

import lmdb

from inlet.config import Identity as IdentityRules
from inlet.xdm import Identity
from worker.profile.store import (
    Graph,
    Link,
    Member,
    ProfileMeta,
    Store,
    decode_graph,
    decode_meta,
    encode,
    identity_key,
    owner_id,
)


class Rules:
    """The stitching rules of a configuration, prepared once."""

    def __init__(self, rules: IdentityRules) -> None:
        self.blocked = {v.strip().lower() for v in rules.blocked_values}
        self.devices = set(rules.device_namespaces)
        self.limits = dict(rules.namespace_limits)
        self.graph_limit = rules.graph_limit

    def usable(self, identities: Iterable[Identity]) -> list[Identity]:
        return [i for i in identities if i.id.strip().lower() not in self.blocked]

    def within_limits(self, keys: Iterable[str]) -> bool:
        counts: dict[str, int] = {}
        for key in keys:
            ns = key.split(":", 1)[0]
            if ns in self.limits:
                counts[ns] = counts.get(ns, 0) + 1
                if counts[ns] > self.limits[ns]:
                    return False
        return True

    def order(self, identities: list[Identity]) -> list[Identity]:
        """People before devices; authenticated, then primary, then as sent. The first is the
        message's owner: its data stays with that person if the device later moves."""
        return sorted(
            identities,
            key=lambda i: (i.ns in self.devices, not i.authenticated, not i.primary),
        )


def lookup(txn: lmdb.Transaction, store: Store, sandbox: str, identity: Identity) -> bytes | None:
    gid = txn.get(identity_key(sandbox, identity.key), db=store.identity)
    return bytes(gid) if gid is not None else None


def load(txn: lmdb.Transaction, store: Store, gid: bytes) -> Graph | None:
    raw = txn.get(gid, db=store.graph)
    return decode_graph(raw) if raw is not None else None


class Linker:
    """Applies one message's identities to the graph inside a write transaction."""

    def __init__(self, txn: lmdb.Transaction, store: Store, rules: Rules, sandbox: str, now_ms: int) -> None:
        self.txn = txn
        self.store = store
        self.rules = rules
        self.sandbox = sandbox
        self.now_ms = now_ms
        self.carried_ms = 0  # modification time of absorbed profiles

    def graph_of(self, key: str) -> tuple[bytes, Graph] | None:
        gid = self.txn.get(identity_key(self.sandbox, key), db=self.store.identity)
        if gid is None:
            return None
        graph = load(self.txn, self.store, bytes(gid))
        assert graph is not None, f"identity {key} points at a missing graph"
        return bytes(gid), graph

    def link(self, identities: list[Identity], message_id: str) -> bytes | None:
        """Link a message's identities; returns the owner identity's graph id."""
        ordered = self.rules.order(self.rules.usable(identities))
        if not ordered:
            return None
        anchor = ordered[0].key
        found = self.graph_of(anchor)
        gid, graph = found if found else (b"", Graph(self.sandbox, [Member(anchor, self.now_ms, self.now_ms)]))
        for identity in ordered[1:]:
            key = identity.key
            if graph.member(key) is not None:
                # Already one profile, but seen together now: that is evidence of its own,
                # which keeps them together if whatever joined them first is unlinked.
                if not graph.linked(anchor, key):
                    graph.links.append(Link(anchor, key, message_id, self.now_ms))
                continue
            other = self.graph_of(key)
            if other is None:
                if self.rules.within_limits([m.key for m in graph.members] + [key]):
                    graph.members.append(Member(key, self.now_ms, self.now_ms))
                    graph.links.append(Link(anchor, key, message_id, self.now_ms))
                else:
                    self._save([Graph(self.sandbox, [Member(key, self.now_ms, self.now_ms)])], old=[])
                continue
            other_gid, other_graph = other
            union = [m.key for m in graph.members] + [m.key for m in other_graph.members]
            if self.rules.within_limits(union):
                graph.members.extend(other_graph.members)
                graph.links.extend(other_graph.links)
                graph.links.append(Link(anchor, key, message_id, self.now_ms))
                self._forget(other_gid)
            elif identity.ns in self.rules.devices and self.rules.within_limits(
                [m.key for m in graph.members] + [key]
            ):
                moved = other_graph.member(key)
                assert moved is not None
                rest = [g for g in _split(other_graph, {key}) if g.members[0].key != key]
                self._save(rest, old=[other_gid])
                graph.members.append(moved)
                graph.links.append(Link(anchor, key, message_id, self.now_ms))
            # else: linking would join two people; they stay apart.
        seen = {i.key for i in ordered}
        for member in graph.members:
            if member.key in seen:
                member.last_seen_ms = self.now_ms
        evicted = self._over_limit(graph)
        saved = self._save(_split(graph, evicted), old=[gid] if gid else [])
        return saved[anchor]

    def unlink(self, identity: Identity) -> bool:
        found = self.graph_of(identity.key)
        if found is None:
            return False
        gid, graph = found
        if len(graph.members) == 1:
            return False
        self._save(_split(graph, {identity.key}), old=[gid])
        return True

    def _over_limit(self, graph: Graph) -> set[str]:
        excess = len(graph.members) - self.rules.graph_limit
        if excess <= 0:
            return set()
        oldest = sorted(graph.members, key=lambda m: (m.last_seen_ms, m.key))
        return {m.key for m in oldest[:excess]}

    def _forget(self, gid: bytes) -> None:
        """Graph `gid` was absorbed: drop its record, carrying its modification time over."""
        self.txn.delete(gid, db=self.store.graph)
        raw = self.txn.get(gid, db=self.store.profile)
        if raw is not None:
            self.txn.delete(gid, db=self.store.profile)
            self.carried_ms = max(self.carried_ms, decode_meta(raw).last_modified_ms)

    def _save(self, graphs: list[Graph], old: list[bytes]) -> dict[str, bytes]:
        """Write graphs under their founders' ids; drop old ids no graph keeps."""
        where: dict[str, bytes] = {}
        kept: set[bytes] = set()
        for graph in graphs:
            gid = owner_id(self.sandbox, graph.founder().key)
            kept.add(gid)
            self.txn.put(gid, encode(graph), db=self.store.graph)
            for member in graph.members:
                self.txn.put(identity_key(self.sandbox, member.key), gid, db=self.store.identity)
                where[member.key] = gid
            touch(self.txn, self.store, gid, self.sandbox, max(self.now_ms, self.carried_ms))
        for gid in old:
            if gid not in kept:
                self.txn.delete(gid, db=self.store.graph)
                self.txn.delete(gid, db=self.store.profile)
        return where


def _split(graph: Graph, removed: set[str]) -> list[Graph]:
    """The connected components of `graph` once `removed` lose their links (each removed
    identity becomes a graph of its own)."""
    links = [l for l in graph.links if l.a not in removed and l.b not in removed]
    parent = {m.key: m.key for m in graph.members}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for l in links:
        if l.a in parent and l.b in parent:
            parent[find(l.a)] = find(l.b)
    groups: dict[str, list[Member]] = {}
    for member in graph.members:
        root = member.key if member.key in removed else find(member.key)
        groups.setdefault(root, []).append(member)
    out = []
    for members in groups.values():
        keys = {m.key for m in members}
        out.append(Graph(graph.sandbox, members, [l for l in links if l.a in keys and l.b in keys]))
    return out


def touch(txn: lmdb.Transaction, store: Store, gid: bytes, sandbox: str, now_ms: int) -> None:
    """Record that the profile changed at `now_ms` (never moving its time backwards)."""
    raw = txn.get(gid, db=store.profile)
    meta = decode_meta(raw) if raw is not None else ProfileMeta(sandbox, now_ms)
    meta.last_modified_ms = max(meta.last_modified_ms, now_ms)
    txn.put(gid, encode(meta), db=store.profile)
