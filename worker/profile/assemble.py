"""Answering lookups with N shards: the profile assembled at read from the shards that hold
its pieces, by the same code one shard runs.

Any shard can receive a lookup (queue group `profile`). It resolves the graph locally (every
shard folds the same ordered stream into the same graph), then asks the shards that own the
profile's identities for their records on `inlet.query.profile.part.<shard>` (in parallel,
request/reply), and copies the answers and its own records into a write transaction of a
scratch LMDB environment. `lookup.Lookups` then answers from that transaction exactly as it
answers from a single shard's store, and the transaction is aborted: nothing is written, and
the single-shard read code (merge policies, computed windows, timeline paging, account pages)
is the only code that decides an answer (docs/scaling.md).

A part request that does not come back in time makes the lookup answer `unavailable` (503): a
profile missing some of its identities' data is never served as if it were whole.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import lmdb
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from inlet import lookups
from inlet.config import Config
from worker.profile import accounts, identity_graph
from worker.profile.lookup import Lookups, _walk, expired
from worker.profile.placement import Placement
from worker.profile.store import Graph, Store, decode_event, event_timestamp, identity_key, owner_id, prefix_items

log = logging.getLogger("inlet.worker.profile.assemble")

PART_QUERY = "inlet.query.profile.part"
# The databases a part request may read; the replicated ones are read locally.
OWNED_DBS = ("fragment", "computed", "schema")
_FAR = 1 << 61


def part_subject(shard: int) -> str:
    return f"{PART_QUERY}.{shard}"


class Scan(msgspec.Struct, array_like=True):
    db: str
    prefix: bytes


class EventScan(msgspec.Struct, array_like=True):
    owner: bytes
    start: int
    end: int
    after: bytes | None
    newest_first: bool
    limit: int


class PartRequest(msgspec.Struct, array_like=True):
    scans: list[Scan] = []
    events: list[EventScan] = []


class PartAnswer(msgspec.Struct, array_like=True):
    pairs: list[tuple[str, bytes, bytes]]


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(PartRequest).decode
_decode_answer = msgspec.msgpack.Decoder(PartAnswer).decode


def read_part(store: Store, request: PartRequest, ttl_ms: dict[tuple[str, str], int], now_ms: int) -> PartAnswer:
    """This shard's records for a part request, from one read transaction."""
    pairs: list[tuple[str, bytes, bytes]] = []
    with store.env.begin() as txn:
        for scan in request.scans:
            if scan.db not in OWNED_DBS:
                continue
            pairs.extend((scan.db, k, v) for k, v in prefix_items(txn, getattr(store, scan.db), scan.prefix))
        for e in request.events:
            taken = 0
            for suffix, value in _walk(txn.cursor(store.event), e.owner, e.start, e.end, e.after, e.newest_first):
                stored = decode_event(value)
                if expired(ttl_ms, stored.sandbox, stored.dataset, event_timestamp(e.owner + suffix), now_ms):
                    continue
                pairs.append(("event", e.owner + suffix, value))
                taken += 1
                if taken >= e.limit:
                    break
    return PartAnswer(pairs)


class Plan:
    """What one lookup needs: records copied from this shard's replicated databases, and part
    requests per shard."""

    def __init__(self) -> None:
        self.local: list[tuple[str, bytes, bytes]] = []
        self.parts: dict[int, PartRequest] = {}

    def part(self, shard: int) -> PartRequest:
        return self.parts.setdefault(shard, PartRequest(scans=[], events=[]))

    def copy(self, txn: lmdb.Transaction, store: Store, db: str, key: bytes) -> None:
        value = txn.get(key, db=getattr(store, db))
        if value is not None:
            self.local.append((db, key, bytes(value)))

    def copy_prefix(self, txn: lmdb.Transaction, store: Store, db: str, prefix: bytes) -> None:
        self.local.extend((db, k, v) for k, v in prefix_items(txn, getattr(store, db), prefix))


