"""The harness's report to the daemon: where its turn loop is, and why (`wire.AgentReport`).

The harness rewrites ``hyperhive-report.json`` in its state directory (atomically: a scratch
file renamed over it) whenever its state, the reason for it or its last turn changes, and when
Claude retries an API call inside a turn. The daemon reads it with every row it builds
(`hyperhive.core.container_view`) as hostile input: capped, never through a symlink, decoded
strictly against the bounds declared on `wire.AgentReport`. That is how `hyperhive list`, the
original's ``agent_status`` and the dashboard say why an agent is stuck: needs login, API
retry 3 of 10 with the error, rate limited until 14:05, backing off, paused.

A file, not a socket: it works the same with the network off, costs the daemon nothing while
nobody looks, and cannot make the daemon wait on a hung harness.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

import attrs

from hyperhive import wire

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.clock import WallClock

__all__ = ["Reporter", "clip"]

_log = logging.getLogger(__name__)


def clip(text: str, limit: int = 300) -> str:
    """`text` on one line, at most `limit` characters (the report's field bound)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Reporter:
    """Holds the current report and writes it when it changes (blocking, tiny: a few hundred
    bytes, like the harness's other sentinels)."""

    def __init__(self, path: Path, clock: WallClock) -> None:
        self._path = path
        self._clock = clock
        self.report = wire.AgentReport("starting", clock.now())
        self._written: wire.AgentReport | None = None

    def state(self, state: str, *, detail: str = "", until: float | None = None) -> None:
        """The loop entered `state` (or its reason changed); a new state drops an API retry."""
        report = self.report
        since = report.since if state == report.state else self._clock.now()
        retry = report.retry if state == report.state else None
        self._set(
            attrs.evolve(
                report, state=state, since=since, detail=clip(detail), until=until, retry=retry
            )
        )

    def retrying(self, retry: wire.ApiRetrying | None) -> None:
        """Claude is retrying an API call in the running turn (None: it is not)."""
        self._set(attrs.evolve(self.report, retry=retry))

    def turn_ended(self, last: wire.LastTurn, *, turns: int, failures: int) -> None:
        self._set(
            attrs.evolve(self.report, last_turn=last, turns=turns, failures=failures, retry=None)
        )

    def _set(self, report: wire.AgentReport) -> None:
        self.report = report
        if report != self._written:
            self._write(report)

    def _write(self, report: wire.AgentReport) -> None:
        scratch = self._path.with_name(self._path.name + ".tmp")
        try:
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as file:
                file.write(wire.encode_report(report))
            os.replace(scratch, self._path)
        except OSError as exc:
            _log.warning("cannot write the harness report %s: %s", self._path, exc)
            with contextlib.suppress(OSError):
                scratch.unlink()
            return
        self._written = report
