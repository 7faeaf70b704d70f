"""Account (B2B) profiles: business accounts, merged per account key, and the people in them.

Records of datasets of class `account` (XDM Business Account: `accountKey`, `accountName`,
`accountOrganization.industry`, ...) are fragments of an account, kept apart from people in
the `account` database under the account id (a hash of sandbox and account key) and merged
on read with the same merge-policy rules as profiles (`merge.py`).

A person belongs to an account through either
- a relation record (class `account-person`): a person identity in `identityMap` and an
  `accountKey`; `isActive: false` or a `delete` ends the link; or
- a person record (class `profile`) with `b2b.accountKey`: the person belongs to that account
  for as long as that dataset's record says so (a record without it, or a delete, ends it).

Links, like all data, belong to the identity that carried them (its owner id), not to a
profile: `account_person` (account id + owner id + dataset → `AccountLink`) lists an account's
people and `person_account` (owner id + dataset + NUL + account id) finds a person's links
again. A read resolves each linked identity to its profile through the identity graph, so
merges and unlinks of people need no change here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import lmdb
import msgspec

from inlet import lookups
from inlet.config import MergePolicy
from worker.profile import fragments, identity_graph, merge
from worker.profile.store import (
    ID_BYTES,
    Store,
    decode_fragment,
    identity_key,
    owner_id,
    prefix_items,
)

# The people's attributes an account lookup shows by default, beside their ids.
PERSON_FIELDS = ["person.name", "workEmail.address", "personalEmail.address", "b2b.personKey"]


class AccountMeta(msgspec.Struct, gc=False):
    sandbox: str
    key: str
    last_modified_ms: int


class AccountLink(msgspec.Struct, array_like=True, gc=False):
    identity: str  # "<ns>:<id>" of the owner identity that carried the link
    dataset: str
    via: str  # "relation" | "profile"
    ts: int


_encode = msgspec.msgpack.Encoder().encode
_decode_meta = msgspec.msgpack.Decoder(AccountMeta).decode
_decode_link = msgspec.msgpack.Decoder(AccountLink).decode
_json = msgspec.json.Encoder().encode


def account_id(sandbox: str, key: str) -> bytes:
    return hashlib.blake2b(f"{sandbox}\0{key}".encode(), digest_size=ID_BYTES, person=b"inlet-account").digest()


def _touch(txn: lmdb.Transaction, store: Store, aid: bytes, sandbox: str, key: str, ts: int) -> None:
    raw = txn.get(aid, db=store.account_meta)
    meta = _decode_meta(raw) if raw is not None else AccountMeta(sandbox, key, ts)
    meta.last_modified_ms = max(meta.last_modified_ms, ts)
    txn.put(aid, _encode(meta), db=store.account_meta)


def write_account(
    txn: lmdb.Transaction, store: Store, sandbox: str, key: str, dataset: str,
    document: dict[str, Any], operation: str, ts: int,
) -> None:
    """An account record: replace, patch or remove the dataset's fragment of the account."""
    aid = account_id(sandbox, key)
    fragments.write(txn, store, aid, dataset, document, operation, ts, db=store.account)
    _touch(txn, store, aid, sandbox, key, ts)


def _link(txn: lmdb.Transaction, store: Store, sandbox: str, key: str, owner: bytes, identity: str,
          dataset: str, via: str, ts: int) -> None:
    aid = account_id(sandbox, key)
    txn.put(aid + owner + dataset.encode(), _encode(AccountLink(identity, dataset, via, ts)), db=store.account_person)
    txn.put(owner + dataset.encode() + b"\0" + aid, b"", db=store.person_account)
    _touch(txn, store, aid, sandbox, key, ts)


def _unlink(txn: lmdb.Transaction, store: Store, owner: bytes, dataset: str, aid: bytes) -> None:
    txn.delete(aid + owner + dataset.encode(), db=store.account_person)
    txn.delete(owner + dataset.encode() + b"\0" + aid, db=store.person_account)


def relation(
    txn: lmdb.Transaction, store: Store, sandbox: str, key: str, owner: bytes, identity: str,
    dataset: str, active: bool, ts: int,
) -> None:
    """An account-person relation record: link, or (inactive, deleted) unlink."""
    if active:
        _link(txn, store, sandbox, key, owner, identity, dataset, "relation", ts)
    else:
        _unlink(txn, store, owner, dataset, account_id(sandbox, key))


