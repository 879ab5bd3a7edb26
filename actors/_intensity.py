"""Restart intensity: how many failures a supervisor tolerates within a sliding window.

Pure synchronous code with `now` passed in, so it is tested without trio. The supervisor feeds
it `trio.current_time()`, which keeps it on trio's (fakeable) clock.

The rule is OTP's ``add_restart``: keep the stamps no older than ``now - period``, add ``now``,
and give up once more than `intensity` stamps remain. `intensity` sets the tolerated burst,
``intensity / period`` the tolerated sustained rate. Nested supervisors multiply their
intensities, so keep the top levels small.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RestartIntensity"]


class RestartIntensity:
    """A sliding window of failure stamps for one supervisor.

    >>> window = RestartIntensity(intensity=1, period=5.0)
    >>> window.record(0.0), window.record(3.0)
    (True, False)
    """

    def __init__(self, intensity: int, period: float) -> None:
        if intensity < 0:
            raise ValueError(f"intensity must be >= 0, not {intensity}")
        if not period > 0:
            raise ValueError(f"period must be > 0 seconds, not {period}")
        self.intensity = intensity
        self.period = period
        self._stamps: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Record a failure at `now`; return False when the supervisor must give up.

        Stamps older than ``now - period`` leave the window first, so failures spaced more
        than `period` apart never add up. `now` must not go backwards.
        """
        horizon = now - self.period
        while self._stamps and self._stamps[0] < horizon:
            self._stamps.popleft()
        self._stamps.append(now)
        return len(self._stamps) <= self.intensity

    @property
    def count(self) -> int:
        """The failures in the window as of the last `record` call."""
        return len(self._stamps)

    def __repr__(self) -> str:
        return f"RestartIntensity({self.intensity}, {self.period}, count={self.count})"
