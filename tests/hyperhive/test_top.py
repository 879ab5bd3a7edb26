"""`hyperhive top`'s shell in process: a real daemon's feed and replies reach the screen, and
keys (written into a pipe) become actions.

The approval flow is not served by the daemon yet (issue 12): `_Desk` stands in for it, in the
shape `HostSocketDesk` speaks (`hyperhive/top/approvals.py`), so the keys that approve and deny
are tested end to end through the shell.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import trio
from rich.console import Console

from hyperhive import wire
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.top import run_top
from hyperhive.top.approvals import ApprovalRow, HostSocketDesk


class _Desk:
    def __init__(self) -> None:
        self.rows = {
            7: ApprovalRow(
                7, "bob", "apply_commit", "2027-01-15T08:00:00Z", "pending", "net on", "a1b2c3d"
            ),
            8: ApprovalRow(
                8, "bob", "spawn", "2027-01-15T08:01:00Z", "pending", "carol", "b2c3d4e"
            ),
        }
        self.decided: list[tuple[str, int, str]] = []
        self.diffs: list[int] = []
        self.changed = trio.Event()

    async def pending(self) -> tuple[list[ApprovalRow] | None, str]:
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
    assert "no approval flow here (unknown cmd 'pending'" in screen


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


async def test_the_host_socket_desk_says_when_the_daemon_has_no_approval_flow(
    short_tmp: Path,
) -> None:
    with trio.fail_after(10):
        async with open_test_hive(short_tmp / "s") as hive:
            rows, note = await HostSocketDesk(hive.paths.admin_socket).pending()
    assert rows is None
    assert note.startswith("unknown cmd 'pending'")
