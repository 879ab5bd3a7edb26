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
        """Wall-clock seconds, moving in lockstep with trio's (possibly virtual) clock.

        Works from a `trio.to_thread` worker too (a store stamping a row asks the trio thread).
        """
        return self.epoch + self.offset + _trio_now()

    def advance(self, seconds: float) -> None:
        """Jump the wall clock without moving trio's clock (a daemon that was down, say)."""
        self.offset += seconds


def _trio_now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # not in the trio thread: a worker thread of `trio.to_thread`
        return trio.from_thread.run_sync(trio.current_time)
