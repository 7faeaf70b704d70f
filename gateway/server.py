"""Serving the gateway with Hypercorn: HTTP/1.1 and HTTP/2 cleartext (h2c) on one port.

Hypercorn's defaults are tuned for browsers talking to a web app, not for an ingestion edge:
it closes each connection after 1,000 requests, which makes every busy HTTP/2 client
reconnect constantly. We raise that limit from config.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from gateway.app import create_app
from inlet.config import Config

log = logging.getLogger("inlet.gateway")


def hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [f"{config.http.host}:{config.http.port}"]
    hc.keep_alive_max_requests = config.http.keep_alive_max_requests
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 10
    # Hypercorn buffers no more than this per request body; our own limit is enforced too.
    hc.h11_max_incomplete_size = 64 * 1024
    if config.http.certfile:
        hc.certfile, hc.keyfile = config.http.certfile, config.http.keyfile
        hc.alpn_protocols = ["h2", "http/1.1"]
    return hc


async def main(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scheme = "https" if config.http.certfile else "http"
    log.info("Gateway listening on %s://%s:%d.", scheme, config.http.host, config.http.port)
    await serve(create_app(config), hypercorn_config(config), shutdown_trigger=stop.wait)  # type: ignore[arg-type]
