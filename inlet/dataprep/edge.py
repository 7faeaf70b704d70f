"""Data Prep for the Edge Network: a datastream's mapping set turns an event's free-form
`data` (what the Web and mobile SDKs send beside `xdm`) into XDM fields, before identities
are read and the schema is checked, as Adobe's Data Prep for Data Collection does. The
mapped fields are merged into the event's XDM (a mapped value wins over one the event sent);
the `data` itself still rides to the lake and the timeline unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from inlet.dataprep.functions import MappingFailure
from inlet.dataprep.mapping import Mapper, MappingSet
from inlet.outcomes import Reason, Rejected

_encode = msgspec.json.Encoder().encode


@functools.lru_cache(maxsize=64)
def _mapper(document: bytes) -> Mapper:
    return Mapper(msgspec.json.decode(document, type=MappingSet))


def map_data(mapping: MappingSet | None, data: msgspec.Raw, xdm: dict[str, Any], index: int) -> dict[str, Any]:
    """`xdm` with the mapped fields of `data` merged in (unchanged without a mapping or data)."""
    if mapping is None or bytes(data) == b"null":
        return xdm
    source = msgspec.json.decode(data)
    if not isinstance(source, dict):
        raise Rejected(Reason.invalid_message, f"events[{index}].data must be an object to be mapped")
    try:
        mapped = _mapper(_encode(mapping)).apply(source)
    except MappingFailure as failure:
        raise Rejected(Reason.invalid_message,
                       f"events[{index}].data: mapping to {failure.destination!r} failed in "
                       f"{failure.function}({failure.value!r}): {failure.detail}") from None
    return _merge(xdm, mapped)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        out[key] = _merge(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return out
