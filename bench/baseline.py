"""The baseline: a bare Starlette endpoint on the same Hypercorn settings as the gateway.

It reads the body and decodes it into the same msgspec Structs the gateway uses, then
answers a tiny JSON, with no validation, no NATS and no ack to wait for. The gateway's
throughput as a fraction of this is the cost of everything inlet adds to the HTTP layer.
"""

from __future__ import annotations

import argparse
import asyncio

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


async def collect(request: Request) -> Response:
    _decode(await request.body())
    return Response(b'{"ok":true}', media_type="application/json")


async def collect_batch(request: Request) -> Response:
    for raw in _decode_batch(await request.body()).messages:
        _decode(raw)
    return Response(b'{"ok":true}', media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = load({"INLET_HTTP_PORT": str(args.port)})
    app = Starlette(routes=[
        Route("/collection/{connection_id}", collect, methods=["POST"]),
        Route("/collection/batch/{connection_id}", collect_batch, methods=["POST"]),
    ])
    try:
        import uvloop

        uvloop.run(serve(app, hypercorn_config(config)))  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(serve(app, hypercorn_config(config)))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
