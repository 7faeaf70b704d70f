"""The baseline: a bare Starlette app on the gateway's own Hypercorn settings and event loop.

`POST /collection/{id}` reads the body and decodes it into the same msgspec Structs the gateway
decodes into; `POST /collection/batch/{id}` decodes the envelope and then each message. Both
answer a tiny JSON. No validation, no middleware, no NATS, no ack to wait for: the gateway's
throughput as a fraction of this one's is the cost of everything inlet adds to the HTTP layer.

Run as `python -m bench.baseline --port N` with the gateway's environment (`INLET_CONFIG`...),
so `gateway.server.hypercorn_config` builds the very same server settings; like `inlet
gateway`, it runs on uvloop when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import msgspec
from hypercorn.asyncio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.decode import Batch, StreamingMessage
from gateway.server import hypercorn_config
from inlet.config import load

_decode = msgspec.json.Decoder(StreamingMessage).decode
_decode_batch = msgspec.json.Decoder(Batch).decode
_OK = b'{"ok":true}'


async def collect(request: Request) -> Response:
    _decode(await request.body())
    return Response(_OK, media_type="application/json")


async def collect_batch(request: Request) -> Response:
    for raw in _decode_batch(await request.body()).messages:
        _decode(raw)
    return Response(_OK, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(_OK, media_type="application/json")


def app() -> Starlette:
    return Starlette(routes=[
        Route("/collection/{connection_id}", collect, methods=["POST"]),
        Route("/collection/batch/{connection_id}", collect_batch, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = load({**os.environ, "INLET_HTTP_PORT": str(args.port)})
    serving = serve(app(), hypercorn_config(config))  # type: ignore[arg-type]
    try:
        import uvloop

        uvloop.run(serving)
    except ImportError:
        asyncio.run(serving)


if __name__ == "__main__":
    main()
