"""The agent page's badge numbers: model, the last inference's context, the turn's cost.

`Activity` is pure: it is fed the harness's live events (`observe`) and keeps the numbers the
page's badges show, and whether Claude is logged in. What the agent is doing and why is not
here: that is the harness's report (`hyperhive.agent.report`), which `state` joins in.

On a cold start the badges are seeded from the newest turn-stats row (`seed`), so they show
real numbers before the next turn ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hyperhive.wire.harness import AgentReport
    from hyperhive.wire.page import LoginFlow, PageState

__all__ = ["Activity"]


@attrs.define(eq=False)  # a mutable holder: equal only to itself
class Activity:
    """See the module docstring."""

    model: str | None = None
    ctx: int | None = None
    context_window: int | None = None
    cost_usd: float | None = None
    turns: int = 0
    last_seq: int = 0
    logged_in: bool | None = None

    def seed(self, row: Mapping[str, Any] | None) -> None:
        """Badges from the newest turn-stats row (`TurnStatsStore.recent(1)`), if any."""
        if not row:
            return
        self.model = self.model or row.get("model")
        self.ctx = row.get("ctx_tokens")
        self.context_window = row.get("context_window")
        self.cost_usd = row.get("cost_usd")

    def state(self, report: AgentReport, runtime: str, login: LoginFlow) -> PageState:
        from hyperhive.wire.page import PageState  # at a page request, not at start

        return PageState(
            report=report,
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

    def observe(self, seq: int, kind: str, data: Mapping[str, Any]) -> None:
        """Take one live event."""
        self.last_seq = max(self.last_seq, seq)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(data)

    # -- harness events ---------------------------------------------------------------------

    def _on_state(self, data: Mapping[str, Any]) -> None:
        if data.get("state") == "needs_login":
            self.logged_in = False

    def _on_turn_started(self, data: Mapping[str, Any]) -> None:
        self.turns += 1
        self._ran_on(data.get("model"))

    def _on_turn_ended(self, data: Mapping[str, Any]) -> None:
        self._ran_on(data.get("model"))

    def _on_usage(self, data: Mapping[str, Any]) -> None:
        self.ctx = data.get("ctx") if data.get("ctx") is not None else self.ctx
        self.cost_usd = data.get("cost_usd")
        window = data.get("context_window")
        self.context_window = window if window is not None else self.context_window

    def _on_model(self, data: Mapping[str, Any]) -> None:
        self.model = data.get("model")

    def _ran_on(self, model: object) -> None:
        if isinstance(model, str) and model:
            self.model = model

    def _on_needs_login(self, data: Mapping[str, Any]) -> None:
        self.logged_in = False

    def _on_logged_in(self, data: Mapping[str, Any]) -> None:
        self.logged_in = True

    # -- claude's stream --------------------------------------------------------------------

    def _on_stream(self, data: Mapping[str, Any]) -> None:
        if data.get("type") != "assistant" or data.get("parent_tool_use_id"):
            return
        message = data.get("message")
        model = message.get("model") if isinstance(message, dict) else None
        if isinstance(model, str) and model and not model.startswith("<"):
            self.model = model
