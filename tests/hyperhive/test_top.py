"""`hyperhive top`'s shell in process: a real daemon's feed and replies reach the screen, and
keys (written into a pipe) become actions.

`_Desk` stands in for the approval flow in the shape `HostSocketDesk` speaks
(`hyperhive/top/approvals.py`), so the keys that approve and deny are tested through the shell
without git; `HostSocketDesk` itself is tested against a daemon's real approval flow below.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import trio
from rich.console import Console

from hyperhive import wire
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.testing.fake_containers import FakeBackend
from hyperhive.testing.manager_git import ManagerGit
from hyperhive.top import run_top
from hyperhive.top.approvals import HostSocketDesk


class _Desk:
    def __init__(self) -> None:
        self.rows = {
            7: wire.Approval(
                7, "bob", "apply_commit", "2027-01-15T08:00:00Z", "pending", "net on", "a1b2c3d"
            ),
            8: wire.Approval(
                8, "bob", "spawn", "2027-01-15T08:01:00Z", "pending", "carol", "b2c3d4e"
            ),
        }
        self.decided: list[tuple[str, int, str]] = []
        self.diffs: list[int] = []
        self.changed = trio.Event()

    async def pending(self) -> tuple[list[wire.Approval] | None, str]:
        return [row for row in self.rows.values() if row.status == "pending"], ""

    async def diff(self, id: int) -> str | None:
        self.diffs.append(id)
        return f"+diff of {id}"

    async def approve(self, id: int) -> None:
        self._decide("approved", id, "")

    async def deny(self, id: int, note: str) -> None:
        self._decide("denied", id, note)

    def _decide(self, status: str, id: int, note: str) -> None:
        import attrs

        self.rows[id] = attrs.evolve(self.rows[id], status=status)
        self.decided.append((status, id, note))
        self.changed.set()
        self.changed = trio.Event()


def _console(output: io.StringIO) -> Console:
    return Console(file=output, width=100, height=30, force_terminal=True, color_system=None)


async def test_top_shows_agents_and_new_messages_live(short_tmp: Path) -> None:
    output = io.StringIO()
    with trio.fail_after(20):
        async with (
            open_test_hive(short_tmp / "s", clock=FakeWallClock(), agents=("bob",)) as hive,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(run_top, hive.paths, _console(output))
            async with hive.operator() as operator:
                await operator.call(wire.Send(to="bob", body="watch this"))
            # The screen is repainted from the feed; this test polls it, bounded above.
            while "operator → bob: watch this" not in output.getvalue():
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    screen = output.getvalue()
    assert "hyperhive top · 1 agents" in screen
    assert "bob" in screen
    assert "absent" in screen
    assert "0 approvals" in screen


async def test_keys_approve_and_deny_through_the_desk(short_tmp: Path) -> None:
    output = io.StringIO()
    desk = _Desk()
    read_end, write_end = os.pipe()
    try:
        with trio.fail_after(20):
            async with (
                open_test_hive(short_tmp / "s", agents=("bob",)) as hive,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(
                    lambda: run_top(hive.paths, _console(output), keys=read_end, desk=desk)
                )
                os.write(write_end, b"\t\ty")  # approvals pane, approve #7: shows it, asks
                os.write(write_end, b"y")
                await desk.changed.wait()
                os.write(write_end, b"n")  # #8 is now the selection: deny asks, then why
                os.write(write_end, b"y")
                os.write(write_end, "too broad \u2014 split it\r".encode())
                await desk.changed.wait()
                while "denied #8" not in output.getvalue():  # the next frame; bounded above
                    await trio.sleep(0.05)
                os.write(write_end, b"q")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert desk.decided == [("approved", 7, ""), ("denied", 8, "too broad — split it")]
    assert desk.diffs == [7, 8]  # each was shown with its diff before the decision
    assert "0 approvals" in output.getvalue()


async def test_the_host_socket_desk_lists_shows_and_denies_a_real_approval(
    short_tmp: Path,
) -> None:
    git = ManagerGit(short_tmp / "git-home")
    with trio.fail_after(60):
        async with open_test_hive(short_tmp / "s", backend=FakeBackend()) as hive:
            async with hive.manager() as manager:
                await manager.call(wire.RequestInitConfig(name="carol"))
                proposed = RepoPaths(hive.paths.configs_dir).proposed("carol")
                sha = git.commit(proposed, {"agent.toml": '[env]\nGREETING = "hi"\n'}, "carol")
                asked = await manager.call(
                    wire.RequestSpawn(name="carol", commit_ref=sha, description="a new carol")
                )
            desk = HostSocketDesk(hive.paths.admin_socket)
            rows, note = await desk.pending()
            diff = await desk.diff(asked.id)
            await desk.deny(asked.id, "not yet")
            after, _ = await desk.pending()
            unknown = await desk.diff(asked.id + 100)
    assert note == ""
    assert rows is not None
    assert [(r.id, r.agent, r.kind, r.status, r.fetched_sha) for r in rows] == [
        (asked.id, "carol", "spawn", "pending", sha)
    ]
    assert diff is not None
    assert "+ env GREETING" in diff
    assert '+GREETING = "hi"' in diff
    assert after == []
    assert unknown is None


async def test_the_host_socket_desk_says_when_the_daemon_has_no_approval_flow(
    short_tmp: Path,
) -> None:
    async def old_daemon(stream: trio.SocketStream) -> None:
        async with stream:
            await wire.LineReader(stream).read_line()
            await stream.send_all(b'{"version":1,"ok":false,"error":"unknown cmd \'pending\'"}\n')

    socket = short_tmp / "admin.sock"
    listener = trio.socket.socket(trio.socket.AF_UNIX)
    await listener.bind(str(socket))
    listener.listen()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, old_daemon, [trio.SocketListener(listener)])
            rows, note = await HostSocketDesk(socket).pending()
            nursery.cancel_scope.cancel()
    assert rows is None
    assert note == "unknown cmd 'pending'"
