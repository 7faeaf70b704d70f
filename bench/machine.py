"""The machine and tool versions a figure was measured with, printed at the top of every run."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version

from bench import h2load
from inlet.nats_server import binary

PACKAGES = ("hypercorn", "h2", "starlette", "msgspec", "nats-py", "uvloop")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _package(name: str) -> str:
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"{name} absent"


def _nats_server() -> str:
    try:
        out = subprocess.run([binary(), "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "nats-server ?"
    return out.strip().replace(": ", " ")


def describe() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    tools = [f"Python {platform.python_version()}", *map(_package, PACKAGES), _nats_server(),
             f"h2load {h2load.version()}" if h2load.available() else "h2load absent"]
    return (f"{time.strftime('%Y-%m-%d')}, {cores} cores ({_cpu_model()}), {memory:.0f} GiB, "
            f"Linux {platform.release()}\n" + ", ".join(tools))
