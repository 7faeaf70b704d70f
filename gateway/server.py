"""Serving the gateway with Hypercorn: HTTP/1.1 and HTTP/2 cleartext (h2c) on one port.

One process serves on one core; `inlet up` starts `[http] processes` of them (default one per
core) on the same port with `[http] reuse_port` (SO_REUSEPORT), and the kernel balances new
connections over them. They share nothing but NATS: dedupe is JetStream's, rate limits are
per process (docs/operations.md: gateway processes).

Hypercorn's defaults are tuned for browsers talking to a web app, not for an ingestion edge:
it closes each connection after 1,000 requests, which makes every busy HTTP/2 client
reconnect constantly. We raise that limit from config.

Slow clients, by phase (what Hypercorn bounds, and what we add):
- connection open, request headers not complete: `keep_alive_timeout` (5 s) runs from the
  moment the connection is idle, and is not reset by a trickle of header bytes, so slow headers
  are closed after 5 s; headers larger than `h11_max_incomplete_size` are refused (431/400).
- headers in, body trickling: nothing in Hypercorn (its `read_timeout` is per socket read, so a
  byte every few seconds resets it; and it would cut a client quietly waiting for a long
  response, such as the profile page's live stream, so we leave it off). The app's
  `BodyDeadline` (gateway/body.py) answers 408 after `[http] body_read_timeout` and Hypercorn
  closes the connection, since the request it would have to finish reading never ended.
- HTTP/2: at most `h2_max_concurrent_streams` (100) streams per connection, each under the same
  body deadline; header lists up to 64 KiB, frames up to 16 KiB (Hypercorn's defaults).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from gateway.app import create_app
from inlet.config import Config

log = logging.getLogger("inlet.gateway")


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """The port, bound before anything else starts, so a taken port fails at once rather than
    after the NATS connection and start-up. With `reuse_port` (SO_REUSEPORT) every gateway
    process `inlet up` starts binds its own socket to the same port and the kernel spreads new
    connections over them (each connection stays with one process, so HTTP/2 streams never
    cross processes)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(info[4])
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def hypercorn_config(config: Config, sock: socket.socket | None = None) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [f"fd://{sock.fileno()}" if sock is not None else f"{config.http.host}:{config.http.port}"]
    hc.keep_alive_max_requests = config.http.keep_alive_max_requests
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 10
    # The largest request line + headers Hypercorn buffers (bodies stream; gateway.body bounds them).
    hc.h11_max_incomplete_size = 64 * 1024
    hc.keep_alive_timeout = 5  # seconds idle, or to finish sending the request headers
    hc.read_timeout = None  # per-read, reset by a trickle; BodyDeadline bounds bodies instead
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
    sock = listening_socket(config.http.host, config.http.port, config.http.reuse_port)
    log.info("Gateway listening on %s://%s:%d%s (pid %d).", scheme, config.http.host, config.http.port,
             ", port shared (SO_REUSEPORT)" if config.http.reuse_port else "", os.getpid())
    # Hypercorn adopts the socket (`fd://`) and closes it on shutdown.
    await serve(create_app(config), hypercorn_config(config, sock),  # type: ignore[arg-type]
                shutdown_trigger=stop.wait)
