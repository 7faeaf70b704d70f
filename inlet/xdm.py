"""The parts of XDM that inlet reads, as msgspec Structs.

XDM documents are open-ended: a tenant adds `_tenant` fields, a schema grows. inlet reads only
what routing and profiles need (`_id`, `timestamp`, `eventType`, `identityMap`) and carries the
rest untouched as `msgspec.Raw`. Wire Structs therefore ignore unknown fields (forward
compatibility); they never forbid them.
"""

from __future__ import annotations

import functools
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
    authenticated: bool = False

    @property
    def key(self) -> str:
        return f"{self.ns}:{self.id}"


STANDARD_NAMESPACES = ("ECID", "Email", "Phone", "CRMID", "GAID", "IDFA", "AAID")


class Namespaces:
    """Namespace codes are case-insensitive: each known code keeps one spelling."""

    def __init__(self, custom: list[str] | tuple[str, ...] = ()) -> None:
        self.codes: dict[str, str] = {code.lower(): code for code in (*STANDARD_NAMESPACES, *custom)}

    def code(self, raw: str) -> str:
        stripped = raw.strip()
        return self.codes.get(stripped.lower(), stripped)


STANDARD = Namespaces()


@functools.lru_cache(maxsize=16)
def namespaces(custom: tuple[str, ...]) -> Namespaces:
    """The namespaces of a configuration (`tuple(config.identity.namespaces)`), built once."""
    return Namespaces(custom)


def normalise_namespace(code: str) -> str:
    return STANDARD.code(code)


_PHONE_FORMATTING = str.maketrans("", "", " -.()/\t")


def normalise_value(ns: str, value: str) -> str:
    """Identity values that differ only in spelling are the same person.

    Email: trimmed and lower-cased. Phone: E.164 (`+` and 8 to 15 digits) when the number
    carries its country code (`+` or `00`); otherwise its digits alone, since the country
    cannot be guessed.
    """
    value = value.strip()
    if ns == "Email":
        return value.lower()
    if ns == "Phone":
        compact = value.translate(_PHONE_FORMATTING)
        if compact.startswith("00"):
            compact = "+" + compact[2:]
        digits = compact[1:] if compact.startswith("+") else compact
        if digits.isdigit():
            if compact.startswith("+") and 8 <= len(digits) <= 15:
                return "+" + digits
            return digits
    return value


def identities(head: XdmHead, namespaces: Namespaces = STANDARD) -> list[Identity]:
    """The identities of a message, deduplicated, primary first, then in document order."""
    seen: set[tuple[str, str]] = set()
    out: list[Identity] = []
    for code, items in head.identityMap.items():
        ns = namespaces.code(code)
        for item in items:
            value = normalise_value(ns, item.id)
            if not value or (ns, value) in seen:
                continue
            seen.add((ns, value))
            out.append(Identity(ns, value, item.primary, item.authenticatedState == "authenticated"))
    out.sort(key=lambda i: not i.primary)
    return out
