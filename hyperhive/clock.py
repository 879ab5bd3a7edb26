"""Wall-clock time as an injectable port.

Durations, deadlines and timeouts use trio's clock (`trio.current_time`, `trio.sleep_until`) so
`autojump_clock` can drive them in tests. Facts that must mean something outside the process (a
message's `sent_at`, a reminder's due date, a row's `acked_at`) come from a `WallClock`, which
tests replace with `hyperhive.testing.FakeWallClock`.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SystemClock", "WallClock"]


class WallClock(Protocol):
    """Anything that tells the time as unix seconds."""

    def now(self) -> float:
        """Seconds since the epoch, as a float."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        """Seconds since the epoch, from the system clock."""
        return time.time()
