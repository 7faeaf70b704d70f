"""Liveness and readiness, for load balancers and orchestrators.

`/healthz` says the process serves HTTP; `/readyz` says it can also accept data (JetStream is
reachable and the ingest stream exists), so a balancer stops sending to a gateway whose bus is
down instead of collecting 503s from it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.responses import json_response


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = request.app.state
    try:
        if not state.nc.is_connected:
            raise ConnectionError("not connected")
        await state.js.stream_info(state.config.nats.stream)
    except Exception as exc:
        return json_response({"status": "unavailable", "detail": str(exc) or type(exc).__name__}, 503,
                             {"Retry-After": "1"})
    return json_response({"status": "ready"})
