"""Sampling profiles of a running inlet process with py-spy, summarised as text for
BENCHMARKS.md: the functions holding the most samples of their own, the same by package, and
the inclusive share (the function and all it called) of the gateway's key steps.

`record(pid, seconds)` starts `py-spy record --format raw` (folded stacks) on the process for
the given time; `report(path, title)` summarises the folded stacks. py-spy needs ptrace on the target
(same user, `kernel.yama.ptrace_scope` ≤ 1 for a child of ours: the benchmark started it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def _binary() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"  # pip-installed into the venv
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> bool:
    return _binary() is not None


def record(pid: int, seconds: float, out: Path, rate: int = 250) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds` into `out` (folded stacks); wait on the result."""
    return subprocess.Popen(
        [_binary() or "py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame(frame: str) -> str:
    """`handler (gateway/publish.py:120)` → `handler (gateway/publish.py)`, paths shortened to
    the package (site-packages/nats/js/client.py → nats/js/client.py)."""
    frame = _LINE.sub(")", frame.strip())
    return re.sub(r"\((?:[^()]*?(?:site-packages|lib/python3\.\d+|/work/main)/)?", "(", frame)


def _stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            stacks.append(([_frame(f) for f in stack.split(";")], int(n)))
    return stacks


def _package(frame: str) -> str:
    """`Client.publish (nats/aio/client.py)` → `nats`; the standard library's asyncio stays
    `asyncio`; frames of uvloop's C loop (no Python file) count as `uvloop`."""
    where = frame.rpartition("(")[2].rstrip(")")
    return where.split("/", 1)[0] if "/" in where else where.rsplit(".", 1)[0]


# Where the gateway's per-event time goes: the request handler, its decode and publish steps,
# and the ack path (which runs in the NATS subscription's task, outside the handler's stack).
KEY_FUNCTIONS = ("batch (gateway/endpoints/collection.py)", "decode_message (gateway/decode.py)",
                 "Publisher.publish (gateway/publish.py)", "Publisher._send (gateway/publish.py)",
                 "JetStreamContext.publish_async (nats/js/client.py)", "Client.publish (nats/aio/client.py)",
                 "wait_for (asyncio/tasks.py)", "_JetStream._handle_async_reply (inlet/bus.py)",
                 "Publisher._on_ack (gateway/publish.py)", "Client._process_msg (nats/aio/client.py)",
                 "H2Protocol.handle (hypercorn/protocol/h2.py)", "json_response (gateway/responses.py)")


def summary(path: Path, count: int = 12) -> tuple[list[tuple[str, float]], list[tuple[str, float]],
                                                 list[tuple[str, float]], int]:
    """(top `count` functions by self %, self % by package, inclusive % of KEY_FUNCTIONS,
    samples); percentages of all samples of the process."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, samples in _stacks(path):
        total += samples
        own[frames[-1]] += samples
        packages[_package(frames[-1])] += samples
        for frame in set(frames) & set(KEY_FUNCTIONS):
            inclusive[frame] += samples
    if not total:
        return [], [], [], 0
    pct = 100 / total
    return ([(f, n * pct) for f, n in own.most_common(count)], [(p, n * pct) for p, n in packages.most_common(8)],
            [(f, inclusive[f] * pct) for f in KEY_FUNCTIONS if inclusive[f]], total)


def report(path: Path, title: str, count: int = 12) -> str:
    own, packages, key, total = summary(path, count)
    return "\n".join([
        f"py-spy, {title}: {total:,} samples",
        "- self time by package: " + ", ".join(f"{p} {v:.0f}%" for p, v in packages),
        "- inclusive: " + "; ".join(f"`{f}` {v:.1f}%" for f, v in key),
        f"- top {count} functions by self time:",
        *(f"  - {v:.1f}% `{f}`" for f, v in own),
    ])
