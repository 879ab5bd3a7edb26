"""A scripted turn runner, so the harness loop can be tested in-process under `autojump_clock`.

`ScriptedRunner` records every `TurnRequest` and answers each with the next scripted step
(default: a good turn). Fault hooks are steps: `fail`, `rate_limit(resets_at)`,
`prompt_too_long`, `needs_login`, `hang` (runs until the harness interrupts it, then reports
an interrupted turn), `api_retrying` (prints Claude's ``api_retry`` line, holds the turn until
`release` is set, then fails it), or any callable that gets the request and returns a
`TurnReport`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import trio

from hyperhive import wire
from hyperhive.agent.outcome import Outcome
from hyperhive.agent.runtime import TurnControl, TurnReport, TurnRequest
from hyperhive.agent.stream import TurnTracker, Usage

if TYPE_CHECKING:
    from hyperhive.agent.runtime import Publish

__all__ = ["ScriptedRunner", "Step"]

Step = Callable[[TurnRequest, TurnControl], Awaitable[TurnReport]]


@attrs.define
class ScriptedRunner:
    """See the module docstring. Steps are consumed in order; then every turn is good."""

    name: str = "scripted"
    requests: list[TurnRequest] = attrs.field(factory=list)
    started: trio.Event = attrs.field(factory=trio.Event)  # set when a turn starts
    ctx_tokens: int = 1000
    context_window: int = 200_000
    release: trio.Event = attrs.field(factory=trio.Event)  # lets a held turn end
    _steps: deque[Step] = attrs.field(factory=deque)
    _publish: Publish | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def then(self, *steps: Step) -> ScriptedRunner:
        self._steps.extend(steps)
        return self

    async def run_turn(
        self, request: TurnRequest, control: TurnControl, publish: Publish
    ) -> TurnReport:
        self.requests.append(request)
        self._publish = publish
        self.started.set()
        self.started = trio.Event()
        publish(wire.StreamLine({"type": "scripted", "prompt": request.prompt}))
        await trio.lowlevel.checkpoint()
        step = self._steps.popleft() if self._steps else self.ok
        return await step(request, control)

    def _tracker(self, **changes: object) -> TurnTracker:
        tracker = TurnTracker(
            model="scripted-model",
            usage=Usage(100, 10, 0, 0),
            cost_usd=0.001,
            ctx_tokens=self.ctx_tokens,
            context_window=self.context_window,
        )
        for key, value in changes.items():
            setattr(tracker, key, value)
        return tracker

    async def ok(self, request: TurnRequest, control: TurnControl) -> TurnReport:
        return TurnReport(Outcome.OK, self._tracker(tool_calls={"mcp__hive__send": 1}), "done")

    async def fail(self, request: TurnRequest, control: TurnControl) -> TurnReport:
        return TurnReport(Outcome.FAILED, self._tracker(), "scripted failure")

    async def prompt_too_long(self, request: TurnRequest, control: TurnControl) -> TurnReport:
        return TurnReport(Outcome.PROMPT_TOO_LONG, self._tracker(), "prompt is too long")

    async def needs_login(self, request: TurnRequest, control: TurnControl) -> TurnReport:
        return TurnReport(Outcome.NEEDS_LOGIN, self._tracker(), "not logged in")

    def rate_limit(self, resets_at: float | None = None) -> Step:
        async def step(request: TurnRequest, control: TurnControl) -> TurnReport:
            tracker = self._tracker(resets_at=resets_at, rate_limit_rejected=True)
            return TurnReport(Outcome.RATE_LIMITED, tracker, "You've hit your limit")

        return step

    def api_retrying(self, attempt: int, max_retries: int, error: str, status: int) -> Step:
        async def step(request: TurnRequest, control: TurnControl) -> TurnReport:
            assert self._publish is not None
            line = {
                "type": "system",
                "subtype": "api_retry",
                "attempt": attempt,
                "max_retries": max_retries,
                "retry_delay_ms": 1000,
                "error_status": status,
                "error": error,
            }
            self._publish(wire.StreamLine(line))
            await self.release.wait()
            self.release = trio.Event()
            return TurnReport(Outcome.FAILED, self._tracker(), f"API Error: {status} {error}")

        return step

    async def hang(self, request: TurnRequest, control: TurnControl) -> TurnReport:
        await control.interrupt.wait()
        return TurnReport(Outcome.INTERRUPTED, self._tracker(), "interrupted")
