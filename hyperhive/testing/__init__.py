"""Public test helpers: fakes with fault hooks and real-process harnesses.

Like `trio.testing`, these are product: other projects (and our own benchmarks) use them to drive
a hive without a real host behind it.
"""

from __future__ import annotations

from hyperhive.testing.clock import FakeWallClock, thread_aware_autojump_clock
from hyperhive.testing.hive import TestHive, open_test_hive
from hyperhive.testing.process import DaemonProcess, run_cli

__all__ = [
    "DaemonProcess",
    "FakeWallClock",
    "TestHive",
    "open_test_hive",
    "run_cli",
    "thread_aware_autojump_clock",
]
