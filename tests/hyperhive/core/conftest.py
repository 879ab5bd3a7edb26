"""Fixtures shared by the core tests that run a whole hive (questions, reminders).

Only fixtures no test module here defines for itself: `autojump_clock` stays overridden per
module, because a conftest override would also change the clock of test_lifecycle and
test_sockets, which use pytest-trio's own.
"""

from __future__ import annotations

import pytest

from hyperhive.testing import FakeWallClock


@pytest.fixture
def wall() -> FakeWallClock:
    """Wall-clock stamps moving in lockstep with trio's (virtual) clock."""
    return FakeWallClock()
