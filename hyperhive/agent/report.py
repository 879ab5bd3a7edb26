"""The harness's report: what the agent is doing and why (`wire.AgentReport`), in one place.

`Reporter` holds the report and is fed from both sides of the harness: the turn loop says where
it is (`state`: idle, running, rate limited until T, backing off with the error, needs login,
paused, ...) and how each turn ended (`turn_ended`: the last turn, an interrupted one, the
failures in a row); the running turn's live stream says what happens inside it (`stream`: the
tool it runs, waiting on recv, Claude retrying the API n of m). The page's badges are answered
from it (`hyperhive.agent.page_server`), and it rewrites ``hyperhive-report.json`` in the state
directory (atomically: a scratch file renamed over it) whenever it changes.

The daemon reads that file with every row it builds (`hyperhive.core.container_view`) as
hostile input: capped, never through a symlink, decoded strictly against the bounds declared on
`wire.AgentReport`, and turns it into the words `hyperhive list`, ``top``, the original's
``agent_status``, the dashboard and the agent's page show. A file, not a socket: it works the
same with the network off, costs the daemon nothing while nobody looks, and cannot make the
daemon wait on a hung harness.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

import attrs

from hyperhive.wire.codec import encode_report
from hyperhive.wire.harness import AgentReport, ApiRetrying, LastTurn

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from hyperhive.agent.stream import ApiRetry
    from hyperhive.clock import WallClock

__all__ = ["Reporter", "clip"]

_log = logging.getLogger(__name__)
_IN_A_TURN = ("running", "compacting")


def clip(text: str, limit: int = 300) -> str:
    """`text` on one line, at most `limit` characters (the report's field bound)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _blocks(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    message = data.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _retrying(event: ApiRetry) -> ApiRetrying:
    status = event.error_status
    return ApiRetrying(
        max(0, min(event.attempt, 1000)),
        max(0, min(event.max_retries, 1000)),
        clip(event.error or ""),
        status if status is not None and 0 <= status <= 999 else None,
    )


class Reporter:
    """Holds the current report and writes it when it changes (blocking, tiny: a few hundred
    bytes, like the harness's other sentinels)."""

    def __init__(self, path: Path, clock: WallClock) -> None:
        self._path = path
        self._clock = clock
        self.report = AgentReport("starting", clock.now())
        self._written: AgentReport | None = None
        self._tools: dict[str, str] = {}  # the running turn's open tool_use ids -> names

    def state(self, state: str, *, detail: str = "", until: float | None = None) -> None:
        """The loop entered `state` (or its reason changed). A new state drops what the turn
        was doing; only idle keeps an interrupted turn's mark (it waits for new work)."""
        report = self.report
        same = state == report.state
        if not same:
            self._tools.clear()
        self._set(
            attrs.evolve(
                report,
                state=state,
                since=report.since if same else self._clock.now(),
                detail=clip(detail),
                until=until,
                tool=report.tool if same else None,
                retry=report.retry if same else None,
                interrupted=report.interrupted and state == "idle",
            )
        )

    def stream(self, data: Mapping[str, Any]) -> None:
        """One stream-json line of the running turn's: the tool it runs, an API retry."""
        if self.report.state not in _IN_A_TURN or data.get("parent_tool_use_id"):
            return  # a sub-agent's step: the Task tool is still what runs
        kind = data.get("type")
        if kind == "system" and data.get("subtype") == "api_retry":
            from hyperhive.agent.stream import ApiRetry, decode  # the parser: not at start-up

            for event in decode(data):
                if isinstance(event, ApiRetry):
                    self._set(attrs.evolve(self.report, retry=_retrying(event)))
            return
        if kind == "assistant":
            for block in _blocks(data):
                if block.get("type") == "tool_use":
                    self._tools[str(block.get("id"))] = clip(str(block.get("name", "?")), 200)
        elif kind == "user":
            for block in _blocks(data):
                if block.get("type") == "tool_result":
                    self._tools.pop(str(block.get("tool_use_id")), None)
        else:
            return
        # The API answered: any retry is over.
        tool = next(reversed(self._tools.values())) if self._tools else None
        self._set(attrs.evolve(self.report, tool=tool, retry=None))

    def turn_ended(self, last: LastTurn, *, turns: int, failures: int) -> None:
        self._tools.clear()
        self._set(
            attrs.evolve(
                self.report,
                last_turn=last,
                turns=turns,
                failures=failures,
                tool=None,
                retry=None,
                interrupted=last.result == "interrupted",
            )
        )

    def _set(self, report: AgentReport) -> None:
        self.report = report
        if report != self._written:
            self._write(report)

    def _write(self, report: AgentReport) -> None:
        scratch = self._path.with_name(self._path.name + ".tmp")
        try:
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as file:
                file.write(encode_report(report))
            os.replace(scratch, self._path)
        except OSError as exc:
            _log.warning("cannot write the harness report %s: %s", self._path, exc)
            with contextlib.suppress(OSError):
                scratch.unlink()
            return
        self._written = report
