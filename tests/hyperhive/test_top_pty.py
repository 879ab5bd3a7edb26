"""`hyperhive top` in a pseudo-terminal, against a real daemon with 40 registered agents.

The real command runs on a pty of 80x24 or 120x50; pyte plays the terminal, so these tests see
the screen a person would, and type keys as one would. Process tests: real time, bounded by
each wait's deadline.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.testing import DaemonProcess
from hyperhive.testing.terminal import Terminal

pytestmark = pytest.mark.slow

AGENTS = [f"a{i:02d}" for i in range(1, 41)]
QUESTION = "Which colour [bold]do[/bold] you like?"


async def _populate(paths: StatePaths) -> None:
    async with open_client(paths.admin_socket) as admin:
        for name in AGENTS:
            await admin.call(wire.RegisterAgent(name=name))
    async with open_client(paths.agent_socket("a03")) as a03:
        await a03.call(wire.Ask(question=QUESTION, options=("blue", "green")))
        await a03.call(wire.Send(to="a07", body="status: \x1b[31mall green"))


@pytest.fixture
def hive(short_tmp: Path) -> Iterator[StatePaths]:
    with DaemonProcess(short_tmp, "--no-manager"):
        paths = StatePaths(short_tmp)
        trio.run(_populate, paths)
        yield paths


def _top(paths: StatePaths, columns: int, lines: int) -> Terminal:
    return Terminal(["top", "--state-dir", str(paths.root)], columns=columns, lines=lines)


def _has_every_pane(screen: str) -> bool:
    return all(
        title in screen for title in (" agents ", " questions ", " approvals ", " messages ")
    )


async def _answers(paths: StatePaths) -> list[wire.Question]:
    async with open_client(paths.admin_socket) as admin:
        reply = await admin.call(wire.ListQuestions(answered=True))
    return list(reply.questions)


async def _recv(paths: StatePaths, name: str) -> list[wire.Delivery]:
    async with open_client(paths.agent_socket(name)) as agent:
        reply = await agent.call(wire.Recv(wait_seconds=5, max=8))
    return list(reply.messages)


def test_top_at_80x24_with_40_agents_scrolls_and_answers_a_question(hive: StatePaths) -> None:
    with _top(hive, 80, 24) as term:
        screen = term.wait_for(lambda s: "40 agents" in s and "a01" in s and "#1" in s)
        assert _has_every_pane(screen)
        lines = screen.splitlines()
        assert len(lines) == 24
        assert lines[0].startswith("hyperhive top · 40 agents · 1 questions")
        assert lines[-1].startswith("?:help q:quit")
        assert "agents 1-" in screen
        assert "of 40 ↓" in screen
        assert "a03: Which colour [bold]do[/" in screen  # markup shown as typed
        assert "a03 → a07: status: \\x1b[31mall green" in screen
        assert any(row.startswith("a01 ") for row in term.highlighted())  # the selection

        term.press("end")  # the last agent, scrolled into view
        screen = term.wait_for(lambda s: "a40" in s)
        assert "of 40 ↑" in screen
        assert _has_every_pane(screen)
        assert any(row.startswith("a40 ") for row in term.highlighted())

        term.press("tab", "a")
        term.wait_for(lambda s: "answer #1 (a03: Which colour" in s)
        term.press("tab")  # the first option
        term.wait_for(lambda s: "> blue█" in s)
        term.type(", of course")
        term.press("enter")
        screen = term.wait_for(lambda s: "answered #1 for a03" in s)
        assert "0 questions" in screen
        assert "none open" in screen
    assert term.proc.returncode == 0
    assert term.raw.endswith(b"\x1b[?1049l") or b"\x1b[?1049l" in term.raw[-200:]
    [answered] = trio.run(_answers, hive)
    assert (answered.id, answered.answer, answered.answerer) == (1, "blue, of course", "operator")


def test_top_at_120x50_with_40_agents_sends_and_follows_a_resize(hive: StatePaths) -> None:
    with _top(hive, 120, 50) as term:
        screen = term.wait_for(lambda s: "40 agents" in s and "a30" in s)
        assert _has_every_pane(screen)
        lines = screen.splitlines()
        assert len(lines) == 50
        shown = re.search(r"agents 1-(\d+) of 40 ↓", screen)
        assert shown is not None
        assert int(shown.group(1)) >= 30  # the panes below need few lines: the agents get them
        assert "ctx   cost   mail  last" in screen  # the wide columns
        term.press("down", "down", "s")
        term.wait_for(lambda s: "send to a03 > █" in s)
        term.type("please report")
        term.press("enter")
        term.wait_for(lambda s: "sent #" in s and "operator → a03: please report" in s)

        term.resize(columns=80, lines=24)
        screen = term.wait_for(lambda s: "ctx cost mail last" in s)
        assert _has_every_pane(screen)
        assert screen.splitlines()[-1].startswith("?:help")
        assert any(row.startswith("a03 ") for row in term.highlighted())
        term.type("\x03")  # Ctrl-C: the terminal's SIGINT, as in a real one
        # It exits at once: the test terminal starts `top` with SIGINT at its default, as a
        # user's terminal does (a run that inherited it ignored once looked like a slow
        # machine and got 30 s here). The bound only stops a hang.
        assert term.proc.wait(10) == 0
    assert b"Traceback" not in term.raw
    assert b"\x1b[?1049l" in term.raw[-100:]  # back from the alternate screen
    [delivered] = trio.run(_recv, hive, "a03")
    assert (delivered.sender, delivered.body) == ("operator", "please report")


def test_top_says_so_when_the_daemon_goes_away(short_tmp: Path) -> None:
    serve = DaemonProcess(short_tmp, "--no-manager").start()
    try:
        with _top(StatePaths(short_tmp), 80, 24) as term:
            term.wait_for(lambda s: " agents " in s and " messages " in s)
            serve.__exit__(None, None, None)
            assert term.proc.wait(15) == 1
    finally:
        serve.kill()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.raw.decode(errors="replace"))
    assert "error: the daemon closed the event feed" in text
    assert "Traceback" not in text


def _ticks(screen: str) -> list[int]:
    return [int(line[5:].split()[0]) for line in screen.splitlines() if line.startswith("tick-")]


def test_top_follows_an_agents_live_log(short_tmp: Path) -> None:
    script = "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.3; done"
    command = shlex.join(["sh", "-c", script])
    serve = DaemonProcess(
        short_tmp, "--backend", "process", "--agent-command", command, "--no-manager"
    )
    with serve:
        paths = StatePaths(short_tmp)
        with open_client_sync(paths) as spawn:
            spawn(wire.Spawn(name="bob"))
        with _top(paths, 80, 24) as term:
            term.wait_for(lambda s: "bob" in s and "running" in s)
            term.press("l")
            screen = term.wait_for(lambda s: "log: bob" in s and bool(_ticks(s)))
            seen = max(_ticks(screen))
            term.wait_for(lambda s: max(_ticks(s), default=0) > seen)  # live: it keeps coming
            term.press("escape")
            term.wait_for(lambda s: " messages " in s and "stopped following bob" in s)


class open_client_sync:
    """One admin request from a plain (non-trio) test."""

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths

    def __enter__(self):  # type: ignore[no-untyped-def]
        def call(request: wire.Request) -> None:
            async def run() -> None:
                async with open_client(self.paths.admin_socket) as admin:
                    await admin.call(request)

            trio.run(run)

        return call

    def __exit__(self, *exc: object) -> None:
        pass
