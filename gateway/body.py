"""Reading request bodies with a hard size limit, before anything is decoded.

The limit is enforced on `Content-Length` when present and again while streaming (a client
may lie or use chunked encoding), so an oversized body costs at most `limit` bytes of memory.
A gzip body (`Content-Encoding: gzip`) is inflated with the same limit on its output, so a
small bomb cannot expand past it.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
from starlette.requests import Request

from inlet.outcomes import Reason, Rejected

JSON_TYPES = ("application/json", "text/plain")


async def read(request: Request, limit: int, reason: Reason = Reason.request_too_large) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejected(reason, f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(reason, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "x-gzip"):
        raise Rejected(Reason.unsupported_media_type, f"content encoding {encoding!r} is not supported")
    return inflate(data, limit, reason)


async def read_json(request: Request, limit: int) -> Any:
    """A small JSON body (an API's document) as plain values; the endpoint converts it after
    editing it (PATCH, read-only fields), which is why this is not a Struct."""
    try:
        return msgspec.json.decode(await read(request, limit))
    except msgspec.DecodeError as exc:
        raise Rejected(Reason.malformed_json, f"body is not valid JSON: {exc}") from None


def inflate(data: bytes, limit: int, reason: Reason) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise Rejected(Reason.malformed_json, f"gzip body is corrupt: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise Rejected(reason, f"inflated body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise Rejected(Reason.malformed_json, "gzip body is truncated")
    return out


def require_json(request: Request) -> None:
    """JSON bodies only; `+json` media types (AEP's `vnd.adobe.xed`) count as JSON."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or media.endswith("+json") or media == "":
        return
    raise Rejected(Reason.unsupported_media_type, f"content type {media!r} is not JSON")
