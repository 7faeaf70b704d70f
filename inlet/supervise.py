"""Keeping `inlet up`'s children running: restart whatever crashes, with backoff.

Every component is its own process, and each already survives the others' absence: workers
resume from their durable consumers, the gateway spools while NATS is away and replays when
its client reconnects. So one crashed child is no reason to stop the rest: the supervisor
restarts it (the embedded nats-server on the same port and store, so every client reconnects
to the URL it knows) while the others carry on, and the gateway keeps answering.

Restarts back off exponentially (0.5 s doubling to 30 s), and the delay resets once a child
has stayed up for a minute. A crash is a WARNING (nothing is lost: every component
acknowledges only what it has stored); a child that keeps crashing is an ERROR, because then
an operator has to look (a bad config, a full disk).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from inlet.nats_server import NatsServer

log = logging.getLogger("inlet.supervise")


@dataclass
class Backoff:
    """Delay before the next restart: doubling from `initial` to `maximum`, reset when stable."""

    initial: float = 0.5
    maximum: float = 30.0
    stable_after: float = 60.0
    crash_loop: int = 5  # this many crashes without a stable run: an ERROR, once
    delay: float = 0.0
    crashes: int = 0

    def crashed(self, ran_for: float) -> float:
        """Record a crash after `ran_for` seconds up; returns the delay before the restart."""
        if ran_for >= self.stable_after:
            self.delay, self.crashes = 0.0, 0
        self.crashes += 1
        self.delay = self.initial if self.delay == 0 else min(self.maximum, self.delay * 2)
        return self.delay

    @property
    def looping(self) -> bool:
        return self.crashes == self.crash_loop


class Child(Protocol):
    name: str

    def start(self) -> None: ...
    def exit_code(self) -> int | None: ...  # None while it runs
    def stop(self, timeout: float) -> None: ...


class ProcessChild:
    """`python -m inlet <args>`, started exactly as it would be on another machine."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.terminated = False

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env)
        self.terminated = False

    def terminate(self) -> None:
        """SIGTERM once: the process drains and exits on its own (see `stop`)."""
        if self.process is not None and self.process.poll() is None and not self.terminated:
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self, timeout: float) -> None:
        if self.process is None:
            return
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class NatsChild:
    """The embedded nats-server: restarted on the port and store of its first start."""

    def __init__(self, server: NatsServer) -> None:
        self.name = "nats-server"
        self.server = server

    def start(self) -> None:
        if self.exit_code() is None and self.server.process is not None:
            return  # `inlet up` started it first, to learn its URL
        # JetStream recovers its store before "Server is ready": allow a big store the time.
        self.server.start(timeout=120)

    def exit_code(self) -> int | None:
        return None if self.server.process is None else self.server.process.poll()

    @property
    def pid(self) -> int | None:
        return None if self.server.process is None else self.server.process.pid

    def stop(self, timeout: float) -> None:
        self.server.stop(timeout)


@dataclass
class _Watch:
    child: Child
    backoff: Backoff
    started: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts children in order, restarts the crashed ones, stops them in reverse order."""

    children: list[Child]
    backoff: Callable[[], Backoff] = Backoff
    clock: Callable[[], float] = time.monotonic
    _watches: list[_Watch] = field(default_factory=list)

    def start(self) -> None:
        for child in self.children:
            child.start()
            self._watches.append(_Watch(child, self.backoff(), started=self.clock()))

    def restarts(self, name: str) -> int:
        return sum(w.restarts for w in self._watches if w.child.name == name)

    def check(self) -> None:
        """Notice exits, and restart each crashed child once its backoff delay has passed."""
        now = self.clock()
        for watch in self._watches:
            if watch.restart_at is None:
                code = watch.child.exit_code()
                if code is None:
                    continue
                delay = watch.backoff.crashed(now - watch.started)
                watch.restart_at = now + delay
                if watch.backoff.looping:
                    log.error("%s keeps crashing (%d times in a row, last exit %s); still restarting it "
                              "every %.0f s: look at its log.", watch.child.name, watch.backoff.crashes, code,
                              watch.backoff.maximum)
                else:
                    log.warning("%s exited (%s); restarting it in %.1f s.", watch.child.name, code, delay)
            elif now >= watch.restart_at:
                try:
                    watch.child.start()
                except Exception as exc:  # the port is taken, the binary vanished: back off, retry
                    log.warning("Restarting %s failed: %s", watch.child.name, exc)
                    watch.restart_at = now + watch.backoff.crashed(0.0)
                    continue
                watch.started, watch.restart_at = self.clock(), None
                watch.restarts += 1
                log.info("%s restarted.", watch.child.name)

    def stop(self, timeout: float = 30.0) -> None:
        """Last started, first stopped: gateway (no new data), workers flush and ack, then NATS.
        Identical children (several gateways) are signalled together, then waited for, so
        their drains overlap instead of adding up."""
        watches = list(reversed(self._watches))
        for i, watch in enumerate(watches):
            child = watch.child
            if isinstance(child, ProcessChild):
                for later in watches[i:]:
                    if not (isinstance(later.child, ProcessChild) and later.child.argv == child.argv):
                        break
                    later.child.terminate()
            child.stop(timeout)


def gateway_ready(url: str) -> bool:
    """Whether the gateway's `/readyz` answers 200: when `inlet up` announces the system."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False
