"""The parts of XDM that inlet reads, as msgspec Structs.

XDM documents are open-ended: a tenant adds `_tenant` fields, a schema grows. inlet reads only
what routing and profiles need (`_id`, `timestamp`, `eventType`, `identityMap`) and carries the
rest untouched as `msgspec.Raw`. Wire Structs therefore ignore unknown fields (forward
compatibility); they never forbid them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
AuthenticatedState = Literal["ambiguous", "authenticated", "loggedOut"]


class IdentityItem(msgspec.Struct, kw_only=True):
    id: NonEmpty
    authenticatedState: AuthenticatedState = "ambiguous"
    primary: bool = False


# Namespace code → identities; the XDM `identityMap` field group.
IdentityMap = dict[NonEmpty, list[IdentityItem]]


class XdmHead(msgspec.Struct, kw_only=True):
    """The routing fields of any XDM record or ExperienceEvent."""

    id: str | None = msgspec.field(name="_id", default=None)
    timestamp: str | None = None
    eventType: str | None = None
    identityMap: IdentityMap = {}


decode_head = msgspec.json.Decoder(XdmHead).decode


class Identity(msgspec.Struct, frozen=True, array_like=True, order=True):
    """One identity, namespace code normalised; `ns:id` is its key everywhere."""

    ns: str
    id: str
    primary: bool = False

    @property
    def key(self) -> str:
        return f"{self.ns}:{self.id}"


def normalise_namespace(code: str) -> str:
    """Namespace codes are case-insensitive; keep the standard spellings."""
    return STANDARD_NAMESPACES.get(code.lower(), code)


STANDARD_NAMESPACES = {
    code.lower(): code for code in ("ECID", "Email", "Phone", "CRMID", "GAID", "IDFA", "AAID")
}


def normalise_value(ns: str, value: str) -> str:
    """Identity values that differ only in spelling are the same person."""
    value = value.strip()
    if ns == "Email":
        return value.lower()
    return value


def identities(head: XdmHead) -> list[Identity]:
    """The identities of a message, deduplicated, primary first, then in document order."""
    seen: set[tuple[str, str]] = set()
    out: list[Identity] = []
    for code, items in head.identityMap.items():
        ns = normalise_namespace(code)
        for item in items:
            value = normalise_value(ns, item.id)
            if not value or (ns, value) in seen:
                continue
            seen.add((ns, value))
            out.append(Identity(ns, value, item.primary))
    out.sort(key=lambda i: not i.primary)
    return out
