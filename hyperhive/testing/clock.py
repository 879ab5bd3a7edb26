"""A wall clock that moves with trio's clock, so `autojump_clock` drives both."""

from __future__ import annotations

import attrs
import trio
import trio.testing

__all__ = ["FakeWallClock", "thread_aware_autojump_clock"]


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


def thread_aware_autojump_clock() -> trio.testing.MockClock:
    """trio's autojump clock (threshold 0) that holds still while a worker thread runs.

    A task waiting on `trio.to_thread.run_sync` counts as blocked, so a plain autojump clock
    leaps to the next deadline while a sqlite commit is still in its thread: a 30 s call timeout
    fires in virtual time before a 0.2 ms commit returns. This clock skips the jump while any
    thread holds a token of trio's default thread limiter (which every store call here uses)
    and jumps as usual once they are done, so virtual time still costs no real time.

    Use it as a pytest fixture value; pytest-trio runs the test on any `Clock` fixture.
    """
    clock = trio.testing.MockClock(autojump_threshold=0)
    # MockClock is final, so wrap the hook trio's run loop calls when everything is idle.
    jump_when_idle = clock._autojump

    def autojump() -> None:
        if trio.to_thread.current_default_thread_limiter().borrowed_tokens == 0:
            jump_when_idle()

    clock._autojump = autojump  # type: ignore[method-assign]
    return clock
