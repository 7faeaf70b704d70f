"""Slow clients against a real gateway process: a body trickled a byte at a time (slow loris)
is cut off after `[http] body_read_timeout` with a 408 and a closed connection; slow headers
are Hypercorn's keep-alive timeout (5 s). Raw sockets, so the client is exactly as slow as we
say; the pace of the trickle is the client's, the test waits on the server with a deadline."""

from __future__ import annotations

import json
import select
import socket
import time
from typing import Any

import pytest

from tests.harness import System, event, message

TIMEOUT = 1.5  # body_read_timeout below
SLACK = 2.5  # scheduling on a shared 2-core machine
PACE = 0.2  # the slow client sends one byte this often


def _open(system: System, path: str, length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", system.port))
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {length}\r\n\r\n{{".encode())
    return sock


def _trickle_until_closed(sockets: list[socket.socket], deadline: float) -> dict[socket.socket, tuple[bytes, float]]:
    """Send each open socket a byte every PACE seconds; collect what the server sends until it
    closes the connection. Returns what each socket received and when it was closed."""
    received = {s: b"" for s in sockets}
    closed: dict[socket.socket, tuple[bytes, float]] = {}
    while len(closed) < len(sockets) and time.monotonic() < deadline:
        open_ = [s for s in sockets if s not in closed]
        readable, _, _ = select.select(open_, [], [], PACE)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                received[sock] += data
            else:
                closed[sock] = (received[sock], time.monotonic())
        for sock in open_:
            if sock not in closed and sock not in readable:
                try:
                    sock.send(b" ")
                except OSError:
                    closed[sock] = (received[sock], time.monotonic())
    return closed


@pytest.mark.components("gateway")
@pytest.mark.config(f"\n[http]\nbody_read_timeout = {TIMEOUT}\n")
def test_slow_bodies_get_408_and_the_connection_closes(system: System) -> None:
    paths = ["/collection/demo", "/ee/v1/interact?configId=demo"] * 10
    started = time.monotonic()
    sockets = [_open(system, path, 100_000) for path in paths]
    try:
        closed = _trickle_until_closed(sockets, started + TIMEOUT + SLACK)
        assert len(closed) == len(sockets), f"{len(sockets) - len(closed)} slow connections still open"
        for sock, path in zip(sockets, paths):
            data, at = closed[sock]
            assert at - started >= TIMEOUT - 0.1, "cut before the timeout"
            head, _, payload = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), (path, data[:200])
            document = json.loads(payload)
            if path.startswith("/ee/"):  # the Edge error shape: the problem is in `errors`
                assert document["errors"][0]["code"] == "request_timeout", document
            else:
                assert document["code"] == "request_timeout" and document["status"] == 408, document
    finally:
        for sock in sockets:
            sock.close()
    # A client that sends its body in time is unaffected, on the same settings.
    assert system.http.post("/collection/demo", json=message("demo-events", event())).status_code == 200


@pytest.mark.components("gateway")
def test_slow_headers_are_closed_by_the_keep_alive_timeout(system: System) -> None:
    sock = socket.create_connection(("127.0.0.1", system.port))
    started = time.monotonic()
    try:
        sock.sendall(b"POST /collection/demo HTTP/1.1\r\nHost: localhost\r\n")
        closed = _trickle_until_closed([sock], started + 5 + SLACK)
        assert sock in closed, "a client trickling header bytes kept its connection"
        assert closed[sock][1] - started >= 4.9
    finally:
        sock.close()


@pytest.mark.components("gateway")
def test_a_client_leaving_mid_body_is_not_an_error(system: System) -> None:
    """Nothing was accepted and there is nobody to answer: no ERROR line (which means data loss
    or operator action here), just the request counted."""
    sock = _open(system, "/collection/demo", 1000)
    sock.sendall(b'"header": ')
    sock.close()

    def counted() -> bool:
        metrics = system.http.get("/metrics").text
        return any(line.startswith('inlet_http_requests_total{route="collection.single"')
                   for line in metrics.splitlines())

    system.wait_for(counted, 10, what="the abandoned request to be counted")
    assert system.error_lines() == []


@pytest.mark.components("gateway")
@pytest.mark.config(f"\n[http]\nbody_read_timeout = {TIMEOUT}\n")
def test_a_slow_http2_stream_gets_408_and_the_connection_keeps_serving(system: System) -> None:
    """On HTTP/2 the deadline is per stream: the slow stream ends with 408, and the connection
    (which other requests share) still serves the next one."""
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    sock = socket.create_connection(("127.0.0.1", system.port))
    conn.initiate_connection()
    headers = [(":method", "POST"), (":path", "/collection/demo"), (":scheme", "http"), (":authority", "localhost"),
               ("content-type", "application/json")]
    slow = conn.get_next_available_stream_id()
    conn.send_headers(slow, [*headers, ("content-length", "1000")])
    sock.sendall(conn.data_to_send())
    answers: dict[int, list[Any]] = {}

    def pump(stream: int, deadline: float, trickle: bool) -> None:
        while time.monotonic() < deadline and not (answers.get(stream) and answers[stream][-1] == "ended"):
            readable, _, _ = select.select([sock], [], [], PACE)
            if readable:
                data = sock.recv(65536)
                assert data, "the server closed the HTTP/2 connection"
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        answers.setdefault(ev.stream_id, []).append(dict(ev.headers)[b":status"].decode())
                    elif isinstance(ev, h2.events.DataReceived):
                        answers.setdefault(ev.stream_id, []).append(ev.data)
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                        answers.setdefault(ev.stream_id, []).append("ended")
            elif trickle and not answers.get(stream):
                conn.send_data(stream, b" ")
            sock.sendall(conn.data_to_send())

    try:
        started = time.monotonic()
        pump(slow, started + TIMEOUT + SLACK, trickle=True)
        assert answers.get(slow) and answers[slow][0] == "408", answers
        assert time.monotonic() - started >= TIMEOUT - 0.1
        assert json.loads(b"".join(p for p in answers[slow] if isinstance(p, bytes)))["code"] == "request_timeout"

        quick = conn.get_next_available_stream_id()
        payload = json.dumps(message("demo-events", event())).encode()
        conn.send_headers(quick, [*headers, ("content-length", str(len(payload)))])
        conn.send_data(quick, payload, end_stream=True)
        sock.sendall(conn.data_to_send())
        pump(quick, time.monotonic() + 10, trickle=False)
        assert answers.get(quick) and answers[quick][0] == "200", answers.get(quick)
    finally:
        sock.close()


@pytest.mark.components("gateway")
def test_an_answer_given_before_the_body_was_read_says_the_connection_closes(system: System) -> None:
    """A 413 judged from `Content-Length` is answered without reading the body; Hypercorn then
    closes that HTTP/1.1 connection, so the answer must say `Connection: close`, or a keep-alive
    client (httpx, seen in CI) sends its next request into the closing socket and fails. An
    answer to a request whose body was read keeps the connection open."""
    sock = socket.create_connection(("127.0.0.1", system.port))
    sock.settimeout(10)
    sock.sendall(b"POST /collection/demo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 50000000\r\n\r\n{")
    head = sock.recv(65536).split(b"\r\n\r\n", 1)[0].lower()
    sock.close()
    assert head.startswith(b"http/1.1 413") and b"\r\nconnection: close" in head, head

    body = json.dumps(message("demo-events", event())).encode()
    with socket.create_connection(("127.0.0.1", system.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST /collection/demo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = sock.recv(65536).split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200") and b"connection: close" not in head, head
