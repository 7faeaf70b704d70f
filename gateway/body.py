"""Reading request bodies with a hard size limit, before anything is decoded.

The limit is enforced on `Content-Length` when present and again while streaming (a client
may lie or use chunked encoding), so an oversized body costs at most `limit` bytes of memory.
A gzip body (`Content-Encoding: gzip`) is inflated with the same limit on its output, so a
small bomb cannot expand past it, and must be gzip to its last byte: anything after the final
member is refused, since it would be data the client sent and we silently dropped.

Time is bounded too (`BodyDeadline`): a body must arrive within `[http] body_read_timeout` of
its request's headers, so a client sending a byte every few seconds (slow loris) holds a
connection for that long at most, not forever. Hypercorn cannot do this itself: its
`read_timeout` bounds each socket read, which a trickle resets, and would also cut long
responses such as the profile page's live stream (gateway/server.py).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.responses import problem
from inlet.outcomes import Reason, Rejected

log = logging.getLogger("inlet.gateway")

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


# RFC 1952 allows several gzip members back to back; clients send one. Each further member
# costs a copy of the rest of the body (zlib's `unused_data`), so their number is bounded.
MAX_GZIP_MEMBERS = 16


def inflate(data: bytes, limit: int, reason: Reason) -> bytes:
    """Every gzip member of the body, and nothing after the last one."""
    out = b""
    rest = data
    for _ in range(MAX_GZIP_MEMBERS):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise Rejected(Reason.malformed_json, f"gzip body is corrupt: {exc}") from None
        out += part
        if len(out) > limit or inflater.unconsumed_tail:
            raise Rejected(reason, f"inflated body exceeds the limit of {limit} bytes")
        if not inflater.eof:
            raise Rejected(Reason.malformed_json, "gzip body is truncated")
        rest = inflater.unused_data
        if not rest:
            return out
        if not rest.startswith(b"\x1f\x8b"):
            raise Rejected(Reason.malformed_json,
                           f"gzip body has {len(rest)} bytes of trailing data after its end")
    raise Rejected(Reason.malformed_json, f"gzip body has more than {MAX_GZIP_MEMBERS} members")


class BodyDeadline:
    """Pure ASGI middleware: the request body must be complete `timeout` seconds after the
    request's headers arrived. Past it, the app's next wait for body bytes raises `Rejected`
    (`request_timeout`, 408), which the endpoint answers in its own error shape like any bad
    body; an endpoint that does not catch it gets the AEP-shaped 408 here. Hypercorn then
    closes the connection, because the request it would have to finish reading never ended."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pending = _has_body(scope)  # body bytes still to come
        started = False

        async def receive_in_time() -> Message:
            nonlocal pending
            if not pending:  # the body is in (or already timed out): e.g. waiting for disconnect
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                pending = False
                raise Rejected(Reason.request_timeout,
                               f"the request body did not arrive within {self.timeout:g} s") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                pending = False
            return message

        async def send_started(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if pending and scope.get("http_version") in ("1.0", "1.1"):
                    # Answered before its body was read (a 401, a 413): Hypercorn closes such a
                    # connection, so say so, or a keep-alive client reuses it and fails.
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_started)
        except Rejected as rejected:
            if rejected.reason is not Reason.request_timeout or started:
                raise
            await problem(rejected)(scope, receive, send)
        except ClientDisconnect:
            # The client left before its body was in: nothing was accepted, nobody to answer,
            # nothing for an operator to do (Hypercorn would log it as an ERROR).
            log.debug("The client disconnected before sending its whole body.")


def _has_body(scope: Scope) -> bool:
    """Whether body bytes may follow the headers. HTTP/1.1 says so in its headers; an HTTP/2
    stream may carry a body without a length, so it counts as pending until it ends."""
    if scope.get("http_version") not in ("1.0", "1.1"):
        return True
    headers = dict(scope.get("headers", []))
    length = headers.get(b"content-length", b"").strip()
    return (length.isdigit() and int(length) > 0) or b"transfer-encoding" in headers


def require_json(request: Request) -> None:
    """JSON bodies only; `+json` media types (AEP's `vnd.adobe.xed`) count as JSON."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or media.endswith("+json") or media == "":
        return
    raise Rejected(Reason.unsupported_media_type, f"content type {media!r} is not JSON")
