"""Request ids and request metrics, as pure ASGI middleware (no `BaseHTTPMiddleware`, which
buffers and costs a task per request).

Each request gets an id: the client's `x-request-id` when it is a sane token (so a trace can
cross nginx and the client), else a fresh one. It is set for the request's log records and
echoed in the response. Requests are counted by route template (the endpoint that served
them), never by raw path, so the metric's cardinality stays bounded.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inlet.telemetry import HTTP_REQUESTS, request_id

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _SANE.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            endpoint = scope.get("endpoint")
            route = f"{endpoint.__module__.rsplit('.', 1)[-1]}.{endpoint.__name__}" if endpoint else "unmatched"
            HTTP_REQUESTS.labels(route, str(status)).inc()
            request_id.reset(token)
