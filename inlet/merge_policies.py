"""Merge policies as AEP documents, kept in a NATS key-value bucket shared by all processes.

The config file seeds the bucket (a policy that already exists there is left alone, so edits
made through the API survive restarts); the API edits it; every profile worker watches it and
applies a change on the next read, since merging happens on read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from inlet import buckets, watch
from inlet.config import Config, MergePolicy

log = logging.getLogger("inlet.merge_policies")

BUCKET = "inlet_merge_policies"


class SchemaRef(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Literal["_xdm.context.profile"] = "_xdm.context.profile"


class IdentityGraph(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["pdg", "none"] = "pdg"


class AttributeMerge(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["timestampOrdered", "dataSetPrecedence"] = "timestampOrdered"
    order: list[str] = []


class PolicyDocument(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """AEP's merge policy fields (`/data/core/ups/config/mergePolicies`). Unknown fields are
    refused: a misspelt field accepted and ignored would be a write that changes nothing.
    `sandbox` is stored as the sandbox's name; the API shows AEP's sandbox object."""

    id: str = ""
    name: str = ""
    imsOrgId: str = ""
    sandbox: str = "prod"
    schema: SchemaRef = msgspec.field(default_factory=SchemaRef)
    identityGraph: IdentityGraph = msgspec.field(default_factory=IdentityGraph)
    attributeMerge: AttributeMerge = msgspec.field(default_factory=AttributeMerge)
    # Stored and shown as AEP does; inlet has no edge, so it changes nothing else.
    isActiveOnEdge: bool = False
    default: bool = False
    version: int = 1
    updateEpoch: int = 0


encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(PolicyDocument).decode


def to_policy(doc: PolicyDocument) -> MergePolicy:
    return MergePolicy(
        id=doc.id,
        name=doc.name,
        sandbox=doc.sandbox,
        identity_graph=doc.identityGraph.type,
        attribute_merge=doc.attributeMerge.type,
        order=list(doc.attributeMerge.order),
        default=doc.default,
    )


def to_document(policy: MergePolicy, org: str) -> PolicyDocument:
    return PolicyDocument(
        id=policy.id,
        name=policy.name,
        imsOrgId=org,
        sandbox=policy.sandbox,
        identityGraph=IdentityGraph(type=policy.identity_graph),
        attributeMerge=AttributeMerge(type=policy.attribute_merge, order=list(policy.order)),
        default=policy.default,
        updateEpoch=int(time.time()),
    )


def key(sandbox: str, policy_id: str) -> str:
    return f"{sandbox}.{policy_id}"


async def open_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    return await buckets.open_bucket(js, BUCKET, replicas=replicas)


async def seed(kv: KeyValue, config: Config) -> None:
    """Add the config file's policies that the bucket does not have yet."""
    for policy in config.merge_policies:
        try:
            await kv.create(key(policy.sandbox, policy.id), encode(to_document(policy, config.org)))
        except KeyWrongLastSequenceError:
            pass  # exists: the bucket (maybe edited through the API) wins


class PolicyCache:
    """The current policies by (sandbox, id), kept up to date by a bucket watch."""

    def __init__(self, config: Config) -> None:
        self.policies: dict[tuple[str, str], MergePolicy] = {
            (p.sandbox, p.id): p for p in config.merge_policies
        }
        self._task: asyncio.Task[None] | None = None

    def for_sandbox(self, sandbox: str) -> list[MergePolicy]:
        return [p for (s, _), p in self.policies.items() if s == sandbox]

    async def start(self, kv: KeyValue) -> None:
        self._task = await watch.follow(kv, self._apply)

    def _apply(self, entry_key: str, value: bytes | None) -> None:
        sandbox, _, policy_id = entry_key.partition(".")
        if value is None:
            self.policies.pop((sandbox, policy_id), None)
            return
        try:
            self.policies[(sandbox, policy_id)] = to_policy(decode(value))
        except msgspec.DecodeError as exc:
            log.warning("Ignoring unreadable merge policy %s: %s", entry_key, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
