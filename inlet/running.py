"""Where the running system is: the record `inlet up` leaves for every other CLI command.

The embedded nats-server listens on a free port chosen at start-up and the data directory may
come from an environment variable set in another shell, so `inlet status`, `inlet lake` and
`inlet env` cannot know either from their own configuration. `inlet up` therefore writes
`<data dir>/running.json` (the supervisor's pid, the data directory, the NATS and gateway URLs)
and a pointer to that data directory in the user's state directory
(`$XDG_STATE_HOME/inlet/running.json`, else `~/.local/state/inlet/running.json`). Both are
replaced atomically (temp file, fsync, rename) and removed on a clean stop; a record whose pid
is gone (the supervisor was killed) is ignored.

A command attaches to the running system only where its own configuration is silent: an
explicit `INLET_DATA_DIR` (or `data_dir` in the file) and `INLET_NATS_URL` always win.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

from inlet.config import Config
from inlet.durable import fsync_path

RECORD = "running.json"


class Running(msgspec.Struct, forbid_unknown_fields=False, kw_only=True):
    pid: int
    data_dir: str
    nats_url: str
    gateway_url: str
    started_ms: int


def pointer_path(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user pointer to the data directory of the last `inlet up` still running."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(state) / "inlet" / RECORD


def record(config: Config, nats_url: str, gateway_url: str) -> Running:
    return Running(pid=os.getpid(), data_dir=str(config.data_path), nats_url=nats_url,
                   gateway_url=gateway_url, started_ms=int(time.time() * 1000))


def write(running: Running, environ: Mapping[str, str] | None = None) -> None:
    """Record the running system in its data directory and point the user's state at it."""
    data = msgspec.json.encode(running)
    _replace(Path(running.data_dir) / RECORD, data)
    try:
        _replace(pointer_path(environ), data)
    except OSError:  # a read-only home must not stop the system; `INLET_DATA_DIR` still works
        pass


def remove(running: Running, environ: Mapping[str, str] | None = None) -> None:
    """Remove the records of this process (a pointer rewritten by a later `inlet up` stays)."""
    for path in (Path(running.data_dir) / RECORD, pointer_path(environ)):
        found = _read(path)
        if found is not None and found.pid == running.pid:
            path.unlink(missing_ok=True)


def alive(data_dir: Path) -> Running | None:
    """The record in `data_dir` if the `inlet up` that wrote it still runs."""
    found = _read(data_dir / RECORD)
    return found if found is not None and _pid_alive(found.pid) else None


def find(config: Config, environ: Mapping[str, str] | None = None) -> Running | None:
    """The running system this command should talk to, if any (see the module docstring)."""
    env = os.environ if environ is None else environ
    here = alive(config.data_path)
    if here is not None or _data_dir_explicit(config, env):
        return here
    pointed = _read(pointer_path(env))
    if pointed is None:
        return None
    return alive(Path(pointed.data_dir))


def attach(config: Config, environ: Mapping[str, str] | None = None) -> Config:
    """`config` with the running system's data directory and NATS URL where it left them open."""
    env = os.environ if environ is None else environ
    running = find(config, env)
    if running is None:
        return config
    if Path(running.data_dir) != config.data_path:
        print(f"inlet: using the running system's data directory {running.data_dir} "
              f"(`inlet up`, pid {running.pid}); set INLET_DATA_DIR to choose another", file=sys.stderr)
    nats = config.nats if config.nats.url else msgspec.structs.replace(config.nats, url=running.nats_url)
    return msgspec.structs.replace(config, data_dir=running.data_dir, nats=nats)


def _data_dir_explicit(config: Config, env: Mapping[str, str]) -> bool:
    return "INLET_DATA_DIR" in env or config.data_dir != Config().data_dir


def _read(path: Path) -> Running | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=Running)
    except (OSError, msgspec.DecodeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)
