"""Issue 9, item 5: the operator's terminal shows agent text literally.

A real daemon and the real `hyperhive` commands, with text an agent controls: message bodies,
questions, its own log output. Nothing of it is interpreted as rich markup, and no control
character but newline and tab reaches the terminal as itself.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
import trio

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.testing import DaemonProcess, run_cli
from hyperhive.tui import visible

pytestmark = pytest.mark.slow

MARKUP = "[/x] [bold]not bold[/bold] [link=https://example.invalid]click[/link] [/oops]"
ESCAPES = "\x1b]0;pwned\x07\x1b[2Jcleared\x9b31m\u202eevil"


def _ok(state: Path, *args: str) -> str:
    result = run_cli(state, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


async def _as_alice(paths: StatePaths) -> None:
    async with open_client(paths.agent_socket("alice")) as alice:
        await alice.call(wire.Send(to="operator", body=MARKUP))
        await alice.call(wire.Send(to="operator", body=ESCAPES))
        await alice.call(wire.Ask(question=MARKUP, options=("[/a]", "[red]b")))
        await alice.call(wire.Remind(message=MARKUP, delay_seconds=600))


def test_issue9_agent_markup_and_escapes_are_shown_literally(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no table cell wraps
    with DaemonProcess(short_tmp):
        _ok(short_tmp, "register", "alice")
        trio.run(_as_alice, StatePaths(short_tmp))
        for command in ("inbox", "questions", "reminders"):
            out = _ok(short_tmp, command)
            assert "\x1b" not in out, command
            assert "\x07" not in out, command
            assert "\x9b" not in out, command
            assert "\u202e" not in out, command
            # On main `inbox` and `questions` crashed with a MarkupError (exit 1).
            assert MARKUP in out, command


def test_issue9_an_event_line_shows_agent_text_literally() -> None:
    from rich.console import Console

    from hyperhive.tui import event_line

    message = wire.Message(1, "alice", "operator", ESCAPES + MARKUP, 1700000000.0)
    line = event_line(wire.Event(1, 1700000000.0, wire.MessageSent(message)))
    console = Console(width=400, force_terminal=False)
    with console.capture() as captured:
        console.print(line)
    shown = captured.get()
    assert "[/x] [bold]not" in shown
    assert "\x1b" not in shown
    assert "\\x1b]0;pwned" in shown


def test_issue9_an_agents_log_cannot_drive_the_operators_terminal(short_tmp: Path) -> None:
    script = f"printf '%s\\n' {shlex.quote(ESCAPES)}; exec sleep 60"
    command = shlex.join(["sh", "-c", script])
    serve = DaemonProcess(
        short_tmp, "--backend", "process", "--agent-command", command, "--no-manager"
    )
    with serve:
        _ok(short_tmp, "spawn", "alice")
        deadline = time.monotonic() + 10
        while "cleared" not in (out := _ok(short_tmp, "logs", "alice")):
            assert time.monotonic() < deadline, out
            time.sleep(0.05)
        assert "\x1b" not in out
        assert "\x07" not in out
        assert "\x9b" not in out
        assert visible(ESCAPES) in out
        assert "\\x1b]0;pwned\\x07\\x1b[2Jcleared\\x9b31m\\u202eevil" in out
        raw = _ok(short_tmp, "logs", "alice", "--raw")
        assert ESCAPES in raw  # only when asked for


def test_issue9_help_pages_show_their_defaults(short_tmp: Path) -> None:
    out = _ok(short_tmp, "status", "--help")
    assert "[default: ~/.local/state/hyperhive]" in " ".join(out.split())
    serve = " ".join(_ok(short_tmp, "serve", "--help").split())
    assert "[default: bwrap if bubblewrap works here, else process]" in serve
    assert "default: they/them" in serve
