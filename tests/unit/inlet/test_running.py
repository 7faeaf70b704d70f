"""How CLI commands find the running system (`inlet.running`), without processes: this test's
own pid stands for a live `inlet up`, a pid past the system's limit for a dead one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inlet import running
from inlet.config import Config

DEAD_PID = 2**22 + 1  # above Linux's pid_max: never a live process


def _record(data: Path, pid: int) -> running.Running:
    return running.Running(pid=pid, data_dir=str(data), nats_url="nats://127.0.0.1:4999",
                           gateway_url="http://127.0.0.1:8999", started_ms=1)


def test_a_command_without_a_data_dir_attaches_to_the_system_its_user_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    elsewhere = tmp_path / "srv"
    running.write(_record(elsewhere, os.getpid()), env)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # another shell, another directory, default ./var
    config = running.attach(Config(), env)
    assert config.data_path == elsewhere and config.nats.url == "nats://127.0.0.1:4999"


def test_explicit_settings_win(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "INLET_DATA_DIR": str(tmp_path / "mine")}
    running.write(_record(tmp_path / "srv", os.getpid()), env)
    config = running.attach(Config(data_dir=str(tmp_path / "mine")), env)
    assert config.data_path == tmp_path / "mine" and config.nats.url == ""
    here = Config(data_dir=str(tmp_path / "srv"))
    here.nats.url = "nats://elsewhere:4222"
    assert running.attach(here, env).nats.url == "nats://elsewhere:4222"


def test_a_record_left_by_a_killed_supervisor_is_ignored(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    running.write(_record(tmp_path / "srv", DEAD_PID), env)
    assert running.find(Config(data_dir=str(tmp_path / "var")), env) is None
    assert running.alive(tmp_path / "srv") is None


def test_remove_leaves_a_pointer_rewritten_by_a_later_inlet_up(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    first = _record(tmp_path / "one", os.getpid())
    running.write(first, env)
    running.write(_record(tmp_path / "two", os.getppid()), env)
    running.remove(first, env)
    assert not (tmp_path / "one" / running.RECORD).exists()
    assert running.pointer_path(env).exists(), "the pointer belongs to the later system"
