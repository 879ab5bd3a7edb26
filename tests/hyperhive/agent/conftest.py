"""Clock for harness tests that run against an in-process hive.

The broker does its sqlite work in worker threads, and a plain `autojump_clock` jumps while a
thread runs (trio sees every task blocked), firing the daemon's 30 s call timeouts at once.
`hive_clock` jumps only after the run has been idle for a tenth of a real second, far longer
than any sqlite call here takes, so minutes of backoff pass in a moment. The daemon wakes
every few (virtual) seconds, so a virtual minute still costs about a real second: keep waits
short.
"""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture
def hive_clock(mock_clock: trio.testing.MockClock) -> trio.testing.MockClock:
    mock_clock.autojump_threshold = 0.1
    return mock_clock
