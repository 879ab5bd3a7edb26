"""`hyperhive spawn|start|stop|restart|kill|rebuild|destroy|list|logs` as a user runs them."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path

import pytest

from hyperhive.testing import DaemonProcess, run_cli
from hyperhive.testing.conformance import PROBE_COMMAND

pytestmark = pytest.mark.slow


def _serve(state: Path, *extra: str) -> DaemonProcess:
    command = shlex.join(PROBE_COMMAND)
    return DaemonProcess(state, "--backend", "process", "--agent-command", command, *extra)


def _ok(state: Path, *args: str) -> str:
    result = run_cli(state, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait_for(predicate: object, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_lifecycle_from_the_command_line(short_tmp: Path) -> None:
    with _serve(short_tmp, "--no-manager") as daemon:
        assert "agents are NOT isolated" in daemon.log
        assert "spawned alice: running" in _ok(short_tmp, "spawn", "alice")
        listed = json.loads(_ok(short_tmp, "list", "--json"))
        (row,) = listed["containers"]
        assert (row["name"], row["state"], row["wanted"]) == ("alice", "running", "running")
        _wait_for(lambda: "agent alice started" in _ok(short_tmp, "logs", "alice"), "the log")
        assert "stopped alice: stopped" in _ok(short_tmp, "stop", "alice")
        assert "started alice: running" in _ok(short_tmp, "start", "alice")
        assert "restarted alice: running" in _ok(short_tmp, "restart", "alice")
        assert "rebuilt alice: running" in _ok(short_tmp, "rebuild", "alice")
        assert "killed alice: stopped" in _ok(short_tmp, "kill", "alice")
        table = _ok(short_tmp, "list")
        assert "alice" in table
        assert "stopped" in table
        _ok(short_tmp, "destroy", "alice", "--yes")
        assert "tombstones" in _ok(short_tmp, "list")
        _ok(short_tmp, "destroy", "alice", "--purge", "--yes")
        assert not (short_tmp / "agents" / "alice").exists()

        bad = run_cli(short_tmp, "spawn", "Not_Valid")
        assert bad.returncode == 1
        assert "invalid agent name" in bad.stderr
        assert "Traceback" not in bad.stderr
        missing = run_cli(short_tmp, "stop", "nobody")
        assert (missing.returncode, "unknown agent 'nobody'" in missing.stderr) == (1, True)


def test_agents_stop_with_the_daemon_and_come_back_with_the_next(short_tmp: Path) -> None:
    with _serve(short_tmp) as daemon:
        _ok(short_tmp, "spawn", "alice")
        manager = json.loads(_ok(short_tmp, "list", "--json"))["containers"]
        assert {row["name"] for row in manager} == {"alice", "manager"}
        report = short_tmp / "agents" / "alice" / "state" / "probe-report.json"
        _wait_for(report.exists, "alice's report")
        pid = json.loads(report.read_text())["pid"]
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with _serve(short_tmp):
        _wait_for(lambda: json.loads(report.read_text())["starts"] == 2, "alice to start again", 15)
        rows = json.loads(_ok(short_tmp, "list", "--json"))["containers"]
        assert {row["name"]: row["state"] for row in rows} == {
            "alice": "running",
            "manager": "running",
        }
