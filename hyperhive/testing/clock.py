"""A wall clock that moves with trio's clock, so `autojump_clock` drives both."""

from __future__ import annotations

import attrs
import trio

__all__ = ["FakeWallClock"]


@attrs.define
class FakeWallClock:
    """`now()` is `epoch + trio.current_time()`; `advance` adds a fixed offset (a clock jump)."""

    epoch: float = 1_700_000_000.0
    offset: float = 0.0

    def now(self) -> float:
        """Wall-clock seconds, moving in lockstep with trio's (possibly virtual) clock."""
        return self.epoch + self.offset + trio.current_time()

    def advance(self, seconds: float) -> None:
        """Jump the wall clock without moving trio's clock (a daemon that was down, say)."""
        self.offset += seconds
