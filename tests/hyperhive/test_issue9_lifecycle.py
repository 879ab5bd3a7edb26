"""Issue 9, item 7: destroy asks first, unregister keeps state, a destroyed manager takes no
mail, and a bug in reminder delivery fails that reminder once instead of retrying forever."""

from __future__ import annotations

import json
import logging
import os
import pty
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.testing import (
    DaemonProcess,
    FakeWallClock,
    open_test_hive,
    run_cli,
)
from hyperhive.testing.conformance import PROBE_COMMAND

pytestmark = pytest.mark.slow


def _ok(state: Path, *args: str) -> str:
    result = run_cli(state, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _serve(state: Path, *extra: str) -> DaemonProcess:
    return DaemonProcess(
        state, "--backend", "process", "--agent-command", shlex.join(PROBE_COMMAND), *extra
    )


def _on_a_terminal(state: Path, answer: str, *args: str) -> tuple[int, str]:
    """Run `hyperhive ARGS` with a terminal on stdin and type `answer`."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hyperhive", *args, "--state-dir", str(state)],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.write(leader, answer.encode())
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(leader)
        os.close(follower)
    return proc.returncode, out


def test_issue9_destroy_asks_on_a_terminal_and_needs_yes_in_a_script(short_tmp: Path) -> None:
    with _serve(short_tmp, "--no-manager"):
        _ok(short_tmp, "spawn", "alice")
        refused = run_cli(short_tmp, "destroy", "alice", "--purge")  # stdin is not a terminal
        assert refused.returncode == 1
        assert "not destroying alice and delete its state for good without confirmation" in (
            refused.stderr
        )
        code, out = _on_a_terminal(short_tmp, "n\n", "destroy", "alice")
        assert (code, "Destroy alice? [y/N]" in out, "nothing was destroyed" in out) == (
            1,
            True,
            True,
        )
        assert "alice" in json.dumps(json.loads(_ok(short_tmp, "list", "--json"))["containers"])
        code, out = _on_a_terminal(short_tmp, "y\n", "destroy", "alice")
        assert code == 0, out
        assert "destroyed alice" in out
        _ok(short_tmp, "destroy", "alice", "--purge", "--yes")
        assert not (short_tmp / "agents" / "alice").exists()


def test_issue9_the_manager_is_destroyed_only_with_force_and_then_takes_no_mail(
    short_tmp: Path,
) -> None:
    with _serve(short_tmp):
        refused = run_cli(short_tmp, "destroy", "manager", "--yes")
        assert refused.returncode == 1
        assert "destroy it only with --force" in refused.stderr
        assert "sent #" in _ok(short_tmp, "send", "manager", "before")
        _ok(short_tmp, "destroy", "manager", "--yes", "--force")
        # On main this was accepted, while any other destroyed name gave "unknown agent".
        after = run_cli(short_tmp, "send", "manager", "after")
        assert after.returncode == 1
        assert "unknown agent 'manager'" in after.stderr
    with _serve(short_tmp):  # a new daemon creates a new manager, which takes mail again
        assert "sent #" in _ok(short_tmp, "send", "manager", "hello again")


def test_issue9_unregister_keeps_the_agents_state(short_tmp: Path) -> None:
    with DaemonProcess(short_tmp):
        _ok(short_tmp, "register", "alice")
        notes = short_tmp / "agents" / "alice" / "state" / "notes.md"
        notes.parent.mkdir(parents=True)
        notes.write_text("three weeks of work\n")
        _ok(short_tmp, "send", "alice", "left unread")
        assert "unregistered alice" in _ok(short_tmp, "unregister", "alice")
        # On main the whole agent directory was deleted.
        assert notes.read_text() == "three weeks of work\n"
        assert "alice" not in _ok(short_tmp, "agents")
        _ok(short_tmp, "register", "alice")
        assert notes.read_text() == "three weeks of work\n"


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Plain autojump: the test hive runs its stores inline, so virtual time is exact.
    return trio.testing.MockClock(autojump_threshold=0)


async def test_issue9_a_bug_in_reminder_delivery_fails_it_once(
    short_tmp: Path,
    clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from hyperhive.core.reminders import ReminderScheduler

    async def broken(self: object, reminder: object) -> object:
        raise TypeError("a programming error")

    async with open_test_hive(short_tmp / "s", clock=FakeWallClock(), agents=("alice",)) as hive:
        monkeypatch.setattr(ReminderScheduler, "_prepare", broken)
        async with hive.agent("alice") as alice:
            await alice.call(wire.Remind(message="ping", delay_seconds=1))
            await trio.sleep(600)  # ten minutes: on main, ten retries and ten tracebacks
            ends = await alice.call(wire.GetLooseEnds())
    (row,) = ends.reminders
    assert row.state == "failed"
    assert row.failure == "internal error (logged); the reminder could not be delivered"
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
