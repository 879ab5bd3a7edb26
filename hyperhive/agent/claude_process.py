"""One running ``claude -p`` in stream-json mode: its pumps, its turns, its watchdog.

A `ClaudeProcess` is started by the Claude runtime (`agent/claude.py`) and may serve many
turns (warm) or one (cold). Its stdout and stderr are pumped by tasks in the runtime's nursery
for as long as it lives, so a process that dies between turns is noticed at once. Every stdout
line goes to the events bus (``stream``) and, while a turn is attached, into that turn's
`TurnTracker`.

`ask` sends one user message and waits for its ``result`` while a watchdog looks after the
process: an interrupt request becomes an ``interrupt`` control request (and a kill if claude
has not stopped within the grace); a process that says nothing at all after a message
(`Limits.answer_timeout`) or goes silent inside a turn (`Limits.stall_timeout`) is killed as
wedged. `control` sends other control requests (``set_model``) and waits for their answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import uuid
from typing import TYPE_CHECKING, Any, Final

import trio

from hyperhive.agent.runtime import read_lines, stop_process
from hyperhive.agent.stream import (
    ControlResponse,
    Init,
    Result,
    StreamEvent,
    TurnTracker,
    decode,
    parse_line,
)
from hyperhive.wire.harness import HIVE_SERVER, Note, StderrLine, StreamLine

if TYPE_CHECKING:
    from collections.abc import Callable

    from hyperhive.agent.claude import Limits
    from hyperhive.agent.runtime import Publish, TurnControl

__all__ = ["ClaudeProcess"]

_MAX_LINE: Final = 32 * 1024 * 1024  # a tool result can be large; the SDK's 1 MiB cap bit people
_STDERR_TAIL: Final = 20
_log = logging.getLogger(__name__)


def user_message(text: str) -> bytes:
    message = {
        "type": "user",
        "message": {"role": "user", "content": text},
        "parent_tool_use_id": None,
        "session_id": "default",
        "uuid": str(uuid.uuid4()),
    }
    return json.dumps(message).encode() + b"\n"


def control_request(subtype: str, **fields: Any) -> tuple[str, bytes]:
    request_id = f"hyperhive-{uuid.uuid4().hex[:12]}"
    body = {"type": "control_request", "request_id": request_id}
    body["request"] = {"subtype": subtype, **fields}  # type: ignore[assignment]
    return request_id, json.dumps(body).encode() + b"\n"


class ClaudeProcess:
    """See the module docstring. Start it with `start` inside a nursery that outlives turns."""

    def __init__(
        self,
        process: trio.Process,
        publish: Publish,
        *,
        model: str | None,
        resumed: str | None,
        limits: Limits,
        on_exit: Callable[[], object] = lambda: None,
    ) -> None:
        self.process = process
        self.pid = process.pid
        self.model = model  # what it was started with, or set_model changed it to
        self.session_id = resumed
        self.resumed = resumed is not None
        self.limits = limits
        self.started_at = trio.current_time()
        self.turns = 0
        self.total_cost = 0.0  # the last total_cost_usd: cumulative for the process
        self.hive_status: str | None = None  # the hive MCP server, as the last init reported it
        self.wedged: str | None = None  # why the watchdog killed it
        self.unanswered = False  # killed because a message got no output at all
        self.lines = 0
        self.last_line_at = self.started_at
        self.stderr_tail: list[str] = []
        self.exited = trio.Event()
        self._publish = publish
        self._on_exit = on_exit
        self._tracker: TurnTracker | None = None
        self._asks = 0
        self._asking = False
        self._result: Result | None = None
        self._result_ready = trio.Event()
        self._unclaimed: Result | None = None
        self._controls: dict[str, trio.Event] = {}
        self._control_answers: dict[str, str] = {}

    def start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._pump_stdout)
        nursery.start_soon(self._pump_stderr)

    @property
    def alive(self) -> bool:
        return not self.exited.is_set() and self.process.returncode is None

    @property
    def has_conversation(self) -> bool:
        """Whether there is anything to compact (a resumed session or a turn of its own)."""
        return self.resumed or self.turns > 0

    # -- pumps --------------------------------------------------------------------------------

    async def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        try:
            await read_lines(self.process.stdout, self._on_line, max_bytes=_MAX_LINE)
        finally:
            self.exited.set()
            self._result_ready.set()
            for event in self._controls.values():
                event.set()
            self._on_exit()

    def _on_line(self, line: bytes) -> None:
        self.lines += 1
        self.last_line_at = trio.current_time()
        try:
            for obj in parse_line(line):
                self._publish(StreamLine(obj))
                for event in decode(obj):
                    self._observe(event)
        except Exception:  # the parser never raises; a bug here must not end the harness
            _log.exception("dropped a stdout line of claude %d", self.pid)

    def _observe(self, event: StreamEvent) -> None:
        match event:
            case Init(session_id=session_id, mcp_servers=servers):
                self.session_id = session_id or self.session_id
                self.hive_status = dict(servers).get(HIVE_SERVER, self.hive_status)
            case ControlResponse(request_id=request_id, subtype=subtype):
                if request_id in self._controls:
                    self._control_answers[request_id] = subtype
                    self._controls[request_id].set()
        if self._tracker is not None:
            self._tracker.observe(event)
        if isinstance(event, Result):
            self.session_id = event.session_id or self.session_id
            self.total_cost = max(self.total_cost, event.total_cost_usd)
            if self._asking:
                self._result = event
                self._result_ready.set()
            else:
                self._unclaimed = event

    async def _pump_stderr(self) -> None:
        assert self.process.stderr is not None

        def on_line(line: bytes) -> None:
            text = line.decode("utf-8", "replace")
            self.stderr_tail = [*self.stderr_tail[-(_STDERR_TAIL - 1) :], text]
            self._publish(StderrLine(text))

        await read_lines(self.process.stderr, on_line, max_bytes=1024 * 1024)

    # -- talking to it ------------------------------------------------------------------------

    def attach(self, tracker: TurnTracker) -> None:
        """Feed this turn's events to `tracker` (cost diffed against the process's total)."""
        tracker.total_cost_before = self.total_cost
        self._tracker = tracker

    def detach(self) -> None:
        self._tracker = None

    async def send(self, data: bytes) -> bool:
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return False
        return True

    async def ask(self, text: str, control: TurnControl) -> Result | None:
        """Send one user message and wait for its result.

        None: the process ended, or the watchdog killed it, without one. A result the process
        printed before anything was asked (an unknown ``--resume`` id) answers the first ask.

        Cancellation: stops waiting; the process is left as it is (the caller kills it).
        """
        self._asks += 1
        if self._asks == 1 and self._unclaimed is not None:
            return self._unclaimed
        self._unclaimed = None
        self._result = None
        self._result_ready = trio.Event()
        if self.exited.is_set():
            return None
        self._asking = True
        try:
            lines_before = self.lines
            if await self.send(user_message(text)):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch, control, lines_before)
                    await self._result_ready.wait()
                    nursery.cancel_scope.cancel()
            else:
                await self.exited.wait()
            if self._result is None and self.exited.is_set():
                await self.reap()  # so the turn's failure can say how it ended
        finally:
            self._asking = False
        return self._result

    async def _watch(self, control: TurnControl, lines_before: int) -> None:
        """Interrupt on request; kill a process that does not stop, answer, or speak."""
        limits = self.limits
        answer_by = trio.current_time() + limits.answer_timeout
        stop_by = math.inf
        while True:
            deadlines = [self.last_line_at + limits.stall_timeout, stop_by]
            if self.lines == lines_before:
                deadlines.append(answer_by)
            deadline = min(deadlines)
            if trio.current_time() >= deadline:
                break
            with trio.move_on_at(deadline):
                if stop_by == math.inf:
                    await control.interrupt.wait()
                    await self.send(control_request("interrupt")[1])
                    stop_by = trio.current_time() + limits.interrupt_grace
                else:
                    await trio.sleep_forever()
        now = trio.current_time()
        if now >= stop_by:
            grace = limits.interrupt_grace
            self.wedged = f"claude did not stop within {grace:.0f}s of the interrupt"
        elif self.lines == lines_before:
            self.unanswered = True
            self.wedged = f"claude did not answer within {limits.answer_timeout:.0f}s"
        else:
            self.wedged = f"claude stopped answering (no output for {limits.stall_timeout:.0f}s)"
        self._publish(Note(f"{self.wedged}: killing it (pid {self.pid})"))
        await self.kill()

    async def control(self, subtype: str, **fields: Any) -> bool:
        """Send a control request; True if claude answered it with success in time."""
        request_id, data = control_request(subtype, **fields)
        answered = self._controls[request_id] = trio.Event()
        try:
            if not await self.send(data):
                return False
            with trio.move_on_after(self.limits.control_timeout):
                await answered.wait()
            return self._control_answers.get(request_id) == "success"
        finally:
            self._controls.pop(request_id, None)
            self._control_answers.pop(request_id, None)

    # -- ending it ----------------------------------------------------------------------------

    async def close(self) -> int:
        """Close stdin and wait for claude to exit (bounded, then killed)."""
        assert self.process.stdin is not None
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self.process.stdin.aclose()
        with trio.move_on_after(self.limits.exit_grace, shield=True):
            return await self.process.wait()
        return await self.kill()

    async def reap(self) -> int:
        """Its stdout has ended: wait for the exit (its grace, then a kill) for its status.

        How it ended is told only after this (`ask` reaps before `failure`,
        `exited_between_turns` itself): claude's stdout closes a moment before its exit can be
        reaped."""
        with trio.move_on_after(self.limits.exit_grace):
            return await self.process.wait()
        return await self.kill()

    async def kill(self) -> int:
        """Stop it now (SIGTERM, then SIGKILL); returns the exit status."""
        return await stop_process(self.process)

    @property
    def answered(self) -> bool:
        """Whether its last `ask` got a ``result``."""
        return self._result is not None

    def failure(self) -> str:
        """Why a turn got no result from this process: it was wedged, or how it ended before
        the turn's result (``claude was killed by SIGKILL before the turn's result``)."""
        if self.wedged:
            return self.wedged
        return self._ended("before the turn's result")

    async def exited_between_turns(self) -> str:
        """How a process that had answered its turn ended after it, before the next one
        (``claude exited with status 1 between turns: <its last stderr>``), once reaped."""
        await self.reap()
        return self._ended("between turns")

    def _ended(self, when: str) -> str:
        code = self.process.returncode
        if code is None:
            how = "stopped"  # its stdout ended; the exit status is not known yet
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        tail = " | ".join(self.stderr_tail[-3:])
        return f"claude {how} {when}" + (f": {tail}" if tail else "")
