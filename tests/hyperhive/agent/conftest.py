"""Clock for harness tests that run against an in-process hive.

The hive and the harness under test reach their stores inline (`hyperhive.testing.inline`,
`open_test_harness`), so no task ever waits on a worker thread and trio's plain autojump clock
is exact: `hive_clock` is that clock, virtual time jumping only when everything is idle.
Tests that run real processes (claude, the MCP relay) keep the real clock and say so.
"""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture
def hive_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)
