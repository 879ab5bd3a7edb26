"""What the agent is doing, in words a person reads: the semantic state behind the badges.

`Activity` is pure: it is fed the harness's live events (`observe`) and keeps the current
`wire.HarnessReport` (idle, thinking, running tool X, waiting on recv, compacting, retrying the
API, rate limited until T, backing off with the error, needs login, ...) and the badge numbers
(model, the last inference's context, the turn's cost). The harness's page server feeds it
from the events bus, answers ``state`` from it and writes its report to `wire.STATE_REPORT`
whenever it changes, for the daemon's row and ``hyperhive list``.

On a cold start the badges are seeded from the newest turn-stats row (`seed`), so they show
real numbers before the next turn ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import attrs

from hyperhive import wire

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Activity"]

# The harness's turn states (`harness.TurnState`) as activities.
_OF_STATE: Final = {
    "starting": "starting",
    "idle": "idle",
    "running": "thinking",
    "compacting": "compacting",
    "rate_limited": "rate_limited",
    "backing_off": "backing_off",
    "needs_login": "needs_login",
    "disconnected": "disconnected",
}
_RECV_TOOLS: Final = ("mcp__hive__recv",)


def _short(text: object, limit: int = 400) -> str:
    value = str(text) if text is not None else ""
    return value if len(value) <= limit else value[: limit - 1] + "…"


@attrs.define
class Activity:
    """See the module docstring."""

    report: wire.HarnessReport
    model: str | None = None
    ctx: int | None = None
    context_window: int | None = None
    cost_usd: float | None = None
    turns: int = 0
    last_seq: int = 0
    logged_in: bool | None = None
    _tools: dict[str, str] = attrs.field(factory=dict)  # open tool_use id -> name

    @classmethod
    def starting(cls, now: float) -> Activity:
        return cls(wire.HarnessReport("starting", now))

    def seed(self, row: Mapping[str, Any] | None) -> None:
        """Badges from the newest turn-stats row (`TurnStatsStore.recent(1)`), if any."""
        if not row:
            return
        self.model = self.model or row.get("model")
        self.ctx = row.get("ctx_tokens")
        self.context_window = row.get("context_window")
        self.cost_usd = row.get("cost_usd")

    def state(self, runtime: str, login: wire.LoginFlow) -> wire.PageState:
        return wire.PageState(
            report=self.report,
            model=self.model,
            ctx=self.ctx,
            context_window=self.context_window,
            cost_usd=self.cost_usd,
            turns=self.turns,
            last_seq=self.last_seq,
            logged_in=self.logged_in,
            login=login,
            runtime=runtime,
        )

    def observe(self, seq: int, at: float, kind: str, data: Mapping[str, Any]) -> bool:
        """Take one live event; True when the report changed (the caller rewrites the file)."""
        self.last_seq = max(self.last_seq, seq)
        before = self.report
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(at, data)
        return self.report != before

    def _set(self, at: float, activity: str, **fields: Any) -> None:
        current = self.report
        same = current.activity == activity and all(
            getattr(current, key) == value for key, value in fields.items()
        )
        if not same:
            self.report = wire.HarnessReport(activity, at, **fields)

    # -- harness events ---------------------------------------------------------------------

    def _on_state(self, at: float, data: Mapping[str, Any]) -> None:
        state = str(data.get("state", ""))
        activity = _OF_STATE.get(state, "idle")
        if activity in ("rate_limited", "backing_off") and self.report.activity == activity:
            return  # its event carries the detail; keep it
        if activity == "idle" and self.report.activity == "interrupted":
            return  # parked after a cancel until new work comes
        self._tools.clear()
        self._set(at, activity, detail="")
        if activity == "needs_login":
            self.logged_in = False

    def _on_turn_started(self, at: float, data: Mapping[str, Any]) -> None:
        self.turns += 1
        self._tools.clear()
        model = data.get("model")
        if isinstance(model, str) and model:
            self.model = model
        self._set(at, "compacting" if data.get("messages") == 0 else "thinking")

    def _on_turn_ended(self, at: float, data: Mapping[str, Any]) -> None:
        self._tools.clear()
        model = data.get("model")
        if isinstance(model, str) and model:
            self.model = model
        if data.get("outcome") == "interrupted":
            self._set(at, "interrupted", detail="cancelled from the page")

    def _on_usage(self, at: float, data: Mapping[str, Any]) -> None:
        self.ctx = data.get("ctx") if data.get("ctx") is not None else self.ctx
        self.cost_usd = data.get("cost_usd")
        window = data.get("context_window")
        self.context_window = window if window is not None else self.context_window

    def _on_model(self, at: float, data: Mapping[str, Any]) -> None:
        self.model = data.get("model")

    def _on_rate_limited(self, at: float, data: Mapping[str, Any]) -> None:
        retry_in = data.get("retry_in")
        until = at + float(retry_in) if isinstance(retry_in, int | float) else None
        self._set(at, "rate_limited", detail=_short(data.get("detail")), until=until)

    def _on_backing_off(self, at: float, data: Mapping[str, Any]) -> None:
        retry_in = data.get("retry_in")
        until = at + float(retry_in) if isinstance(retry_in, int | float) else None
        self._set(at, "backing_off", detail=_short(data.get("detail")), until=until)

    def _on_needs_login(self, at: float, data: Mapping[str, Any]) -> None:
        self.logged_in = False
        self._set(at, "needs_login", detail=_short(data.get("detail")))

    def _on_logged_in(self, at: float, data: Mapping[str, Any]) -> None:
        self.logged_in = True
        if self.report.activity == "needs_login":
            self._set(at, "idle")

    def _on_started(self, at: float, data: Mapping[str, Any]) -> None:
        if self.report.activity == "disconnected":
            self._set(at, "idle")

    # -- claude's stream --------------------------------------------------------------------

    def _on_stream(self, at: float, data: Mapping[str, Any]) -> None:
        if self.report.activity not in ("thinking", "tool", "waiting_recv", "retrying"):
            return
        kind = data.get("type")
        if kind == "assistant":
            self._on_assistant(at, data)
        elif kind == "user":
            self._on_tool_results(at, data)
        elif kind == "system" and data.get("subtype") == "api_retry":
            attempt, most = data.get("attempt"), data.get("max_retries")
            error = data.get("error") or "error"
            status = data.get("error_status")
            detail = f"API retry {attempt} of {most}: {error}" + (f" ({status})" if status else "")
            delay = data.get("retry_delay_ms")
            until = at + float(delay) / 1000 if isinstance(delay, int | float) else None
            self._set(at, "retrying", detail=_short(detail), until=until)

    def _blocks(self, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []

    def _on_assistant(self, at: float, data: Mapping[str, Any]) -> None:
        if data.get("parent_tool_use_id"):
            return  # a sub-agent's step: the Task tool is still what runs
        message = data.get("message")
        model = message.get("model") if isinstance(message, dict) else None
        if isinstance(model, str) and model and not model.startswith("<"):
            self.model = model
        for block in self._blocks(data):
            if block.get("type") == "tool_use":
                self._tools[str(block.get("id"))] = str(block.get("name", "?"))
        self._show_tools(at)

    def _on_tool_results(self, at: float, data: Mapping[str, Any]) -> None:
        if data.get("parent_tool_use_id"):
            return
        for block in self._blocks(data):
            if block.get("type") == "tool_result":
                self._tools.pop(str(block.get("tool_use_id")), None)
        self._show_tools(at)

    def _show_tools(self, at: float) -> None:
        if not self._tools:
            self._set(at, "thinking")
            return
        name = _short(next(reversed(self._tools.values())), 200)
        if name in _RECV_TOOLS:
            self._set(at, "waiting_recv", tool=name)
        else:
            self._set(at, "tool", tool=name)
