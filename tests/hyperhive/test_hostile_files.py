"""Issue 9, items 3 and 6: what an agent writes into its directories is hostile input.

Each test is one of the issue's reproductions against a real `hyperhive serve` process, done the
way an agent would from inside its sandbox: it owns its state directory (`/state`) and its
socket directory (`/run/hyperhive`), so it can put a symlink, a FIFO, a huge file or a
directory anywhere in them. The daemon must read none of it through a symlink, never block on
it, say in the agent's `list` row why it ignored a file, and keep serving everyone else.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.core.rescanner import Rescan
from hyperhive.testing import DaemonProcess, FakeWallClock, open_test_hive, run_cli

pytestmark = pytest.mark.slow

SECRET = "root:$6$the-host-password-hash:19000:0:99999:7:::\n"


def _ok(state: Path, *args: str, timeout: float = 15.0) -> str:
    result = run_cli(state, *args, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rows(state: Path) -> dict[str, dict[str, object]]:
    listed = json.loads(_ok(state, "list", "--json"))
    return {row["name"]: row for row in listed["containers"]}


def _secret(state: Path) -> Path:
    # Stands in for /etc/shadow: a host file the agent must never get the daemon to read.
    secret = state.parent / f"{state.name}-shadow"
    secret.write_text(SECRET)
    return secret


def test_issue9_a_symlinked_sentinel_never_shows_the_host_file(short_tmp: Path) -> None:
    with DaemonProcess(short_tmp):
        _ok(short_tmp, "register", "alice")
        _ok(short_tmp, "register", "bob")
        paths = StatePaths(short_tmp)
        alice, bob = paths.agent_state_dir("alice"), paths.agent_state_dir("bob")
        alice.mkdir(parents=True)
        bob.mkdir(parents=True)
        (alice / "hyperhive-model").symlink_to(_secret(short_tmp))
        (alice / "hyperhive-needs-login").symlink_to("/dev/zero")
        (bob / "hyperhive-model").write_text("claude-sonnet\n")

        rows = _rows(short_tmp)
        assert "the-host-password-hash" not in json.dumps(rows)
        assert rows["alice"]["model"] is None
        assert rows["alice"]["needs_login"] is False
        notes = " | ".join(rows["alice"]["notes"])  # type: ignore[arg-type]
        assert "/state/hyperhive-model is or goes through a symlink" in notes
        assert "/state/hyperhive-needs-login is a symlink" in notes
        # One agent's broken directory degrades that agent only.
        assert (rows["bob"]["model"], rows["bob"]["notes"]) == ("claude-sonnet", [])
        assert "ignored" in _ok(short_tmp, "list")


def test_issue9_a_fifo_or_a_huge_file_never_blocks_list(short_tmp: Path) -> None:
    with DaemonProcess(short_tmp) as daemon:
        _ok(short_tmp, "register", "alice")
        _ok(short_tmp, "register", "bob")
        state = StatePaths(short_tmp).agent_state_dir("alice")
        state.mkdir(parents=True)
        os.mkfifo(state / "hyperhive-model")  # on main: `hyperhive list` hung forever
        os.mkfifo(state / "hyperhive-rate-limited")
        with (state.parent / "deployed-sha").open("wb") as huge:
            huge.truncate(1 << 30)  # 1 GiB, sparse: on main an unbounded read

        for _ in range(3):
            rows = _rows(short_tmp)
        notes = " | ".join(rows["alice"]["notes"])  # type: ignore[arg-type]
        assert "/state/hyperhive-model is not a regular file (a FIFO)" in notes
        assert "/state/hyperhive-rate-limited is not a regular file (a FIFO)" in notes
        assert "deployed-sha is larger than 4096 bytes" in notes
        assert rows["alice"]["rate_limited"] is False
        assert rows["bob"]["notes"] == []
        # The hive's worker threads are all still there: messages flow.
        assert "sent #" in _ok(short_tmp, "send", "bob", "still moving")
        assert "Traceback" not in daemon.log


async def test_issue9_a_fifo_as_a_reminder_file_fails_that_reminder_only(short_tmp: Path) -> None:
    # The real clock: on main the reminders actor blocked in open() on the FIFO while holding
    # its lock, and every whoami, remind and loose-ends call timed out behind it.
    paths = StatePaths(short_tmp / "s")
    fifo = paths.agent_state_dir("alice") / "trap"
    reader: int | None = None
    async with open_test_hive(paths.root, clock=FakeWallClock(), agents=("alice", "bob")) as hive:
        try:
            fifo.parent.mkdir(parents=True)
            os.mkfifo(fifo)
            async with hive.agent("alice") as alice, hive.agent("bob") as bob:
                remind = wire.Remind(message="wake", delay_seconds=0, file_path="/state/trap")
                scheduled = await alice.call(remind)
                with trio.fail_after(10):
                    while True:
                        ends = await alice.call(wire.GetLooseEnds())
                        if ends.reminders and ends.reminders[0].state == "failed":
                            break
                        await trio.sleep(0.05)
                    me = await bob.call(wire.Whoami())
                    later = wire.Remind(message="later", delay_seconds=60)
                    await bob.call(later)
            (row,) = ends.reminders
            assert row.id == scheduled.id
            assert row.failure is not None
            assert "/state/trap is not a regular file (a FIFO nobody reads)" in row.failure
            assert me.name == "bob"
        finally:
            # On main a worker thread is stuck opening the FIFO; a reader lets it go.
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.close(reader)


def test_issue9_whatever_an_agent_leaves_at_its_socket_path_is_replaced(short_tmp: Path) -> None:
    paths = StatePaths(short_tmp)
    with DaemonProcess(short_tmp):
        for name in ("alice", "bob", "carol"):
            _ok(short_tmp, "register", name)
    outside = _secret(short_tmp)
    # What `rm /run/hyperhive/hive.sock; echo x > /run/hyperhive/hive.sock` leaves, and worse.
    paths.agent_socket("alice").write_text("x\n")
    paths.agent_socket("bob").mkdir()
    (paths.agent_socket("bob") / "inner").symlink_to(outside)
    paths.agent_socket("carol").symlink_to(outside)
    manager = paths.manager_socket
    manager.parent.mkdir(exist_ok=True)
    os.mkfifo(manager)

    with DaemonProcess(short_tmp) as daemon:  # on main: exit 1 after a second
        for name in ("alice", "bob", "carol"):
            assert stat.S_ISSOCK(paths.agent_socket(name).lstat().st_mode), name
        assert stat.S_ISSOCK(manager.lstat().st_mode)
        assert outside.read_text() == SECRET
        assert "alice" in _ok(short_tmp, "agents")
        trio.run(_whoami, paths.agent_socket("carol"))
        assert "Traceback" not in daemon.log
    assert outside.read_text() == SECRET


async def _whoami(path: Path) -> None:
    with trio.fail_after(10):
        async with open_client(path) as client:
            assert (await client.call(wire.Whoami())).name == "carol"


def test_issue9_sqlite_files_are_private_and_a_loose_state_dir_is_tightened(
    short_tmp: Path,
) -> None:
    short_tmp.chmod(0o755)
    (short_tmp / "broker.sqlite").touch(mode=0o644)
    (short_tmp / "broker.sqlite").chmod(0o644)
    with DaemonProcess(short_tmp):
        _ok(short_tmp, "send", "manager", "hello")
        assert stat.S_IMODE(short_tmp.stat().st_mode) == 0o700
        for name in ("broker", "questions", "reminders"):
            for suffix in ("", "-wal", "-shm"):
                path = short_tmp / f"{name}.sqlite{suffix}"
                if path.exists():
                    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE((short_tmp / "agents").stat().st_mode) == 0o700


def test_issue9_a_state_dir_given_through_a_symlink_runs_bwrap_agents(short_tmp: Path) -> None:
    import shlex
    import shutil
    import time

    from hyperhive.containers.bwrap import bwrap_works
    from hyperhive.testing.conformance import PROBE_COMMAND

    if shutil.which("bwrap") is None or bwrap_works() is not None:
        pytest.skip("bubblewrap cannot build a sandbox here")
    real = short_tmp / "real"
    real.mkdir()
    link = short_tmp / "link"
    link.symlink_to(real)
    command = shlex.join(PROBE_COMMAND)
    serve = DaemonProcess(link, "--backend", "bwrap", "--agent-command", command, "--no-manager")
    with serve as daemon:
        assert f"state in {real}" in daemon.log
        assert "spawned alice: running" in _ok(link, "spawn", "alice")
        report = real / "agents" / "alice" / "state" / "probe-report.json"
        deadline = time.monotonic() + 15
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert report.exists(), _ok(link, "logs", "alice")
        assert _rows(link)["alice"]["state"] == "running"
        assert "Can't mount tmpfs" not in _ok(link, "logs", "alice")


async def test_issue9_a_failing_rescan_never_restarts_the_rescanner(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On main a link to /dev/zero made each rescan raise MemoryError; four crashes in 60 s
    # exceeded the root's intensity and the daemon exited.
    async def failing_views(names: object = None) -> dict[str, object]:
        raise MemoryError("what an unbounded read of /dev/zero raised")

    async with open_test_hive(short_tmp / "s", clock=FakeWallClock(), agents=("alice",)) as hive:
        # Every pass of the rescanner fails the way the unbounded read did.
        monkeypatch.setattr(hive.tree.rescanner, "_build", failing_views)
        rescanner = hive.tree.rescanner._mailbox
        for _ in range(6):
            rescanner.cast_nowait(Rescan())
            await trio.testing.wait_all_tasks_blocked()
        status = hive.handles.status.status()
        restarts = {
            node.id: node.restarts for node in status.tree.children if node.id == "rescanner"
        }
        assert restarts == {"rescanner": 0}
        (row,) = [node for node in status.tree.children if node.id == "rescanner"]
        assert row.last_error is not None
        assert "MemoryError" in row.last_error
