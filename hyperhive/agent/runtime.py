"""The turn runner seam: what the harness asks of a runtime, and a second runtime to prove it.

A `TurnRunner` runs one turn: it gets the wake prompt, publishes what happens on the events
bus as it goes, honours `TurnControl.interrupt`, and reports how the turn ended. The harness
decides everything else (acks, retries, rate-limit waits, stats). Claude Code is the default
runtime (`hyperhive.agent.claude`); `CommandRuntime` runs any command that reads the wake prompt
on stdin, which is how a different model CLI, or a shell script in a test, plugs in.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Protocol

import attrs
import trio

from hyperhive.agent.outcome import Outcome
from hyperhive.value import value
from hyperhive.wire.framing import LineReader
from hyperhive.wire.harness import LiveEventPayload, OutputLine

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.agent.stream import TurnTracker

__all__ = [
    "CommandRuntime",
    "Publish",
    "TurnControl",
    "TurnReport",
    "TurnRequest",
    "TurnRunner",
    "read_lines",
    "stop_process",
]

Publish = Callable[[LiveEventPayload], object]
LineHandler = Callable[[bytes], object]
EXIT_RATE_LIMITED: Final = 75  # EX_TEMPFAIL: a command runtime's way to say "rate limited"
_STOP_GRACE: Final = 5.0


@value
class TurnRequest:
    """One turn to run. ``prompt`` None means: only compact (an operator's request)."""

    prompt: str | None
    model: str | None = None
    fresh_session: bool = False
    compact_first: bool = False


@value
class TurnReport:
    outcome: Outcome
    tracker: TurnTracker
    detail: str = ""
    warm: bool | None = None  # whether the turn found its runtime already running (None: n/a)


class TurnControl:
    """The harness's handle on a running turn."""

    def __init__(self) -> None:
        self.interrupt = trio.Event()


class TurnRunner(Protocol):
    """Anything that can run a turn. `name` goes into turn stats."""

    name: str

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The runner's own life between turns (a warm process, say); never returns.

        The harness starts it before the first turn and cancels it when it stops.
        """
        ...

    async def run_turn(
        self, request: TurnRequest, control: TurnControl, publish: Publish
    ) -> TurnReport:
        """Run one turn to its end (or until interrupted); never raises for a failed turn.

        Cancellation: cancelling the caller kills the turn's processes.
        """
        ...


async def read_lines(
    stream: trio.abc.ReceiveStream, on_line: LineHandler, *, max_bytes: int
) -> None:
    """Call `on_line` for every line of `stream` until EOF (over-long lines are skipped)."""
    from hyperhive.errors import LineTooLong

    reader = LineReader(stream, max_bytes=max_bytes)
    while True:
        try:
            line = await reader.read_line()
        except LineTooLong:
            on_line(b'{"type":"hyperhive_line_too_long"}')
            continue
        if line is None:
            return
        on_line(line)


async def stop_process(process: trio.Process, grace: float = _STOP_GRACE) -> int:
    """Ask `process` (and its process group) to stop, then kill it after `grace` seconds."""
    with trio.move_on_after(grace, shield=True):
        if process.returncode is None:
            _signal_group(process, signal.SIGTERM)
        return await process.wait()
    _signal_group(process, signal.SIGKILL)
    with trio.move_on_after(grace, shield=True):
        return await process.wait()
    return -9


def _signal_group(process: trio.Process, signum: signal.Signals) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


@attrs.define(eq=False)  # a mutable holder: equal only to itself
class CommandRuntime:
    """Runs ``argv`` once per turn with the wake prompt on stdin.

    Every stdout line is published as an ``output`` event. Exit 0 is a good turn, exit 75
    (EX_TEMPFAIL) a rate limit, anything else a failure. The command gets the harness's
    environment plus ``HYPERHIVE_TURN_MODEL`` and ``HYPERHIVE_TURN_FRESH`` (1 for a new
    session). It has no compaction, so a compact-only request is a no-op.
    """

    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    name: str = "command"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing lives between turns: a process per turn."""
        task_status.started()
        await trio.sleep_forever()

    async def run_turn(
        self, request: TurnRequest, control: TurnControl, publish: Publish
    ) -> TurnReport:
        from hyperhive.agent.stream import TurnTracker  # a turn's, not start-up's

        tracker = TurnTracker()
        if request.prompt is None:
            return TurnReport(Outcome.OK, tracker, "nothing to compact")
        env = {
            **(self.env if self.env is not None else os.environ),
            "HYPERHIVE_TURN_MODEL": request.model or "",
            "HYPERHIVE_TURN_FRESH": "1" if request.fresh_session else "0",
        }
        try:
            process = await trio.lowlevel.open_process(
                list(self.argv),
                stdin=-1,
                stdout=-1,
                stderr=-2,  # STDOUT
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return TurnReport(Outcome.FAILED, tracker, f"cannot start {self.argv[0]}: {exc}")
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._feed, process.stdin, request.prompt)
                nursery.start_soon(self._watch_interrupt, control, process, nursery.cancel_scope)
                await read_lines(
                    process.stdout,
                    lambda line: publish(OutputLine(line.decode("utf-8", "replace"))),
                    max_bytes=1024 * 1024,
                )
                code = await process.wait()
                nursery.cancel_scope.cancel()
        finally:
            if process.returncode is None:
                await stop_process(process)
        if control.interrupt.is_set():
            return TurnReport(Outcome.INTERRUPTED, tracker, "interrupted on request")
        if code == 0:
            return TurnReport(Outcome.OK, tracker)
        if code == EXIT_RATE_LIMITED:
            return TurnReport(Outcome.RATE_LIMITED, tracker, f"{self.argv[0]} exited 75")
        return TurnReport(Outcome.FAILED, tracker, f"{self.argv[0]} exited {code}")

    @staticmethod
    async def _feed(stdin: trio.abc.SendStream, prompt: str) -> None:
        async with stdin:
            # A command that does not read its input: its exit code says the rest.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stdin.send_all(prompt.encode())

    @staticmethod
    async def _watch_interrupt(
        control: TurnControl, process: trio.Process, scope: trio.CancelScope
    ) -> None:
        await control.interrupt.wait()
        await stop_process(process)
