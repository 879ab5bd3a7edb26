"""The operator's approval commands as a user runs them: a real daemon, the real CLI, real git.

The manager's side is its own socket and an ordinary git in its proposed repo (what its model
does with Bash); agents are the probe on the process backend.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.testing import DaemonProcess, run_cli
from hyperhive.testing.conformance import PROBE_COMMAND
from hyperhive.testing.manager_git import ManagerGit

from .test_operator_cli import cli_error, cli_ok

pytestmark = pytest.mark.slow


def as_manager(state: Path, *requests: wire.Request[Any]) -> list[Any]:
    async def talk() -> list[Any]:
        async with open_client(StatePaths(state).manager_socket) as client:
            return [await client.call(r) for r in requests]

    return trio.run(talk)


def wait_for(check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_pending_diff_approve_deny_and_config(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: rich folds nothing
    state = short_tmp / "state"
    git = ManagerGit(short_tmp / "home")
    probe = shlex.join(PROBE_COMMAND)
    args = ("--backend", "process", "--agent-command", probe, "--no-manager", "--no-dashboard")
    with DaemonProcess(state, *args, env={"HIVE_TOKEN": "tok-98765-secret"}) as daemon:
        cli_ok(state, "spawn", "alice")
        assert "nothing waits for approval" in cli_ok(state, "pending")
        (ready,) = as_manager(state, wire.RequestInitConfig(name="alice"))
        repo = RepoPaths(state / "configs").proposed("alice")
        toml = '[env]\nGREETING = "hi"\n\n[secrets]\nTOKEN = "env:HIVE_TOKEN"\n'
        sha = git.commit(repo, {"agent.toml": toml}, "greet")
        evil = "greet \x1b]0;owned\x07 people"
        (submitted,) = as_manager(
            state, wire.RequestApplyCommit(agent="alice", commit_ref=sha, description=evil)
        )
        listed = cli_ok(state, "pending")
        assert "alice" in listed
        assert "apply_commit" in listed
        assert sha[:12] in listed
        assert "\x1b" not in listed  # the manager's text cannot reach the terminal raw
        assert "\\x1b" in listed
        raw = json.loads(cli_ok(state, "pending", "--json"))
        (row,) = raw["approvals"]
        assert (row["id"], row["status"], row["fetched_sha"]) == (submitted.id, "pending", sha)

        shown = cli_ok(state, "diff", str(submitted.id))
        assert "+ env GREETING" in shown
        assert "+ secret TOKEN from env:HIVE_TOKEN" in shown
        assert '+GREETING = "hi"' in shown
        assert "\x1b" not in shown

        out = cli_ok(state, "approve", str(submitted.id))
        assert f"approved #{submitted.id}" in out
        wait_for(lambda: f"deployed/{submitted.id}" in cli_ok(state, "config", "alice"))
        history = cli_ok(state, "config", "alice")
        assert 'GREETING = "hi"' in history  # the deployed agent.toml
        assert f"runs deploy #{submitted.id}" in history
        assert "approval" in cli_error(state, "approve", str(submitted.id))

        sha2 = git.commit(repo, {"agent.toml": toml + "\n[limits]\nprocesses = 64\n"}, "fewer")
        (second,) = as_manager(
            state, wire.RequestApplyCommit(agent="alice", commit_ref=sha2, description="fewer")
        )
        assert "needs a reason" in cli_error(state, "deny", str(second.id), "--reason", " ")
        assert f"denied #{second.id}" in cli_ok(
            state, "deny", str(second.id), "--reason", "keep the limit"
        )
        wait_for(lambda: "keep the limit" in cli_ok(state, "config", "alice"))
        everything = cli_ok(state, "pending", "--all")
        assert "denied: keep the limit" in " ".join(everything.split())
        assert "there is no approval 77" in cli_error(state, "approve", "77")
        assert "there is no approval 77" in cli_error(state, "diff", "77")
        result = run_cli(state, "deny", "3")
        assert result.returncode == 2  # --reason is required
        del ready
    assert "tok-98765-secret" not in daemon.log