class ShardedLookups:
    def __init__(self, nc: Client, local: Lookups, placement: Placement, config: Config, scratch_dir: Path) -> None:
        self.nc = nc
        self.local = local
        self.placement = placement
        self.timeout = config.profile.query_timeout
        shutil.rmtree(scratch_dir, ignore_errors=True)
        self.scratch = Store(scratch_dir, 1 << 30)
        self.reader = Lookups(self.scratch, config, clock=local.clock, policies=local.policies,
                              definitions=local.definitions)

    async def serve_part(self, msg: Msg) -> None:
        try:
            request = _decode_request(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("Undecodable part request: %s", exc)
            return
        now_ms = int(self.local.clock() * 1000)
        await msg.respond(_encode(read_part(self.local.store, request, self.local.ttl_ms, now_ms)))

    async def answer(self, data: bytes) -> bytes:
        try:
            lookup = lookups.decode_lookup(data)
        except msgspec.DecodeError:
            return self.local.answer(data)  # the same refusal one shard gives
        if isinstance(lookup, lookups.GraphLookup):
            return self.local.answer(data)  # graphs are replicated: nothing to gather
        store = self.local.store
        with store.env.begin() as txn:
            plan = self._plan(txn, store, lookup)
        if plan is None:
            return self.local.answer(data)  # not found, refused: decided by the graph alone
        try:
            gathered = await self._gather(plan)
        except Exception as exc:
            log.warning("A profile shard did not answer a part request (%r).", exc)
            return lookups.encode(lookups.Refused(
                code="unavailable", detail=f"a profile shard did not answer in time ({type(exc).__name__})"))
        scratch = self.scratch
        txn = scratch.env.begin(write=True)
        try:
            for db, key, value in (*plan.local, *gathered):
                txn.put(key, value, db=getattr(scratch, db))
            return lookups.encode(self._read(txn, lookup))
        finally:
            txn.abort()

    def _read(self, txn: lmdb.Transaction, lookup: lookups.Lookup) -> lookups.Answer:
        reader = self.reader
        if isinstance(lookup, lookups.ProfileLookup):
            return reader._profile(txn, lookup)
        if isinstance(lookup, lookups.EventsLookup):
            return reader._events(txn, lookup)
        if isinstance(lookup, lookups.AccountLookup):
            return reader._account(txn, lookup)
        if isinstance(lookup, lookups.SchemaLookup):
            return reader._schema(txn, lookup)
        return reader._graph(txn, lookup)

    async def _gather(self, plan: Plan) -> list[tuple[str, bytes, bytes]]:
        now_ms = int(self.local.clock() * 1000)
        me = self.placement.shard

        async def ask(shard: int, request: PartRequest) -> list[tuple[str, bytes, bytes]]:
            if shard == me:
                return read_part(self.local.store, request, self.local.ttl_ms, now_ms).pairs
            reply = await self.nc.request(part_subject(shard), _encode(request), timeout=self.timeout)
            return _decode_answer(reply.data).pairs

        answers = await asyncio.gather(*(ask(s, r) for s, r in plan.parts.items()))
        return [pair for pairs in answers for pair in pairs]

    def _plan(self, txn: lmdb.Transaction, store: Store, lookup: lookups.Lookup) -> Plan | None:
        """The records a lookup reads, or None when the local answer is already the answer."""
        if isinstance(lookup, lookups.SchemaLookup):
            plan = Plan()
            prefix = f"{lookup.sandbox}\0{lookup.xdm_class}\0".encode()
            for shard in range(self.placement.shards):
                plan.part(shard).scans.append(Scan("schema", prefix))
            return plan
        if isinstance(lookup, lookups.AccountLookup):
            return self._plan_account(txn, store, lookup)
        assert isinstance(lookup, (lookups.ProfileLookup, lookups.EventsLookup))
        found = self.local._find(txn, lookup.sandbox, lookup.identity, lookup.profile_id)
        if isinstance(found, lookups.NotFound):
            return None
        gid, graph = found
        plan = Plan()
        self._copy_graph(txn, store, plan, gid, graph)
        if lookup.identity is not None:
            plan.copy(txn, store, "identity", identity_key(lookup.sandbox, lookup.identity.key))
        for member in graph.members:
            owner = owner_id(graph.sandbox, member.key)
            part = plan.part(self.placement.shard_of(owner))
            if isinstance(lookup, lookups.ProfileLookup):
                part.scans += [Scan("fragment", owner), Scan("computed", owner)]
                self._copy_accounts_of(txn, store, plan, owner)
            else:
                start = lookup.start_ms if lookup.start_ms is not None else -_FAR
                end = lookup.end_ms if lookup.end_ms is not None else _FAR
                after = bytes.fromhex(lookup.after) if lookup.after else None
                # One more than a page: the reader needs it to know whether a next page exists.
                part.events.append(EventScan(owner, start, end, after, lookup.newest_first, lookup.limit + 1))
        return plan

    def _copy_graph(self, txn: lmdb.Transaction, store: Store, plan: Plan, gid: bytes, graph: Graph) -> None:
        plan.copy(txn, store, "graph", gid)
        plan.copy(txn, store, "profile", gid)
        for member in graph.members:
            plan.copy(txn, store, "identity", identity_key(graph.sandbox, member.key))

    def _copy_accounts_of(self, txn: lmdb.Transaction, store: Store, plan: Plan, owner: bytes) -> None:
        for reverse, value in prefix_items(txn, store.person_account, owner):
            plan.local.append(("person_account", reverse, value))
            plan.copy(txn, store, "account_meta", reverse[len(owner):].partition(b"\0")[2])

    def _plan_account(self, txn: lmdb.Transaction, store: Store, q: lookups.AccountLookup) -> Plan | None:
        """Accounts and their links are replicated; the people's fragments are not."""
        aid = accounts.account_id(q.sandbox, q.account_key)
        if txn.get(aid, db=store.account_meta) is None:
            return None
        plan = Plan()
        plan.copy(txn, store, "account_meta", aid)
        plan.copy_prefix(txn, store, "account", aid)
        plan.copy_prefix(txn, store, "account_person", aid)
        for _, value in prefix_items(txn, store.account_person, aid):
            identity = _decode_link(value).identity
            plan.copy(txn, store, "identity", identity_key(q.sandbox, identity))
            gid = txn.get(identity_key(q.sandbox, identity), db=store.identity)
            if gid is None:
                continue
            graph = identity_graph.load(txn, store, bytes(gid))
            if graph is None:
                continue
            plan.copy(txn, store, "graph", bytes(gid))
            for member in graph.members:
                owner = owner_id(graph.sandbox, member.key)
                plan.part(self.placement.shard_of(owner)).scans.append(Scan("fragment", owner))
        return plan

    def close(self) -> None:
        self.scratch.close()


_decode_link = msgspec.msgpack.Decoder(accounts.AccountLink).decode
