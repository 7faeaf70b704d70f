"""SIGTERM: the gateway stops taking connections but finishes the requests in flight."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx

from tests.harness import System, event, message


def test_sigterm_lets_an_in_flight_request_finish(system: System) -> None:
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
    terminated.set()
    sender.join(30)
    assert system.procs["gateway"].wait(30) == 0
    response = result["response"]
    assert response.status_code == 207
    assert sum("xactionId" in r for r in response.json()["responses"]) == 500
    system.start("gateway")
    system.wait_for(lambda: system.events("Email", "drain@shop.example", limit="1000").json().get("_page", {}).get("count") == 500,
                    15, "every drained event applied")
