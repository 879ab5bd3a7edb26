"""Public test helpers: fakes with fault hooks and real-process harnesses.

Like `trio.testing`, these are product: other projects (and our own benchmarks) use them to drive
a hive without a real host behind it.
"""

from __future__ import annotations

from hyperhive.testing.clock import FakeWallClock
from hyperhive.testing.hive import TestHive, open_test_hive
from hyperhive.testing.offload import inline
from hyperhive.testing.process import DaemonProcess, cli_error, cli_ok, run_cli

__all__ = [
    "DaemonProcess",
    "FakeWallClock",
    "TestHive",
    "cli_error",
    "cli_ok",
    "inline",
    "open_test_hive",
    "run_cli",
]
