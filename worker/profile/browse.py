"""Answering the workspace's browse queries from a read transaction (see `inlet.browse`).

The `profile` database (graph id → last modified) is the index by update time: a page is the
shard's matching profiles ordered newest first. It is read whole on every query, which costs
about a microsecond per profile; an operator's page of a store of a million profiles answers
in about a second, and a store that outgrows that needs a maintained time index (noted in
docs/profile.md). A dataset sample looks at no more than `SAMPLE_SCAN` identities.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import lmdb
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from inlet import browse
from inlet.computed_attributes import Definition
from worker.profile import identity_graph
from worker.profile.accounts import AccountMeta
from worker.profile.aggregates import Partial, add, combine
from worker.profile.computed import Compiled, event_type_of
from worker.profile.placement import Placement
from worker.profile.store import (
    ID_BYTES,
    Graph,
    Store,
    decode_event,
    decode_fragment,
    decode_meta,
    event_bound,
    event_timestamp,
    owner_id,
    prefix_items,
)

log = logging.getLogger("inlet.worker.profile.browse")

SAMPLE_SCAN = 20_000  # identities looked at for a dataset sample
EVENTS_PER_OWNER = 50  # newest events of an identity looked at for a dataset sample
SHOWN_IDENTITIES = 4
DEVICES = frozenset({"ECID", "GAID", "IDFA", "AAID"})
PREVIEW_EVENTS = 100_000  # events of one profile a preview reads at most

_json = msgspec.json.Encoder().encode
_decode_account_meta = msgspec.msgpack.Decoder(AccountMeta).decode
_decode_document = msgspec.json.Decoder(dict[str, Any]).decode


class Browser:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time, placement: Placement | None = None,
                 nc: Client | None = None, timeout: float = 5.0) -> None:
        self.store = store
        self.clock = clock
        self.placement = placement  # None: one shard, every answer is local
        self.nc = nc
        self.timeout = timeout

    def answer(self, data: bytes) -> bytes:
        try:
            query = browse.decode_query(data)
        except msgspec.DecodeError as exc:
            return browse.encode(browse.Missing(detail=f"invalid query: {exc}"))
        with self.store.env.begin() as txn:
            if isinstance(query, browse.ProfilesQuery):
                return browse.encode(self._profiles(txn, query))
            if isinstance(query, browse.AccountsQuery):
                return browse.encode(self._accounts(txn, query))
            return browse.encode(self._preview(txn, query))

    def _identities(self, txn: lmdb.Transaction, sandbox: str, namespace: str) -> Iterator[tuple[str, bytes]]:
        """(identity key, graph id) of the sandbox, of one namespace when given."""
        prefix = f"{sandbox}\0{namespace + ':' if namespace else ''}".encode()
        skip = len(sandbox) + 1
        for key, gid in prefix_items(txn, self.store.identity, prefix):
            yield key[skip:].decode(errors="replace"), gid

    def _candidates(self, txn: lmdb.Transaction, q: browse.ProfilesQuery) -> tuple[list[tuple[bytes, bytes]], bool]:
        """(graph id, owner id) of the identities the search and namespace match, in key order;
        for a dataset sample at most `SAMPLE_SCAN` of them (and whether the scan stopped there).
        The owner id is filled only for a dataset sample (it decides where the data lives)."""
        found: list[tuple[bytes, bytes]] = []
        needle = q.search.lower()
        for key, gid in self._identities(txn, q.sandbox, q.namespace):
            if needle and needle not in key.partition(":")[2].lower():
                continue
            if q.dataset:
                if len(found) >= SAMPLE_SCAN:
                    return found, True
                found.append((gid, owner_id(q.sandbox, key)))
            else:
                found.append((gid, b""))
        return found, False

    def _profiles(self, txn: lmdb.Transaction, q: browse.ProfilesQuery,
                  holding: set[bytes] | None = None) -> browse.ProfilesPage:
        """A page of the sandbox's profiles. `holding`: the sampled owners that hold `q.dataset`,
        gathered from the shards that keep their data (N shards); None reads this store."""
        wanted: set[bytes] | None = None
        scanned, truncated = 0, False
        if q.search or q.namespace or q.dataset:
            candidates, truncated = self._candidates(txn, q)
            if q.dataset:
                scanned = len(candidates)
                if holding is None:
                    holding = {owner for _, owner in candidates if self._holds(txn, owner, q.dataset)}
                wanted = {gid for gid, owner in candidates if owner in holding}
            else:
                wanted = {gid for gid, _ in candidates}
        rows: list[tuple[int, bytes]] = []
        cursor = txn.cursor(self.store.profile)
        for stored_key, raw in cursor:
            gid = bytes(stored_key)
            if wanted is not None and gid not in wanted:
                continue
            meta = decode_meta(raw)
            if meta.sandbox == q.sandbox:
                rows.append((meta.last_modified_ms, gid))
        after = (q.after[0], bytes.fromhex(q.after[1])) if q.after else None
        following = [r for r in rows if after is None or _later(after, r)]
        ordered = heapq.nsmallest(q.limit, following, key=lambda r: (-r[0], r[1]))
        page = []
        for modified, gid in ordered:
            graph = identity_graph.load(txn, self.store, gid)
            # People's identities before devices' (a list is read by email, not by ECID).
            members = sorted(graph.members, key=lambda m: (m.key.partition(":")[0] in DEVICES, m.first_seen_ms,
                                                            m.key)) if graph else []
            page.append(browse.ProfileRow(profile_id=gid.hex(), last_modified_ms=modified,
                                          identities=[m.key for m in members[:SHOWN_IDENTITIES]],
                                          identity_count=len(members)))
        return browse.ProfilesPage(rows=page, matched=len(rows), remaining=len(following), scanned=scanned,
                                   truncated=truncated)

    def _holds(self, txn: lmdb.Transaction, owner: bytes, dataset: str) -> bool:
        """Whether this identity has attributes from the dataset, or one of its newest events."""
        if txn.get(owner + dataset.encode(), db=self.store.fragment) is not None:
            return True
        cursor = txn.cursor(self.store.event)
        positioned = cursor.set_range(owner + b"\xff" * 8)
        positioned = cursor.prev() if positioned else cursor.last()
        for _ in range(EVENTS_PER_OWNER):
            if not positioned or not bytes(cursor.key()).startswith(owner):
                return False
            if decode_event(cursor.value()).dataset == dataset:
                return True
            positioned = cursor.prev()
        return False

    def _accounts(self, txn: lmdb.Transaction, q: browse.AccountsQuery) -> browse.AccountsPage:
        needle = q.search.lower()
        rows: list[browse.AccountRow] = []
        for aid, raw in txn.cursor(self.store.account_meta):
            meta = _decode_account_meta(raw)
            if meta.sandbox != q.sandbox:
                continue
            name = self._account_name(txn, bytes(aid))
            if needle and needle not in meta.key.lower() and needle not in name.lower():
                continue
            rows.append(browse.AccountRow(account_key=meta.key, name=name, last_modified_ms=meta.last_modified_ms))
        rows.sort(key=lambda r: (-r.last_modified_ms, r.account_key))
        return browse.AccountsPage(rows=rows[: q.limit], matched=len(rows))

    def _account_name(self, txn: lmdb.Transaction, aid: bytes) -> str:
        newest: tuple[int, str] = (-1, "")
        for _, value in prefix_items(txn, self.store.account, aid):
            field = decode_fragment(value).fields.get("accountName")
            if field is not None and isinstance(field.value, str) and field.ts > newest[0]:
                newest = (field.ts, field.value)
        return newest[1]

    def _resolve(self, txn: lmdb.Transaction, q: browse.PreviewQuery) -> tuple[bytes, Graph] | None:
        """The previewed profile (graphs and profile meta are the same on every shard)."""
        if q.identity is not None:
            gid = identity_graph.lookup(txn, self.store, q.sandbox, q.identity)
        else:
            try:
                gid = bytes.fromhex(q.profile_id or "")
            except ValueError:
                gid = None
        graph = identity_graph.load(txn, self.store, gid) if gid and len(gid) == ID_BYTES else None
        if gid is None or graph is None or graph.sandbox != q.sandbox or txn.get(gid, db=self.store.profile) is None:
            return None
        return gid, graph

    def _preview(self, txn: lmdb.Transaction, q: browse.PreviewQuery) -> browse.Answer:
        """The value the definition would have now, from the profile's stored events: the same
        matching (`Compiled`) and aggregation (`aggregates`) the worker counts with, over every
        identity of the profile, without writing anything."""
        found = self._resolve(txn, q)
        if found is None:
            return browse.Missing(detail="no such profile")
        gid, graph = found
        part = self._partial(txn, PreviewPart(definition=q.definition, sandbox=q.sandbox, now_ms=int(self.clock() * 1000),
                                              owners=[owner_id(q.sandbox, m.key) for m in graph.members]))
        return _preview_of(gid, q.definition, [part])

    def _partial(self, txn: lmdb.Transaction, q: PreviewPart) -> PreviewPartAnswer:
        """The definition's aggregate over these owners' events in its window, as a mergeable
        `Partial` (an owner's events are all in one store, so partials never overlap)."""
        compiled = Compiled(q.definition)
        start = compiled.start(q.now_ms)
        partial = Partial()
        counted = scanned = 0
        cursor = txn.cursor(self.store.event)
        for owner in q.owners:
            low, high = event_bound(owner, start), event_bound(owner, q.now_ms + 1)
            positioned = cursor.set_range(low)
            while positioned and scanned < PREVIEW_EVENTS:
                key = bytes(cursor.key())
                if key >= high:
                    break
                scanned += 1
                stored = decode_event(cursor.value())
                doc = _decode_document(stored.xdm)
                if compiled.counts(event_type_of(doc), doc):
                    if add(partial, compiled.function, compiled.value(doc), event_timestamp(key),
                           stored.message_id, stored.received_ms):
                        counted += 1
                positioned = cursor.next()
        return PreviewPartAnswer(partial=partial, counted=counted, scanned=scanned)

    # N shards (docs/scaling.md): one shard answers each browse query (queue group); the graph,
    # the profile index and the accounts are replicated, so it reads them locally, and asks
    # the shards that keep the data for what lives only there (dataset samples, preview events).

    async def respond(self, data: bytes) -> bytes:
        if self.placement is None or self.nc is None:
            return self.answer(data)
        try:
            query = browse.decode_query(data)
        except msgspec.DecodeError:
            return self.answer(data)  # the same refusal one shard gives
        try:
            if isinstance(query, browse.ProfilesQuery) and query.dataset:
                return browse.encode(await self._sharded_profiles(query))
            if isinstance(query, browse.PreviewQuery):
                return browse.encode(await self._sharded_preview(query))
        except Exception as exc:
            log.warning("A profile shard did not answer a browse part request (%r).", exc)
            return browse.encode(browse.Unavailable(
                detail=f"a profile shard did not answer in time ({type(exc).__name__})"))
        return self.answer(data)

    async def _sharded_profiles(self, q: browse.ProfilesQuery) -> browse.ProfilesPage:
        assert self.placement is not None
        with self.store.env.begin() as txn:
            candidates, _ = self._candidates(txn, q)
        by_shard: dict[int, list[bytes]] = {}
        for _, owner in candidates:
            by_shard.setdefault(self.placement.shard_of(owner), []).append(owner)
        answers = await asyncio.gather(*(self._ask(s, HoldsPart(sandbox=q.sandbox, dataset=q.dataset, owners=o))
                                         for s, o in by_shard.items()))
        holding = {owner for answer in answers if isinstance(answer, HoldsPartAnswer) for owner in answer.holding}
        with self.store.env.begin() as txn:
            return self._profiles(txn, q, holding)

    async def _sharded_preview(self, q: browse.PreviewQuery) -> browse.Answer:
        assert self.placement is not None
        with self.store.env.begin() as txn:
            found = self._resolve(txn, q)
        if found is None:
            return browse.Missing(detail="no such profile")
        gid, graph = found
        now_ms = int(self.clock() * 1000)
        by_shard: dict[int, list[bytes]] = {}
        for member in graph.members:
            owner = owner_id(q.sandbox, member.key)
            by_shard.setdefault(self.placement.shard_of(owner), []).append(owner)
        answers = await asyncio.gather(*(
            self._ask(s, PreviewPart(definition=q.definition, sandbox=q.sandbox, now_ms=now_ms, owners=o))
            for s, o in by_shard.items()))
        return _preview_of(gid, q.definition, [a for a in answers if isinstance(a, PreviewPartAnswer)])

    async def _ask(self, shard: int, request: Part) -> PartAnswer:
        assert self.placement is not None and self.nc is not None
        if shard == self.placement.shard:
            return self._read_part(request)
        reply = await self.nc.request(part_subject(shard), _encode_part(request), timeout=self.timeout)
        return _decode_part_answer(reply.data)

    def _read_part(self, request: Part) -> PartAnswer:
        with self.store.env.begin() as txn:
            if isinstance(request, HoldsPart):
                return HoldsPartAnswer(holding=[o for o in request.owners if self._holds(txn, o, request.dataset)])
            return self._partial(txn, request)

    async def serve_part(self, msg: Msg) -> None:
        try:
            request = _decode_part(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("Undecodable browse part request: %s", exc)
            return
        await msg.respond(_encode_part(self._read_part(request)))


PART_QUERY = "inlet.query.browse.part"


def part_subject(shard: int) -> str:
    return f"{PART_QUERY}.{shard}"


class HoldsPart(msgspec.Struct, kw_only=True, tag="holds", tag_field="kind"):
    """Which of these owners (all kept by the asked shard) hold attributes or recent events of
    the dataset."""

    sandbox: str
    dataset: str
    owners: list[bytes]


class PreviewPart(msgspec.Struct, kw_only=True, tag="preview", tag_field="kind"):
    """The definition's partial aggregate over these owners' events, at `now_ms`."""

    definition: Definition
    sandbox: str
    now_ms: int
    owners: list[bytes]


class HoldsPartAnswer(msgspec.Struct, kw_only=True, tag="holds", tag_field="kind"):
    holding: list[bytes]


class PreviewPartAnswer(msgspec.Struct, kw_only=True, tag="preview", tag_field="kind"):
    partial: Partial
    counted: int
    scanned: int


Part = HoldsPart | PreviewPart
PartAnswer = HoldsPartAnswer | PreviewPartAnswer
_encode_part = msgspec.msgpack.Encoder().encode
_decode_part = msgspec.msgpack.Decoder(Part).decode
_decode_part_answer = msgspec.msgpack.Decoder(PartAnswer).decode


def _preview_of(gid: bytes, definition: Definition, parts: list[PreviewPartAnswer]) -> browse.Preview:
    """The preview from the partial aggregates of the stores holding the profile's events."""
    counted, scanned = sum(p.counted for p in parts), sum(p.scanned for p in parts)
    result = combine([p.partial for p in parts], Compiled(definition).function)
    if result is None:
        return browse.Preview(profile_id=gid.hex(), scanned=scanned)
    value, updated = result
    return browse.Preview(profile_id=gid.hex(), value=msgspec.Raw(_json(value)), last_updated_ms=updated,
                          counted=counted, scanned=scanned)


def _later(after: tuple[int, bytes], row: tuple[int, bytes]) -> bool:
    """Whether `row` comes after `after` in newest-first, then profile id, order."""
    return (-row[0], row[1]) > (-after[0], after[1])
