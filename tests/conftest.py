"""Shared fixtures.

How tests here are written (after trio-websocket's testing manifesto):

- no real sleeps: anything that involves time runs under ``autojump_clock``;
- every I/O test has a hard timeout measured on trio's clock (``fail_after`` below), so a hang
  fails with its logs instead of blocking the run;
- ordering comes from ``trio.testing.wait_all_tasks_blocked`` or a ``Sequencer``, never from
  ``sleep(0.1)``;
- sockets, databases and state directories live under ``tmp_path``;
- a test asserts what a user would notice, and must be able to fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("fast", max_examples=30, deadline=None)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture
def short_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory with a short path, so unix socket paths stay under 108 bytes."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    yield path  # type: ignore[misc]
    import shutil

    shutil.rmtree(path, ignore_errors=True)
