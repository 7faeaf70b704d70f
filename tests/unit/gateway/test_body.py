"""Reading bodies: gzip must be gzip to its last byte (RFC 1952: one or more members, nothing
after), so nothing the client sent is silently dropped."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest
from starlette.requests import Request

from gateway import body
from inlet.outcomes import Reason, Rejected

DOC = b'{"events": [{"xdm": {"eventType": "web.webpagedetails.pageViews"}}]}'


def read(data: bytes, encoding: str = "gzip", limit: int = 1 << 20) -> bytes:
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)] or [b""]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-encoding", encoding.encode())]}
    return asyncio.run(body.read(Request(scope, receive), limit))


def test_a_gzip_body_is_inflated() -> None:
    assert read(gzip.compress(DOC)) == DOC


def test_concatenated_gzip_members_are_one_body() -> None:
    assert read(gzip.compress(DOC[:20]) + gzip.compress(DOC[20:])) == DOC


@pytest.mark.parametrize("garbage", [b"x", b"\x00" * 8, b"trailing garbage", b"\x1f"])
def test_trailing_data_after_the_gzip_stream_is_refused(garbage: bytes) -> None:
    with pytest.raises(Rejected) as refused:
        read(gzip.compress(DOC) + garbage)
    assert refused.value.reason is Reason.malformed_json and refused.value.status == 400
    assert "trailing" in refused.value.detail or "truncated" in refused.value.detail


def test_a_truncated_second_member_is_refused() -> None:
    second = gzip.compress(DOC)
    with pytest.raises(Rejected) as refused:
        read(gzip.compress(DOC) + second[: len(second) // 2])
    assert refused.value.reason is Reason.malformed_json


def test_the_limit_covers_every_member() -> None:
    with pytest.raises(Rejected) as refused:
        read(gzip.compress(DOC) + gzip.compress(DOC), limit=len(DOC) + 10)
    assert refused.value.reason is Reason.request_too_large


def test_the_body_deadline_answers_408_for_an_endpoint_that_does_not() -> None:
    """An endpoint that lets the timeout escape still answers in the AEP error shape."""

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await Request(scope, receive).body()  # never completes: the client stalls after one byte

    chunks = [{"type": "http.request", "body": b"{", "more_body": True}]
    sent: list[Any] = []

    async def stalled() -> Any:
        if chunks:
            return chunks.pop()
        await asyncio.Event().wait()  # nothing more ever arrives

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": []}
    asyncio.run(asyncio.wait_for(body.BodyDeadline(endpoint, timeout=0.05)(scope, stalled, send), 5))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    assert b'"code":"request_timeout"' in b"".join(m.get("body", b"") for m in sent[1:])


def test_the_number_of_gzip_members_is_bounded() -> None:
    """Each member costs a copy of the rest of the body: a thousand empty ones must not."""
    assert read(gzip.compress(b"") * (body.MAX_GZIP_MEMBERS - 1) + gzip.compress(DOC)) == DOC
    with pytest.raises(Rejected) as refused:
        read(gzip.compress(b"") * 1_000 + gzip.compress(DOC))
    assert refused.value.reason is Reason.malformed_json and "members" in refused.value.detail
