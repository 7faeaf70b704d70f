"""SIGTERM: the gateway stops taking connections but finishes the requests in flight."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx

from tests.harness import System, event, message


def refuses_connections(port: int) -> bool:
    """True when a new TCP connection to the gateway's port is refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_stops_taking_connections_and_lets_an_in_flight_request_finish(system: System) -> None:
    body = json.dumps({"messages": [message("demo-events", event(email="drain@shop.example", event_id=f"drain-{i}"))
                                    for i in range(500)]}).encode()
    half = len(body) // 2
    first_half_sent, terminated = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield body[:half]
        first_half_sent.set()
        terminated.wait(10)  # the rest of the body arrives only after the gateway got SIGTERM
        yield body[half:]

    result: dict[str, httpx.Response] = {}

    def send() -> None:
        with httpx.Client(base_url=system.url, timeout=30) as client:
            result["response"] = client.post("/collection/batch/demo", content=slow_body(),
                                             headers={"content-type": "application/json"})

    sender = threading.Thread(target=send)
    sender.start()
    assert first_half_sent.wait(10)
    system.procs["gateway"].terminate()  # SIGTERM mid-request
    # While that request still waits for the rest of its body, the gateway must already
    # refuse new connections (the listening socket is closed), so a load balancer moves on.
    system.wait_for(lambda: refuses_connections(system.port), 5, "new connections refused after SIGTERM")
    assert "response" not in result and system.procs["gateway"].poll() is None  # still draining
    terminated.set()
    sender.join(30)
    assert system.procs["gateway"].wait(30) == 0
    response = result["response"]
    assert response.status_code == 207
    assert sum("xactionId" in r for r in response.json()["responses"]) == 500
    system.start("gateway")
    system.wait_for(lambda: system.events("Email", "drain@shop.example", limit="1000").json().get("_page", {}).get("count") == 500,
                    15, "every drained event applied")