def person_record(
    txn: lmdb.Transaction, store: Store, sandbox: str, key: str, owner: bytes, identity: str,
    dataset: str, operation: str, ts: int,
) -> None:
    """A person record: its `b2b.accountKey` (`key`, "" when absent) is the person's account
    through this dataset. A merge without the field leaves the link alone."""
    if operation == "merge" and not key:
        return
    prefix = owner + dataset.encode() + b"\0"
    for reverse, _ in prefix_items(txn, store.person_account, prefix):
        _unlink(txn, store, owner, dataset, reverse[len(prefix):])
    if key and operation != "delete":
        _link(txn, store, sandbox, key, owner, identity, dataset, "profile", ts)


def forget_person(txn: lmdb.Transaction, store: Store, owner: bytes) -> None:
    """A deleted profile leaves every account it belonged to."""
    for reverse, _ in prefix_items(txn, store.person_account, owner):
        dataset, _, aid = reverse[ID_BYTES:].partition(b"\0")
        txn.delete(aid + owner + dataset, db=store.account_person)
        txn.delete(reverse, db=store.person_account)


def keys_of(txn: lmdb.Transaction, store: Store, owners: list[bytes]) -> list[str]:
    """The account keys that the profile with these owner identities belongs to."""
    keys = set()
    for owner in owners:
        for reverse, _ in prefix_items(txn, store.person_account, owner):
            raw = txn.get(reverse[ID_BYTES:].partition(b"\0")[2], db=store.account_meta)
            if raw is not None:
                keys.add(_decode_meta(raw).key)
    return sorted(keys)


def view(
    txn: lmdb.Transaction, store: Store, q: lookups.AccountLookup, policy: MergePolicy
) -> lookups.AccountView | lookups.NotFound:
    """The merged account and one page of its people (ordered by profile id)."""
    aid = account_id(q.sandbox, q.account_key)
    raw = txn.get(aid, db=store.account_meta)
    if raw is None:
        return lookups.NotFound(detail=f"no account {q.account_key!r} in sandbox {q.sandbox!r}")
    meta = _decode_meta(raw)
    frags = [(key[ID_BYTES:].decode(), decode_fragment(value)) for key, value in prefix_items(txn, store.account, aid)]
    entity = fragments.unflatten(merge.select(merge.merge(frags, policy), q.fields))
    people: dict[bytes, list[lookups.PersonLink]] = {}
    for _, value in prefix_items(txn, store.account_person, aid):
        link = _decode_link(value)
        gid = txn.get(identity_key(q.sandbox, link.identity), db=store.identity)
        if gid is not None:
            people.setdefault(bytes(gid), []).append(
                lookups.PersonLink(identity=link.identity, dataset=link.dataset, via=link.via, linkedMs=link.ts))
    ordered = sorted(people)
    after = bytes.fromhex(q.after) if q.after else b""
    page = [gid for gid in ordered if gid > after][: q.limit]
    more = bool(page) and page[-1] != ordered[-1]
    return lookups.AccountView(
        account_id=aid.hex(),
        account_key=meta.key,
        entity=msgspec.Raw(_json(entity)),
        sources=sorted({dataset for dataset, _ in frags}),
        last_modified_ms=meta.last_modified_ms,
        merge_policy=policy.id,
        people=[_person(txn, store, gid, people[gid], policy, q.person_fields or PERSON_FIELDS) for gid in page],
        people_total=len(ordered),
        next=page[-1].hex() if more else None,
    )


def _person(txn: lmdb.Transaction, store: Store, gid: bytes, links: list[lookups.PersonLink],
            policy: MergePolicy, fields: list[str]) -> lookups.AccountPerson:
    graph = identity_graph.load(txn, store, gid)
    owners = [owner_id(graph.sandbox, m.key) for m in graph.members] if graph is not None else []
    leaves = merge.select(merge.merge(fragments.read(txn, store, owners), policy), fields)
    return lookups.AccountPerson(profile_id=gid.hex(), links=links, entity=msgspec.Raw(_json(fragments.unflatten(leaves))))
