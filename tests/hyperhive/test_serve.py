"""`hyperhive serve` and `hyperhive status` as a user runs them: real processes, real sockets."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from hyperhive.testing import DaemonProcess, run_cli

pytestmark = pytest.mark.slow


def _ids(node: dict[str, object]) -> list[str]:
    children = node.get("children", [])
    assert isinstance(children, list)
    return [str(node["id"]), *(i for child in children for i in _ids(child))]


def test_status_shows_the_live_actor_tree(short_tmp: Path) -> None:
    with DaemonProcess(short_tmp) as daemon:
        result = run_cli(short_tmp, "status", "--json")
        assert result.returncode == 0, result.stderr
        reply = json.loads(result.stdout)
        assert reply["pid"] == daemon.pid
        tree = reply["tree"]
        assert tree["id"] == "root"
        assert tree["kind"] == "supervisor"
        assert {"root", "listeners", "admin-socket"} <= set(_ids(tree))
        assert tree["state"] == "running"

        table = run_cli(short_tmp, "status")
        assert table.returncode == 0, table.stderr
        assert "admin-socket" in table.stdout
        assert "running" in table.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_removes_the_socket(
    short_tmp: Path, signum: signal.Signals
) -> None:
    daemon = DaemonProcess(short_tmp).start()
    assert (short_tmp / "admin.sock").exists()
    daemon.signal(signum)
    assert daemon.wait(timeout=8) == 0
    assert not (short_tmp / "admin.sock").exists()
    assert "hyperhive stopped" in daemon.log


def test_second_serve_on_the_same_state_refuses(short_tmp: Path) -> None:
    with DaemonProcess(short_tmp) as first:
        second = run_cli(short_tmp, "serve")
        assert second.returncode == 1
        assert f"another hyperhive serve (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        # The first daemon is untouched: its socket still answers.
        assert run_cli(short_tmp, "status", "--json").returncode == 0


def test_status_without_a_daemon_says_how_to_start_one(short_tmp: Path) -> None:
    result = run_cli(short_tmp, "status")
    assert result.returncode == 1
    assert "hyperhive serve" in result.stderr
    assert "Traceback" not in result.stderr


def test_state_dir_from_the_environment(short_tmp: Path) -> None:
    import os
    import subprocess
    import sys

    with DaemonProcess(short_tmp):
        env = {**os.environ, "HYPERHIVE_STATE_DIR": str(short_tmp)}
        result = subprocess.run(
            [sys.executable, "-m", "hyperhive", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["state_dir"] == str(short_tmp)


def test_issue9_limits_are_set_on_the_command_line(short_tmp: Path) -> None:
    bad = run_cli(short_tmp, "serve", "--limit", "bogus=1")
    assert bad.returncode == 1
    assert "unknown limit 'bogus=1'" in bad.stderr
    with DaemonProcess(short_tmp, "--limit", "max_body_bytes=10", env={"HYPERHIVE_LIMITS": ""}):
        assert run_cli(short_tmp, "send", "manager", "0123456789").returncode == 0
        refused = run_cli(short_tmp, "send", "manager", "0123456789a")
        assert refused.returncode == 1
        assert "more than the limit of 10 (max_body_bytes)" in refused.stderr


def test_issue9_limits_come_from_the_environment(short_tmp: Path) -> None:
    env = {"HYPERHIVE_LIMITS": "max_body_bytes=4 connections=3"}
    with DaemonProcess(short_tmp, env=env):
        refused = run_cli(short_tmp, "send", "manager", "12345")
        assert "more than the limit of 4 (max_body_bytes)" in refused.stderr
