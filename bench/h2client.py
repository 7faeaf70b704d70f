"""HTTP/2 cleartext load from Python: the `h2` state machine over asyncio, no HTTP library.

It is the fallback when h2load is absent, and the only driver here that can send a different
body on every request (h2load repeats one file, which JetStream then deduplicates). It is a
closed loop: each connection keeps `streams` requests in flight and sends the next one as soon
as a response ends. Only responses that end inside the measured window count; requests still
in flight at the deadline are finished (for up to 10 s, uncounted) before the connections close.

A Python client costs CPU that the server then lacks on a 2-core box, so the caller reports
the client's CPU beside every figure: a run where the client sits near 100% measured the
client, not the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.settings

from bench.measure import Window

# Bodies are produced by the caller; each call returns a new one (unique event ids).
Bodies = Callable[[], bytes]
# From a response's status and body, the number of events the server accepted.
Counter = Callable[[int, bytes], int]

_CONFIG = h2.config.H2Configuration(
    client_side=True, header_encoding=None, validate_outbound_headers=False,
    normalize_outbound_headers=False, validate_inbound_headers=False,
)
_WINDOW = 2**30
_DRAIN_SECONDS = 10.0


class _Stream:
    __slots__ = ("body", "pending", "started", "status")

    def __init__(self, started: float, pending: memoryview) -> None:
        self.started = started
        self.status = 0
        self.body: list[bytes] = []
        self.pending = pending


class _Connection(asyncio.Protocol):
    def __init__(self, load: _Load) -> None:
        self.load = load
        self.h2 = h2.connection.H2Connection(config=_CONFIG)
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.error: BaseException | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self.h2.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW}
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_WINDOW - 65_535)
        for _ in range(self.load.streams):
            self._request()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.load.stopped:
            self.load.failed_connections += 1
        if not self.closed.done():
            self.closed.set_result(None)

    def _request(self) -> None:
        body = self.load.bodies()
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, self.load.headers + [(b"content-length", str(len(body)).encode())])
        self.streams[sid] = _Stream(time.perf_counter(), memoryview(body))
        self._send_body(sid)

    def _send_body(self, sid: int) -> None:
        stream = self.streams[sid]
        pending = stream.pending
        while pending:
            size = min(len(pending), self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if size <= 0:
                break
            self.h2.send_data(sid, pending[:size].tobytes(), end_stream=size == len(pending))
            pending = pending[size:]
        stream.pending = pending

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            self._receive(data)
        except Exception as exc:  # noqa: BLE001  (a driver bug must stop the run, not shrink the figure)
            self.error = exc
            assert self.transport is not None
            self.transport.close()

    def _receive(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                for name, value in event.headers:
                    if name == b":status":
                        self.streams[event.stream_id].status = int(value)
            elif isinstance(event, h2.events.DataReceived):
                self.streams[event.stream_id].body.append(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._ended(self.streams.pop(event.stream_id))
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None:
                    self._ended(stream)  # status 0: counted as failed
            elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                for sid, stream in list(self.streams.items()):
                    if stream.pending:
                        self._send_body(sid)
            elif isinstance(event, h2.events.ConnectionTerminated) and not self.load.stopped:
                self.load.failed_connections += 1
        self._flush()

    def _ended(self, stream: _Stream) -> None:
        load = self.load
        now = time.perf_counter()
        body = b"".join(stream.body)
        load.window.add(now, now - stream.started, stream.status, load.count(stream.status, body))
        if not load.stopped:
            self._request()


class _Load:
    def __init__(self, host: str, port: int, path: str, bodies: Bodies, count: Counter,
                 streams: int, window: Window) -> None:
        self.headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", f"{host}:{port}".encode()),
                        (b":path", path.encode()), (b"content-type", b"application/json")]
        self.bodies = bodies
        self.count = count
        self.streams = streams
        self.window = window
        self.stopped = False
        self.failed_connections = 0


async def _run(host: str, port: int, path: str, bodies: Bodies, count: Counter, connections: int,
               streams: int, window: Window) -> int:
    loop = asyncio.get_running_loop()
    load = _Load(host, port, path, bodies, count, streams, window)
    protocols = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _Connection(load), host, port)
        protocols.append(protocol)
    await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
    # Send nothing new; let what is in flight finish (uncounted) rather than cut requests off
    # mid-body, which the server would see as a client disconnect.
    load.stopped = True
    drained_by = time.perf_counter() + _DRAIN_SECONDS
    while any(p.streams for p in protocols if not p.closed.done()) and time.perf_counter() < drained_by:
        await asyncio.sleep(0.01)
    for protocol in protocols:
        if protocol.transport is not None:
            protocol.transport.close()
    await asyncio.wait([p.closed for p in protocols], timeout=5)
    for protocol in protocols:
        if protocol.error is not None:
            raise RuntimeError("the HTTP/2 driver failed") from protocol.error
    return load.failed_connections


def run(host: str, port: int, path: str, bodies: Bodies, count: Counter, connections: int, streams: int,
        window: Window) -> int:
    """Drive the load until `window.end`; completions go to `window`. Returns failed connections."""
    coro = _run(host, port, path, bodies, count, connections, streams, window)
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)
