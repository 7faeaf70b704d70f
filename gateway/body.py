"""Reading request bodies with a hard size limit, before anything is decoded.

The limit is enforced on `Content-Length` when present and again while streaming (a client
may lie or use chunked encoding), so an oversized body costs at most `limit` bytes of memory.
"""

from __future__ import annotations

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
    return b"".join(chunks)


def require_json(request: Request) -> None:
    """JSON bodies only; `+json` media types (AEP's `vnd.adobe.xed`) count as JSON."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or media.endswith("+json") or media == "":
        return
    raise Rejected(Reason.unsupported_media_type, f"content type {media!r} is not JSON")
